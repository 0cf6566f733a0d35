"""`ttsync apply` and `ttsync export`: the config file <-> the store, idempotently."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from ttsync.config.file import CredentialEntry, WorkspaceFile
from ttsync.errors import ConfigError, NotFoundError
from ttsync.store import Store, repos
from ttsync.store.records import Change


@dataclass(frozen=True)
class AppliedObject:
    """What `apply` did to one object."""

    kind: str
    name: str
    change: Change


@dataclass
class ApplyResult:
    """All objects touched by `apply`, plus warnings (e.g. a secret's environment variable is unset)."""

    objects: list[AppliedObject] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form for `--json`."""
        return {
            "objects": [{"kind": o.kind, "name": o.name, "change": o.change} for o in self.objects],
            "warnings": list(self.warnings),
        }


def _check_references(config: WorkspaceFile, store: Store) -> None:
    # Check every reference before writing anything, so a typo does not leave a half-applied file.
    def exists(names: set[str], getter: object, kind: str, name: str, user: str) -> None:
        if name in names:
            return
        try:
            getter(store, name)  # type: ignore[operator]
        except NotFoundError:
            raise ConfigError(
                f"{user} refers to {kind} {name!r}, which is neither in the file nor in the store"
            ) from None

    credentials = {c.name for c in config.credentials}
    sources = {s.name for s in config.sources}
    destinations = {d.name for d in config.destinations}
    templates = {t.name for t in config.templates}
    for dest in config.destinations:
        exists(
            credentials,
            repos.get_credential_name,
            "credential",
            dest.credential,
            f"destination {dest.name!r}",
        )
    for tpl in config.templates:
        exists(
            destinations, repos.get_destination, "destination", tpl.destination, f"data template {tpl.name!r}"
        )
    for orch in config.orchestrations:
        user = f"orchestration {orch.name!r}"
        exists(sources, repos.get_source, "source", orch.source, user)
        exists(destinations, repos.get_destination, "destination", orch.destination, user)
        if orch.template is not None:
            exists(templates, repos.get_template, "data template", orch.template, user)


def apply_config(
    store: Store, config: WorkspaceFile, *, environ: Mapping[str, str] | None = None
) -> ApplyResult:
    """Create or update every object of `config` in `store` (objects not in the file are left alone)."""
    env = os.environ if environ is None else environ
    result = ApplyResult()
    credentials = []
    for entry in config.credentials:
        credential, warnings = entry.to_credential(env)
        credentials.append(credential)
        result.warnings.extend(warnings)
    _check_references(config, store)
    for credential in credentials:
        change = repos.save_credential(store, credential, keep_missing_secrets=True)
        result.objects.append(AppliedObject("credential", credential.name, change))
    for source in config.sources:
        result.objects.append(AppliedObject("source", source.name, repos.save_source(store, source)))
    for destination in config.destinations:
        result.objects.append(
            AppliedObject("destination", destination.name, repos.save_destination(store, destination))
        )
    for template in config.templates:
        result.objects.append(
            AppliedObject("data template", template.name, repos.save_template(store, template))
        )
    for orchestration in config.orchestrations:
        change = repos.save_orchestration(store, orchestration)
        result.objects.append(AppliedObject("orchestration", orchestration.name, change))
    return result


def export_config(store: Store) -> WorkspaceFile:
    """The store's objects as a config file model (secrets only as environment-variable names)."""
    return WorkspaceFile(
        credentials=[CredentialEntry.from_credential(c) for c in repos.list_credentials(store)],
        sources=repos.list_sources(store),
        destinations=repos.list_destinations(store),
        templates=repos.list_templates(store),
        orchestrations=repos.list_orchestrations(store),
    )
