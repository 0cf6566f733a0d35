"""Configuration objects one at a time (`ttsync sources|destinations|templates|orchestrations|credentials ...`
and the server's object endpoints): list, show, add from a YAML file, remove.

Saving goes through the destination's wing: a destination's settings and a credential's advertiser ids are
checked (and normalized) as `ttsync apply` checks them, so every way in stores the same thing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from ttsync.config.common import format_validation_error
from ttsync.config.file import CredentialEntry
from ttsync.config.models import Credential, DataTemplate, Destination, Orchestration, Source
from ttsync.destinations.tiktok.settings import checked_credential, checked_destination
from ttsync.errors import ConfigError
from ttsync.store import Store, repos
from ttsync.store.records import Change


def save_destination(store: Store, destination: Destination) -> Change:
    """Create or update a destination, its settings checked against its kind (`ConfigError` says how)."""
    return repos.save_destination(store, checked_destination(destination))


def save_credential(store: Store, credential: Credential, *, keep_missing_secrets: bool = True) -> Change:
    """Create or update a credential, its advertiser ids checked."""
    return repos.save_credential(
        store, checked_credential(credential), keep_missing_secrets=keep_missing_secrets
    )


@dataclass
class Added:
    """What `add_object` did: the object's name, created/updated/unchanged, and warnings to show."""

    name: str
    change: Change
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ObjectKind:
    """One kind of configuration object as the object commands handle it."""

    kind: str  # as users read it: "data template"
    model: type[BaseModel]  # as written in a YAML file
    repo: repos.ConfigRepo[Any]
    save: Callable[[Store, Any, Path, Mapping[str, str]], Added]
    columns: tuple[str, ...]  # what `list` shows


def _check_source_files(item: Source, root: Path) -> None:
    """A file source must name files that exist: refused now rather than at the first run."""
    if item.kind not in ("duckdb", "csv", "parquet") or not item.path:
        return
    path = Path(item.path).expanduser()
    full = path if path.is_absolute() else root / path
    if any(ch in item.path for ch in "*?["):  # a glob of CSV/Parquet files: at least one must match
        if not list(full.parent.glob(full.name)):
            raise ConfigError(
                f"source {item.name!r}: no file matches {item.path!r} (relative to the workspace {root}): fix "
                "`path` or create the files, then add the source again"
            )
        return
    if not full.exists():
        hint = (
            "`ttsync init --sample` creates warehouse.duckdb" if item.kind == "duckdb" else "check the name"
        )
        raise ConfigError(
            f"source {item.name!r}: {item.path!r} does not exist (relative paths are relative to the workspace "
            f"{root}): fix `path` ({hint}), then add the source again"
        )


def _save_source(store: Store, item: Source, root: Path, _environ: Mapping[str, str]) -> Added:
    _check_source_files(item, root)
    return Added(item.name, repos.save_source(store, item))


def _save_credential_entry(
    store: Store, entry: CredentialEntry, _root: Path, environ: Mapping[str, str]
) -> Added:
    credential, warnings = entry.to_credential(environ)
    return Added(entry.name, save_credential(store, credential), warnings)


def _plain(saver: Callable[[Store, Any], Change]) -> Callable[[Store, Any, Path, Mapping[str, str]], Added]:
    def save(store: Store, item: Any, _root: Path, _environ: Mapping[str, str]) -> Added:
        return Added(item.name, saver(store, item))

    return save


KINDS: dict[str, ObjectKind] = {
    "sources": ObjectKind("source", Source, repos.SOURCES, _save_source, ("name", "kind", "path", "url_env")),
    "destinations": ObjectKind(
        "destination", Destination, repos.DESTINATIONS, _plain(save_destination),
        ("name", "kind", "credential", "environment"),
    ),
    "templates": ObjectKind(
        "data template", DataTemplate, repos.TEMPLATES, _plain(repos.save_template),
        ("name", "destination", "available_to_campaigns"),
    ),
    "orchestrations": ObjectKind(
        "orchestration", Orchestration, repos.ORCHESTRATIONS, _plain(repos.save_orchestration),
        ("name", "source", "destination", "template", "schedule"),
    ),
    "credentials": ObjectKind(
        "credential", CredentialEntry, repos.CREDENTIALS, _save_credential_entry,
        ("name", "app_id", "environment", "advertiser_ids"),
    ),
}  # fmt: skip


def list_objects(store: Store, group: str) -> list[BaseModel]:
    """Every object of a kind (`group`: a key of `KINDS`), by name."""
    return list(KINDS[group].repo.list(store))


def get_object(store: Store, group: str, name: str) -> BaseModel:
    """One object; `NotFoundError` when there is none."""
    item: BaseModel = KINDS[group].repo.get(store, name)
    return item


def remove_object(store: Store, group: str, name: str) -> bool:
    """Delete an object nothing uses (`ConfigError` names its users); False when it did not exist."""
    return KINDS[group].repo.delete(store, name)


def load_object_file(group: str, path: Path) -> BaseModel:
    """The one object a YAML file holds (same fields as its `ttsync.yaml` entry), validated."""
    if not path.is_file():
        raise ConfigError(f"{path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold one object (a YAML mapping), as in a ttsync.yaml section entry")
    try:
        return KINDS[group].model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, str(path))) from None


def add_object(
    store: Store, group: str, item: BaseModel, root: Path, environ: Mapping[str, str] | None = None
) -> Added:
    """Create or update one object (checked as `apply` checks it). `root`: the workspace folder, for a
    source's relative paths; `environ`: where a credential's secret variables are read (default: this
    process's environment)."""
    return KINDS[group].save(store, item, root, os.environ if environ is None else environ)
