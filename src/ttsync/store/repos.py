"""Typed access to the control-plane store: small functions taking a `Store`, returning pydantic models.

Configuration objects (credential, source, destination, data template, orchestration) are saved with
`save_*`, which reports whether the object was created, updated or unchanged (what `ttsync apply` prints).
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from pydantic import BaseModel, SecretStr

from ttsync.config.campaigns import Campaign, Segment
from ttsync.config.models import Credential, DataTemplate, Destination, Orchestration, Source
from ttsync.errors import AmbiguousIdError, ConfigError, NotFoundError
from ttsync.redact import redact_text
from ttsync.store import schema
from ttsync.store.db import Store
from ttsync.store.records import (
    AudienceStateRecord,
    Change,
    NotificationRecord,
    Severity,
    TaskRecord,
    TaskState,
    WorkflowRecord,
    WorkflowState,
)

M = TypeVar("M", bound=BaseModel)


class _Unset(enum.Enum):
    UNSET = enum.auto()


UNSET = _Unset.UNSET


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(value: datetime | None) -> datetime | None:
    # SQLite drops the zone; every timestamp we write is UTC, so put the zone back.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _utc_row(row: sa.RowMapping) -> dict[str, Any]:
    return {key: _utc(value) if isinstance(value, datetime) else value for key, value in row.items()}


# ---------------------------------------------------------------------------------------------------------
# Generic helpers for the configuration tables


def _upsert(
    store: Store, table: sa.Table, name: str, values: dict[str, Any], same: Callable[[sa.RowMapping], bool]
) -> Change:
    with store.engine.begin() as conn:
        existing = conn.execute(sa.select(table).where(table.c.name == name)).mappings().first()
        if existing is None:
            conn.execute(sa.insert(table).values(name=name, created_at=_now(), updated_at=_now(), **values))
            return "created"
        if same(existing):
            return "unchanged"
        conn.execute(sa.update(table).where(table.c.name == name).values(updated_at=_now(), **values))
        return "updated"


def _same_columns(values: dict[str, Any]) -> Callable[[sa.RowMapping], bool]:
    def same(row: sa.RowMapping) -> bool:
        return all(row[key] == value for key, value in values.items())

    return same


def _get_row(store: Store, table: sa.Table, kind: str, name: str) -> sa.RowMapping:
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(table).where(table.c.name == name)).mappings().first()
    if row is None:
        raise NotFoundError(kind, name)
    return row


def _list_rows(store: Store, table: sa.Table) -> Sequence[sa.RowMapping]:
    with store.engine.connect() as conn:
        return conn.execute(sa.select(table).order_by(table.c.name)).mappings().all()


def _delete(
    store: Store, table: sa.Table, kind: str, name: str, used_by: list[tuple[sa.Table, sa.Column[Any]]]
) -> bool:
    with store.engine.begin() as conn:
        for other, column in used_by:
            users = conn.execute(sa.select(other.c.name).where(column == name)).scalars().all()
            if users:
                raise ConfigError(
                    f"{kind} {name!r} is used by {other.name.rstrip('s').replace('_', ' ')} "
                    f"{', '.join(repr(u) for u in users)}: remove or change those first"
                )
        result = conn.execute(sa.delete(table).where(table.c.name == name))
        return result.rowcount > 0


@dataclass(frozen=True)
class ConfigRepo(Generic[M]):
    """Get, list and delete of one kind of configuration object, the same for every kind (`save_*` stay
    per kind: each checks its own references and compares its own columns)."""

    kind: str  # as users read it: "data template"
    table: sa.Table
    from_row: Callable[[Store, sa.RowMapping], M]
    # Who refers to an object of this kind: (table, column) pairs; such an object is not deleted.
    used_by: tuple[tuple[sa.Table, sa.Column[Any]], ...] = ()

    def get(self, store: Store, name: str) -> M:
        """The object `name`; `NotFoundError` when there is none."""
        return self.from_row(store, _get_row(store, self.table, self.kind, name))

    def list(self, store: Store) -> list[M]:
        """All objects of this kind, by name."""
        return [self.from_row(store, row) for row in _list_rows(store, self.table)]

    def delete(self, store: Store, name: str) -> bool:
        """Delete the object unless another one uses it (`ConfigError`); False when it did not exist."""
        return _delete(store, self.table, self.kind, name, list(self.used_by))


def _validated(model: type[M]) -> Callable[[Store, sa.RowMapping], M]:
    """A row → model reader for tables whose columns are the model's fields (plus the timestamps)."""

    def from_row(_store: Store, row: sa.RowMapping) -> M:
        return model.model_validate({key: row[key] for key in row if key not in ("created_at", "updated_at")})

    return from_row


# ---------------------------------------------------------------------------------------------------------
# Credentials


def _secret_columns(store: Store, credential: Credential) -> dict[str, str | None]:
    def seal(secret: SecretStr | None) -> str | None:
        return None if secret is None else store.box.encrypt(secret.get_secret_value())

    return {
        "app_secret_enc": seal(credential.app_secret),
        "access_token_enc": seal(credential.access_token),
        "refresh_token_enc": seal(credential.refresh_token),
    }


def save_credential(store: Store, credential: Credential, *, keep_missing_secrets: bool = True) -> Change:
    """Create or update a credential. Secrets are encrypted; with `keep_missing_secrets`, a secret that is
    None on `credential` keeps its stored value (so re-applying a config file keeps OAuth tokens)."""
    plain = {
        "app_id": credential.app_id,
        "token_expires_at": credential.token_expires_at,
        "refresh_token_expires_at": credential.refresh_token_expires_at,
        "advertiser_ids": list(credential.advertiser_ids),
        "redirect_uri": credential.redirect_uri,
        "environment": credential.environment,
        "sandbox_base_url": credential.sandbox_base_url,
        "secret_env": dict(credential.secret_env),
        "description": credential.description,
    }
    secrets = _secret_columns(store, credential)
    if keep_missing_secrets:
        secrets = {key: value for key, value in secrets.items() if value is not None}
    wanted = {
        "app_secret_enc": credential.app_secret,
        "access_token_enc": credential.access_token,
        "refresh_token_enc": credential.refresh_token,
    }

    def same(row: sa.RowMapping) -> bool:
        for key, value in plain.items():
            stored = _utc(row[key]) if isinstance(row[key], datetime) else row[key]
            if stored != value:
                return False
        for key, secret in wanted.items():
            if secret is None:
                if not keep_missing_secrets and row[key] is not None:
                    return False
                continue
            # Fernet tokens differ on every encryption: compare plaintexts.
            if row[key] is None or store.box.decrypt(row[key]) != secret.get_secret_value():
                return False
        return True

    return _upsert(store, schema.credentials, credential.name, plain | secrets, same)


def _credential_from_row(store: Store, row: sa.RowMapping) -> Credential:
    def sealed(token: str | None) -> SecretStr | None:
        return None if token is None else store.box.seal(token)

    values = _utc_row(row)
    return Credential(
        name=values["name"],
        app_id=values["app_id"],
        app_secret=sealed(values["app_secret_enc"]),
        access_token=sealed(values["access_token_enc"]),
        refresh_token=sealed(values["refresh_token_enc"]),
        token_expires_at=values["token_expires_at"],
        refresh_token_expires_at=values["refresh_token_expires_at"],
        advertiser_ids=values["advertiser_ids"],
        redirect_uri=values["redirect_uri"],
        environment=values["environment"],
        sandbox_base_url=values["sandbox_base_url"],
        secret_env=values["secret_env"],
        description=values["description"],
    )


CREDENTIALS = ConfigRepo(
    "credential",
    schema.credentials,
    _credential_from_row,
    ((schema.destinations, schema.destinations.c.credential),),
)


def get_credential(store: Store, name: str) -> Credential:
    """The credential `name`; its secrets decrypt only when `.get_secret_value()` is called."""
    return CREDENTIALS.get(store, name)


def list_credentials(store: Store) -> list[Credential]:
    """All credentials, by name."""
    return CREDENTIALS.list(store)


def delete_credential(store: Store, name: str) -> bool:
    """Delete a credential no destination uses; False when it did not exist."""
    return CREDENTIALS.delete(store, name)


def update_credential_tokens(
    store: Store,
    name: str,
    *,
    access_token: str,
    refresh_token: str | _Unset | None = UNSET,
    token_expires_at: datetime | _Unset | None = UNSET,
    refresh_token_expires_at: datetime | _Unset | None = UNSET,
    advertiser_ids: list[str] | _Unset = UNSET,
) -> None:
    """Store new tokens (after OAuth or a refresh), encrypted. Unset arguments keep their stored values."""
    values: dict[str, Any] = {"access_token_enc": store.box.encrypt(access_token), "updated_at": _now()}
    if not isinstance(refresh_token, _Unset):
        values["refresh_token_enc"] = None if refresh_token is None else store.box.encrypt(refresh_token)
    if not isinstance(token_expires_at, _Unset):
        values["token_expires_at"] = token_expires_at
    if not isinstance(refresh_token_expires_at, _Unset):
        values["refresh_token_expires_at"] = refresh_token_expires_at
    if not isinstance(advertiser_ids, _Unset):
        values["advertiser_ids"] = list(advertiser_ids)
    with store.engine.begin() as conn:
        result = conn.execute(
            sa.update(schema.credentials).where(schema.credentials.c.name == name).values(**values)
        )
    if result.rowcount == 0:
        raise NotFoundError("credential", name)


def clear_credential_tokens(store: Store, name: str) -> None:
    """Forget a credential's access and refresh tokens (after a revoke)."""
    with store.engine.begin() as conn:
        result = conn.execute(
            sa.update(schema.credentials)
            .where(schema.credentials.c.name == name)
            .values(
                access_token_enc=None,
                refresh_token_enc=None,
                token_expires_at=None,
                refresh_token_expires_at=None,
                updated_at=_now(),
            )
        )
    if result.rowcount == 0:
        raise NotFoundError("credential", name)


# ---------------------------------------------------------------------------------------------------------
# Sources


def save_source(store: Store, source: Source) -> Change:
    """Create or update a source."""
    fields = {"path", "url", "url_env", "table", "hash_in_warehouse", "e164_columns", "master", "spark_conf"}
    config = source.model_dump(include=fields, exclude_defaults=True)
    values = {"kind": source.kind, "config": config, "description": source.description}
    return _upsert(store, schema.sources, source.name, values, _same_columns(values))


def _source_from_row(_store: Store, row: sa.RowMapping) -> Source:
    return Source(name=row["name"], kind=row["kind"], description=row["description"], **row["config"])


SOURCES = ConfigRepo(
    "source", schema.sources, _source_from_row, ((schema.orchestrations, schema.orchestrations.c.source),)
)


def get_source(store: Store, name: str) -> Source:
    """The source `name`."""
    return SOURCES.get(store, name)


def list_sources(store: Store) -> list[Source]:
    """All sources, by name."""
    return SOURCES.list(store)


def delete_source(store: Store, name: str) -> bool:
    """Delete a source no orchestration uses; False when it did not exist."""
    return SOURCES.delete(store, name)


# ---------------------------------------------------------------------------------------------------------
# Destinations


def save_destination(store: Store, destination: Destination) -> Change:
    """Create or update a destination (its credential must exist)."""
    get_credential_name(store, destination.credential)
    values = {
        "kind": destination.kind,
        "credential": destination.credential,
        "environment": destination.environment,
        "settings": destination.settings.model_dump(exclude_none=True),
        "admin_only": destination.admin_only,
        "allow_restricted_pii": destination.allow_restricted_pii,
        "sandbox_base_url": destination.sandbox_base_url,
        "description": destination.description,
    }
    return _upsert(store, schema.destinations, destination.name, values, _same_columns(values))


def get_credential_name(store: Store, name: str) -> str:
    """Check that credential `name` exists without touching its secrets."""
    _get_row(store, schema.credentials, "credential", name)
    return name


DESTINATIONS = ConfigRepo(
    "destination",
    schema.destinations,
    _validated(Destination),
    (
        (schema.data_templates, schema.data_templates.c.destination),
        (schema.orchestrations, schema.orchestrations.c.destination),
    ),
)


def get_destination(store: Store, name: str) -> Destination:
    """The destination `name`."""
    return DESTINATIONS.get(store, name)


def list_destinations(store: Store) -> list[Destination]:
    """All destinations, by name."""
    return DESTINATIONS.list(store)


def delete_destination(store: Store, name: str) -> bool:
    """Delete a destination no data template or orchestration uses."""
    return DESTINATIONS.delete(store, name)


# ---------------------------------------------------------------------------------------------------------
# Data templates


def save_template(store: Store, template: DataTemplate) -> Change:
    """Create or update a data template (its destination must exist)."""
    get_destination(store, template.destination)
    values = template.model_dump(exclude={"name"})
    return _upsert(store, schema.data_templates, template.name, values, _same_columns(values))


TEMPLATES = ConfigRepo(
    "data template",
    schema.data_templates,
    _validated(DataTemplate),
    ((schema.orchestrations, schema.orchestrations.c.template),),
)


def get_template(store: Store, name: str) -> DataTemplate:
    """The data template `name`."""
    return TEMPLATES.get(store, name)


def list_templates(store: Store) -> list[DataTemplate]:
    """All data templates, by name."""
    return TEMPLATES.list(store)


def delete_template(store: Store, name: str) -> bool:
    """Delete a data template no orchestration uses."""
    return TEMPLATES.delete(store, name)


# ---------------------------------------------------------------------------------------------------------
# Orchestrations


def save_orchestration(store: Store, orchestration: Orchestration) -> Change:
    """Create or update an orchestration (its source, destination and template must exist)."""
    get_source(store, orchestration.source)
    get_destination(store, orchestration.destination)
    if orchestration.template is not None:
        template = get_template(store, orchestration.template)
        if template.destination != orchestration.destination:
            raise ConfigError(
                f"orchestration {orchestration.name!r}: data template {template.name!r} belongs to destination "
                f"{template.destination!r}, not {orchestration.destination!r}"
            )
    values = orchestration.model_dump(exclude={"name"})
    return _upsert(store, schema.orchestrations, orchestration.name, values, _same_columns(values))


# No used_by: its workflows stay, as history.
ORCHESTRATIONS = ConfigRepo("orchestration", schema.orchestrations, _validated(Orchestration))


def get_orchestration(store: Store, name: str) -> Orchestration:
    """The orchestration `name`."""
    return ORCHESTRATIONS.get(store, name)


def list_orchestrations(store: Store) -> list[Orchestration]:
    """All orchestrations, by name."""
    return ORCHESTRATIONS.list(store)


def delete_orchestration(store: Store, name: str) -> bool:
    """Delete an orchestration (its workflows stay, as history)."""
    return ORCHESTRATIONS.delete(store, name)


# ---------------------------------------------------------------------------------------------------------
# Segments and campaigns (stored as their model's JSON)


def save_segment(store: Store, segment: Segment) -> Change:
    """Create or update a segment (its source must exist)."""
    get_source(store, segment.source)
    body = {"body": segment.model_dump(mode="json")}
    return _upsert(store, schema.segments, segment.name, body, _same_columns(body))


def get_segment(store: Store, name: str) -> Segment:
    """The segment `name`."""
    return Segment.model_validate(_get_row(store, schema.segments, "segment", name)["body"])


def list_segments(store: Store) -> list[Segment]:
    """All segments, by name."""
    return [Segment.model_validate(row["body"]) for row in _list_rows(store, schema.segments)]


def save_campaign(store: Store, campaign: Campaign) -> Change:
    """Create or update a campaign (checked by `config.campaigns.check_campaign` before)."""
    body = {"body": campaign.model_dump(mode="json")}
    return _upsert(store, schema.campaigns, campaign.name, body, _same_columns(body))


def get_campaign(store: Store, name: str) -> Campaign:
    """The campaign `name`."""
    return Campaign.model_validate(_get_row(store, schema.campaigns, "campaign", name)["body"])


def list_campaigns(store: Store) -> list[Campaign]:
    """All campaigns, by name."""
    return [Campaign.model_validate(row["body"]) for row in _list_rows(store, schema.campaigns)]


# ---------------------------------------------------------------------------------------------------------
# Workflows and tasks


def create_workflow(
    store: Store, orchestration: str, kind: str, task_names: Sequence[str], *, workflow_id: str | None = None
) -> WorkflowRecord:
    """Create a pending workflow with its tasks in order."""
    wid = workflow_id or uuid.uuid4().hex
    now = _now()
    with store.engine.begin() as conn:
        conn.execute(
            sa.insert(schema.workflows).values(
                id=wid,
                orchestration=orchestration,
                kind=kind,
                state="pending",
                created_at=now,
                counts={},
                checkpoint={},
            )
        )
        if task_names:
            conn.execute(
                sa.insert(schema.tasks),
                [
                    {
                        "workflow_id": wid,
                        "name": name,
                        "position": i,
                        "state": "pending",
                        "attempts": 0,
                        "counts": {},
                        "checkpoint": {},
                    }
                    for i, name in enumerate(task_names)
                ],
            )
    return get_workflow(store, wid)


def get_workflow(store: Store, workflow_id: str) -> WorkflowRecord:
    """A workflow with its tasks."""
    with store.engine.connect() as conn:
        row = (
            conn.execute(sa.select(schema.workflows).where(schema.workflows.c.id == workflow_id))
            .mappings()
            .first()
        )
        if row is None:
            raise NotFoundError("workflow", workflow_id)
        task_rows = conn.execute(
            sa.select(schema.tasks)
            .where(schema.tasks.c.workflow_id == workflow_id)
            .order_by(schema.tasks.c.position)
        ).mappings()
        tasks = [TaskRecord.model_validate(_utc_row(t)) for t in task_rows]
    return WorkflowRecord.model_validate(_utc_row(row) | {"tasks": tasks})


MIN_ID_PREFIX = 4  # as git: shorter prefixes are refused rather than guessed


def resolve_workflow_id(store: Store, text: str) -> str:
    """The full id of the workflow whose id is `text` or starts with it (at least 4 characters, like git).

    Raises NotFoundError when none matches, AmbiguousIdError (listing the matches) when several do."""
    text = text.strip()
    ids = schema.workflows.c.id
    with store.engine.connect() as conn:
        if conn.execute(sa.select(ids).where(ids == text)).first() is not None:
            return text
        if len(text) < MIN_ID_PREFIX:
            raise NotFoundError("workflow", text)
        # substr rather than LIKE: the prefix is matched literally, `%` and `_` included.
        matches = list(
            conn.execute(
                sa.select(ids).where(sa.func.substr(ids, 1, len(text)) == text).order_by(ids).limit(50)
            ).scalars()
        )
    if not matches:
        raise NotFoundError("workflow", text)
    if len(matches) > 1:
        raise AmbiguousIdError("workflow", text, matches)
    return str(matches[0])


def list_workflows(
    store: Store, *, orchestration: str | None = None, limit: int = 50
) -> list[WorkflowRecord]:
    """Most recent workflows first (without their tasks)."""
    query = sa.select(schema.workflows).order_by(schema.workflows.c.created_at.desc()).limit(limit)
    if orchestration is not None:
        query = query.where(schema.workflows.c.orchestration == orchestration)
    with store.engine.connect() as conn:
        return [WorkflowRecord.model_validate(_utc_row(row)) for row in conn.execute(query).mappings()]


def update_workflow(
    store: Store,
    workflow_id: str,
    *,
    state: WorkflowState | None = None,
    started_at: datetime | _Unset | None = UNSET,
    finished_at: datetime | _Unset | None = UNSET,
    counts: dict[str, Any] | None = None,
    checkpoint: dict[str, Any] | None = None,
    error: dict[str, Any] | _Unset | None = UNSET,
) -> None:
    """Change a workflow's fields; arguments left out keep their values (`error=None` clears the error)."""
    values: dict[str, Any] = {}
    if state is not None:
        values["state"] = state
    if counts is not None:
        values["counts"] = counts
    if checkpoint is not None:
        values["checkpoint"] = checkpoint
    for key, value in (("started_at", started_at), ("finished_at", finished_at), ("error", error)):
        if not isinstance(value, _Unset):
            values[key] = value
    if not values:
        return
    with store.engine.begin() as conn:
        result = conn.execute(
            sa.update(schema.workflows).where(schema.workflows.c.id == workflow_id).values(**values)
        )
    if result.rowcount == 0:
        raise NotFoundError("workflow", workflow_id)


def update_task(
    store: Store,
    workflow_id: str,
    name: str,
    *,
    state: TaskState | None = None,
    started_at: datetime | _Unset | None = UNSET,
    finished_at: datetime | _Unset | None = UNSET,
    counts: dict[str, Any] | None = None,
    checkpoint: dict[str, Any] | None = None,
    error: dict[str, Any] | _Unset | None = UNSET,
    add_attempt: bool = False,
) -> None:
    """Change a task's fields (same conventions as `update_workflow`); `add_attempt` counts one more try."""
    table = schema.tasks
    values: dict[str, Any] = {}
    if state is not None:
        values["state"] = state
    if counts is not None:
        values["counts"] = counts
    if checkpoint is not None:
        values["checkpoint"] = checkpoint
    if add_attempt:
        values["attempts"] = table.c.attempts + 1
    for key, value in (("started_at", started_at), ("finished_at", finished_at), ("error", error)):
        if not isinstance(value, _Unset):
            values[key] = value
    if not values:
        return
    with store.engine.begin() as conn:
        result = conn.execute(
            sa.update(table).where(table.c.workflow_id == workflow_id, table.c.name == name).values(**values)
        )
    if result.rowcount == 0:
        raise NotFoundError("task", f"{workflow_id}/{name}")


# ---------------------------------------------------------------------------------------------------------
# Notifications


def add_notification(
    store: Store,
    *,
    workflow_id: str | None,
    severity: Severity,
    title: str,
    message: str,
    resolution: str | None = None,
) -> NotificationRecord:
    """Raise a notification (never put PII or secrets in title/message; e-mail addresses are removed anyway,
    since notifications are posted to webhooks)."""
    with store.engine.begin() as conn:
        result = conn.execute(
            sa.insert(schema.notifications).values(
                workflow_id=workflow_id,
                created_at=_now(),
                severity=severity,
                title=redact_text(title, digits=False),
                message=redact_text(message, digits=False),
                resolution=resolution,
                read=False,
                webhook_attempts=0,
            )
        )
        new_id = result.inserted_primary_key[0] if result.inserted_primary_key else None
        row = (
            conn.execute(sa.select(schema.notifications).where(schema.notifications.c.id == new_id))
            .mappings()
            .one()
        )
    return NotificationRecord.model_validate(_utc_row(row))


def list_notifications(
    store: Store, *, unread_only: bool = False, limit: int = 100
) -> list[NotificationRecord]:
    """Most recent notifications first."""
    table = schema.notifications
    query = sa.select(table).order_by(table.c.id.desc()).limit(limit)
    if unread_only:
        query = query.where(table.c.read.is_(False))
    with store.engine.connect() as conn:
        return [NotificationRecord.model_validate(_utc_row(row)) for row in conn.execute(query).mappings()]


def update_notification(
    store: Store,
    notification_id: int,
    *,
    read: bool | None = None,
    webhook_state: str | None = None,
    add_webhook_attempt: bool = False,
) -> None:
    """Mark a notification read and/or record a webhook delivery attempt."""
    table = schema.notifications
    values: dict[str, Any] = {}
    if read is not None:
        values["read"] = read
    if webhook_state is not None:
        values["webhook_state"] = webhook_state
    if add_webhook_attempt:
        values["webhook_attempts"] = table.c.webhook_attempts + 1
    if values:
        with store.engine.begin() as conn:
            conn.execute(sa.update(table).where(table.c.id == notification_id).values(**values))


# ---------------------------------------------------------------------------------------------------------
# Audience state


def get_audience_states(store: Store, destination: str, orchestration: str) -> list[AudienceStateRecord]:
    """The stored TikTok audience per advertiser for one destination + orchestration."""
    table = schema.audience_state
    query = (
        sa.select(table)
        .where(table.c.destination == destination, table.c.orchestration == orchestration)
        .order_by(table.c.advertiser_id)
    )
    with store.engine.connect() as conn:
        return [AudienceStateRecord.model_validate(_utc_row(row)) for row in conn.execute(query).mappings()]


def put_audience_state(store: Store, record: AudienceStateRecord) -> None:
    """Insert or replace the audience state of (destination, orchestration, advertiser)."""
    table = schema.audience_state
    key = (
        table.c.destination == record.destination,
        table.c.orchestration == record.orchestration,
        table.c.advertiser_id == record.advertiser_id,
    )
    values = record.model_dump(
        exclude={"destination", "orchestration", "advertiser_id", "created_at", "updated_at"}
    )
    with store.engine.begin() as conn:
        result = conn.execute(sa.update(table).where(*key).values(updated_at=_now(), **values))
        if result.rowcount == 0:
            conn.execute(
                sa.insert(table).values(
                    destination=record.destination,
                    orchestration=record.orchestration,
                    advertiser_id=record.advertiser_id,
                    created_at=_now(),
                    updated_at=_now(),
                    **values,
                )
            )


def delete_audience_state(store: Store, destination: str, orchestration: str, advertiser_id: str) -> bool:
    """Forget the stored audience (e.g. TikTok deleted it); True when a row was removed."""
    table = schema.audience_state
    with store.engine.begin() as conn:
        result = conn.execute(
            sa.delete(table).where(
                table.c.destination == destination,
                table.c.orchestration == orchestration,
                table.c.advertiser_id == advertiser_id,
            )
        )
    return result.rowcount > 0


def model_rows(models: Sequence[M]) -> list[dict[str, Any]]:
    """JSON-safe dicts of models (secrets redacted) for `--json` output."""
    return [model.model_dump(mode="json") for model in models]


def page_workflows(
    store: Store,
    *,
    orchestration: str | None = None,
    state: str | None = None,
    exclude_orchestrations: Sequence[str] = (),
    limit: int = 50,
    offset: int = 0,
) -> list[WorkflowRecord]:
    """One page of workflows, newest first (without their tasks), filtered by orchestration and state."""
    table = schema.workflows
    query = sa.select(table).order_by(table.c.created_at.desc(), table.c.id).limit(limit).offset(offset)
    if orchestration is not None:
        query = query.where(table.c.orchestration == orchestration)
    if state is not None:
        query = query.where(table.c.state == state)
    if exclude_orchestrations:
        query = query.where(table.c.orchestration.not_in(list(exclude_orchestrations)))
    with store.engine.connect() as conn:
        return [WorkflowRecord.model_validate(_utc_row(row)) for row in conn.execute(query).mappings()]


def count_workflows_by_state(store: Store) -> list[tuple[str, str, int]]:
    """(orchestration, state, count) of every stored workflow: the runs metric of the server."""
    table = schema.workflows
    query = sa.select(table.c.orchestration, table.c.state, sa.func.count()).group_by(
        table.c.orchestration, table.c.state
    )
    with store.engine.connect() as conn:
        return [(str(o), str(s), int(n)) for o, s, n in conn.execute(query).all()]


def get_notification(store: Store, notification_id: int) -> NotificationRecord:
    """One notification, or `NotFoundError`."""
    table = schema.notifications
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(table).where(table.c.id == notification_id)).mappings().first()
    if row is None:
        raise NotFoundError("notification", str(notification_id))
    return NotificationRecord.model_validate(_utc_row(row))


def list_audience_states(store: Store) -> list[AudienceStateRecord]:
    """Every orchestration's TikTok audience with its last known size."""
    table = schema.audience_state
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(table).order_by(table.c.orchestration)).mappings().all()
    return [AudienceStateRecord.model_validate(_utc_row(row)) for row in rows]


def workflow_ids_of(store: Store, orchestrations: Sequence[str]) -> list[str]:
    """Ids of every workflow of these orchestrations."""
    table = schema.workflows
    query = sa.select(table.c.id).where(table.c.orchestration.in_(list(orchestrations)))
    with store.engine.connect() as conn:
        return [str(i) for i in conn.execute(query).scalars()]
