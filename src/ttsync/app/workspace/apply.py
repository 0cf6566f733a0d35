"""`ttsync apply` and `ttsync export`: the config file <-> the store, idempotently."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from ttsync.config.campaigns import check_campaign
from ttsync.config.file import CONFIG_FILE, CredentialEntry, WorkspaceFile
from ttsync.destinations.tiktok.settings import audience_name_problem, check_workspace_file
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


def _check_campaigns(config: WorkspaceFile, store: Store, today: date) -> None:
    # Segments and templates from the file win over the store's, as they will once applied.
    segments = {s.name: s for s in repos.list_segments(store)} | {s.name: s for s in config.segments}
    templates = {t.name: t for t in repos.list_templates(store)} | {t.name: t for t in config.templates}
    sources = {s.name for s in config.sources} | {s.name for s in repos.list_sources(store)}
    for segment in config.segments:
        if segment.source not in sources:
            raise ConfigError(
                f"segment {segment.name!r} refers to source {segment.source!r}, which is neither in the file "
                "nor in the store"
            )
    stored = {c.name: c for c in repos.list_campaigns(store)}
    for campaign in config.campaigns:
        before = stored.get(campaign.name)
        # A launch date already applied is not refused later: re-applying the same file keeps working.
        new_launch = before is None or before.launch_date != campaign.launch_date
        check_campaign(
            campaign,
            segments,
            templates,
            audience_name_problem=audience_name_problem,
            today=today if new_launch else None,
        )


def apply_config(
    store: Store,
    config: WorkspaceFile,
    *,
    environ: Mapping[str, str] | None = None,
    today: date | None = None,
) -> ApplyResult:
    """Create or update every object of `config` in `store` (objects not in the file are left alone).

    `today` (default: the UTC date) is the clock of the campaigns' launch-date check."""
    env = os.environ if environ is None else environ
    config = check_workspace_file(config, CONFIG_FILE)  # a model built in code is checked as a file is
    result = ApplyResult()
    credentials = []
    for entry in config.credentials:
        credential, warnings = entry.to_credential(env)
        credentials.append(credential)
        result.warnings.extend(warnings)
    _check_references(config, store)
    _check_campaigns(config, store, today or datetime.now(UTC).date())
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
    for segment in config.segments:
        result.objects.append(AppliedObject("segment", segment.name, repos.save_segment(store, segment)))
    for campaign in config.campaigns:
        result.objects.append(AppliedObject("campaign", campaign.name, repos.save_campaign(store, campaign)))
    return result


def export_config(store: Store) -> WorkspaceFile:
    """The store's objects as a config file model (secrets only as environment-variable names)."""
    return WorkspaceFile(
        credentials=[CredentialEntry.from_credential(c) for c in repos.list_credentials(store)],
        sources=repos.list_sources(store),
        destinations=repos.list_destinations(store),
        templates=repos.list_templates(store),
        orchestrations=repos.list_orchestrations(store),
        segments=repos.list_segments(store),
        campaigns=repos.list_campaigns(store),
    )
