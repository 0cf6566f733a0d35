"""The `ttsync.yaml` config file: its pydantic model, loading (with `${VAR}` interpolation) and dumping.

Secrets never appear in the file: credentials name environment variables (`app_secret_env`,
`access_token_env`, `refresh_token_env`); a literal secret is refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from ttsync.config.campaigns import Campaign, Segment
from ttsync.config.common import Environment, ObjectName, format_validation_error
from ttsync.config.models import Credential, DataTemplate, Destination, Orchestration, Source
from ttsync.config.writeback import WritebackConfig
from ttsync.errors import ConfigError

CONFIG_FILE = "ttsync.yaml"
SECRET_FIELDS = ("app_secret", "access_token", "refresh_token")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class CredentialEntry(BaseModel):
    """A credential as written in the file: secrets by environment-variable name only."""

    model_config = ConfigDict(extra="forbid")

    name: ObjectName
    app_id: str = Field(min_length=1)
    app_secret_env: str | None = None
    access_token_env: str | None = None
    refresh_token_env: str | None = None
    advertiser_ids: list[str] = Field(default_factory=list)
    redirect_uri: str | None = None
    environment: Environment = "sandbox"
    sandbox_base_url: str | None = None
    description: str = ""

    @model_validator(mode="before")
    @classmethod
    def _refuse_literal_secrets(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for field in SECRET_FIELDS:
                if field in data:
                    raise ValueError(
                        f"credential {data.get('name', '?')!r}: `{field}` must not be written in the file; "
                        f"put it in an environment variable and write `{field}_env: VARIABLE_NAME`"
                    )
            for field in SECRET_FIELDS:
                env = data.get(f"{field}_env")
                if env is not None and not (isinstance(env, str) and _ENV_NAME.match(env)):
                    raise ValueError(
                        f"credential {data.get('name', '?')!r}: `{field}_env` is the *name* of an environment "
                        "variable (letters, digits, '_'), for example TIKTOK_ACCESS_TOKEN"
                    )
        return data

    def env_refs(self) -> dict[str, str]:
        """Secret field -> environment variable name, for the secrets this entry references."""
        refs = {field: getattr(self, f"{field}_env") for field in SECRET_FIELDS}
        return {field: env for field, env in refs.items() if env}

    def to_credential(self, environ: Mapping[str, str]) -> tuple[Credential, list[str]]:
        """The credential with secrets read from `environ`, and warnings for variables that are not set
        (those secrets are left as stored)."""
        secrets: dict[str, SecretStr | None] = {}
        warnings = []
        for field, env in self.env_refs().items():
            value = environ.get(env)
            if value:
                secrets[field] = SecretStr(value)
            else:
                warnings.append(
                    f"credential {self.name!r}: environment variable {env} is not set, so `{field}` was not "
                    "changed; export it and run `ttsync apply` again"
                )
        values = self.model_dump(exclude={f"{f}_env" for f in SECRET_FIELDS})
        return Credential.model_validate({**values, **secrets, "secret_env": self.env_refs()}), warnings

    @classmethod
    def from_credential(cls, credential: Credential) -> CredentialEntry:
        """The file entry of a stored credential (secret values are never copied, only their variables)."""
        values = credential.model_dump(
            exclude={*SECRET_FIELDS, "token_expires_at", "refresh_token_expires_at", "secret_env"}
        )
        refs = {f"{field}_env": env for field, env in credential.secret_env.items() if field in SECRET_FIELDS}
        return cls.model_validate({**values, **refs})


class Retention(BaseModel):
    """How long ttsync keeps what runs leave in the state folder."""

    model_config = ConfigDict(extra="forbid")

    # Run folders (state/runs/ID) of finished workflows older than this are pruned after each `ttsync run`
    # and by `ttsync runs prune`; folders of workflows that can still be retried are always kept.
    run_folders_days: int = Field(default=30, ge=0)


class WorkspaceFile(BaseModel):
    """The whole `ttsync.yaml`."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    retention: Retention = Field(default_factory=Retention)
    writeback: WritebackConfig | None = None  # results back in the warehouse (docs/writeback.md)
    credentials: list[CredentialEntry] = Field(default_factory=list)
    sources: list[Source] = Field(default_factory=list)
    destinations: list[Destination] = Field(default_factory=list)
    templates: list[DataTemplate] = Field(default_factory=list)
    orchestrations: list[Orchestration] = Field(default_factory=list)
    segments: list[Segment] = Field(default_factory=list)  # docs/campaigns.md
    campaigns: list[Campaign] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _bare_writeback_is_on(cls, data: Any) -> Any:
        # `writeback:` with nothing (or only comments) under it is YAML null: it means "on, with defaults".
        if isinstance(data, dict) and "writeback" in data and data["writeback"] is None:
            data = data | {"writeback": {}}
        return data

    @model_validator(mode="after")
    def _unique_and_consistent(self) -> WorkspaceFile:
        for section in ("credentials", "sources", "destinations", "templates", "orchestrations", "segments",
                        "campaigns"):  # fmt: skip
            names = [item.name for item in getattr(self, section)]
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise ValueError(f"{section}: names must be unique, repeated: {', '.join(duplicates)}")
        return self


def interpolate(value: Any, environ: Mapping[str, str]) -> Any:
    """Replace `${VAR}` / `${VAR:-default}` in every string of a loaded YAML tree."""
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in environ:
                return environ[name]
            if default is not None:
                return default
            raise ConfigError(
                f"${{{name}}} is used in {CONFIG_FILE} but not set: export {name} or give a default "
                f"with ${{{name}:-value}}"
            )

        return _INTERPOLATION.sub(replace, value)
    if isinstance(value, list):
        return [interpolate(item, environ) for item in value]
    if isinstance(value, dict):
        return {key: interpolate(item, environ) for key, item in value.items()}
    return value


def parse_config(text: str, *, environ: Mapping[str, str], source: str = CONFIG_FILE) -> WorkspaceFile:
    """Parse config text, `${VAR}` taken from `environ`. Errors name the file, the object and the setting.

    Only the neutral shape is checked here: a destination's settings are validated by its wing
    (`ttsync.app.workspace.layout.parse_config` does both)."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{source} is not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source}: the file must be a mapping with credentials, sources, destinations, ..."
        )
    raw = interpolate(raw, environ)
    try:
        return WorkspaceFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None


# The key order of each object in the file `ttsync init` writes (a test checks they agree), so that
# `ttsync export` > ttsync.yaml gives a small, readable git diff. Keys not listed follow in model order.
EXPORT_KEY_ORDER: dict[str, tuple[str, ...]] = {
    "credentials": ("name", "app_id", "app_secret_env", "access_token_env", "refresh_token_env",
                    "advertiser_ids", "redirect_uri", "environment", "sandbox_base_url"),
    "sources": ("name", "kind", "path", "url_env"),
    "destinations": ("name", "kind", "credential", "environment", "admin_only", "allow_restricted_pii",
                     "settings"),
    "templates": ("name", "destination", "description", "attribute_mapping", "settings",
                  "audience_name_template", "available_to_campaigns"),
    "orchestrations": ("name", "source", "destination", "template", "key_column", "settings", "schedule",
                       "query"),
    "segments": ("name", "source", "key_column", "suppression", "description", "query"),
    "campaigns": ("name", "description", "audience", "exclusions", "holdout_percent", "sub_audiences",
                  "destinations", "timing", "launch_date", "end_date", "schedule"),
    "settings": ("advertiser_ids", "advertiser_id", "user_id_types", "delivery", "mode", "remove_guard",
                 "default_region", "event_source", "timezone", "audience_name", "retention_days",
                 "strict_audience_name", "test_event_code", "event_set_id"),
}  # fmt: skip


def _ordered(data: dict[str, Any], order: tuple[str, ...]) -> dict[str, Any]:
    first = [key for key in order if key in data]
    return {key: data[key] for key in [*first, *(k for k in data if k not in first)]}


class _ConfigDumper(yaml.SafeDumper):
    """Multi-line strings (queries) as `|` block scalars, and list items indented, as `ttsync init` writes."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # PyYAML falls back to a quoted style by itself when a block cannot hold the text exactly.
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_ConfigDumper.add_representer(str, _represent_str)


def dump_config(config: WorkspaceFile) -> str:
    """YAML text of a config (defaults left out, so the file stays short), keys in `ttsync init`'s order and
    queries as block scalars."""
    data = config.model_dump(mode="json", exclude_defaults=True, by_alias=True)
    data["version"] = config.version
    ordered: dict[str, Any] = {}
    for key in ("version", *WorkspaceFile.model_fields):
        if key not in data:
            continue
        value = data[key]
        if isinstance(value, list) and key in EXPORT_KEY_ORDER:
            value = [_ordered(item, EXPORT_KEY_ORDER[key]) for item in value]
            for item in value:
                if isinstance(item.get("settings"), dict):
                    item["settings"] = _ordered(item["settings"], EXPORT_KEY_ORDER["settings"])
        ordered[key] = value
    header = "# ttsync workspace configuration (exported). Secrets are referenced by environment variable.\n"
    body = yaml.dump(ordered, Dumper=_ConfigDumper, sort_keys=False, allow_unicode=True, width=110)
    return header + body
