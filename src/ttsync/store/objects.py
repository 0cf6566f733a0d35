"""The configuration objects in the store: credentials (secrets encrypted), sources, destinations, data
templates, orchestrations, segments and campaigns.

`save_*` report whether the object was created, updated or unchanged (what `ttsync apply` prints).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import SecretStr

from ttsync.config.campaigns import Campaign, Segment
from ttsync.config.models import Credential, DataTemplate, Destination, Orchestration, Source
from ttsync.errors import ConfigError, NotFoundError
from ttsync.store import schema
from ttsync.store.configrepo import ConfigRepo, get_row, list_rows, same_columns, upsert, validated
from ttsync.store.db import Store
from ttsync.store.records import Change
from ttsync.store.rows import UNSET, Unset, as_utc, utc_now, utc_row

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
            stored = as_utc(row[key]) if isinstance(row[key], datetime) else row[key]
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

    return upsert(store, schema.credentials, credential.name, plain | secrets, same)


def _credential_from_row(store: Store, row: sa.RowMapping) -> Credential:
    def sealed(token: str | None) -> SecretStr | None:
        return None if token is None else store.box.seal(token)

    values = utc_row(row)
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
    refresh_token: str | Unset | None = UNSET,
    token_expires_at: datetime | Unset | None = UNSET,
    refresh_token_expires_at: datetime | Unset | None = UNSET,
    advertiser_ids: list[str] | Unset = UNSET,
) -> None:
    """Store new tokens (after OAuth or a refresh), encrypted. Unset arguments keep their stored values."""
    values: dict[str, Any] = {"access_token_enc": store.box.encrypt(access_token), "updated_at": utc_now()}
    if not isinstance(refresh_token, Unset):
        values["refresh_token_enc"] = None if refresh_token is None else store.box.encrypt(refresh_token)
    if not isinstance(token_expires_at, Unset):
        values["token_expires_at"] = token_expires_at
    if not isinstance(refresh_token_expires_at, Unset):
        values["refresh_token_expires_at"] = refresh_token_expires_at
    if not isinstance(advertiser_ids, Unset):
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
                updated_at=utc_now(),
            )
        )
    if result.rowcount == 0:
        raise NotFoundError("credential", name)


# ---------------------------------------------------------------------------------------------------------
# Sources


def save_source(store: Store, source: Source) -> Change:
    """Create or update a source."""
    fields = {"path", "url", "url_env", "table", "hash_in_warehouse", "e164_columns", "master", "spark_conf",
              "snapshot_uri"}  # fmt: skip
    config = source.model_dump(include=fields, exclude_defaults=True)
    values = {"kind": source.kind, "config": config, "description": source.description}
    return upsert(store, schema.sources, source.name, values, same_columns(values))


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
        "settings": dict(destination.settings),
        "admin_only": destination.admin_only,
        "allow_restricted_pii": destination.allow_restricted_pii,
        "sandbox_base_url": destination.sandbox_base_url,
        "description": destination.description,
    }
    return upsert(store, schema.destinations, destination.name, values, same_columns(values))


def get_credential_name(store: Store, name: str) -> str:
    """Check that credential `name` exists without touching its secrets."""
    get_row(store, schema.credentials, "credential", name)
    return name


DESTINATIONS = ConfigRepo(
    "destination",
    schema.destinations,
    validated(Destination),
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
    return upsert(store, schema.data_templates, template.name, values, same_columns(values))


TEMPLATES = ConfigRepo(
    "data template",
    schema.data_templates,
    validated(DataTemplate),
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
    return upsert(store, schema.orchestrations, orchestration.name, values, same_columns(values))


# No used_by: its workflows stay, as history.
ORCHESTRATIONS = ConfigRepo("orchestration", schema.orchestrations, validated(Orchestration))


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
    return upsert(store, schema.segments, segment.name, body, same_columns(body))


def get_segment(store: Store, name: str) -> Segment:
    """The segment `name`."""
    return Segment.model_validate(get_row(store, schema.segments, "segment", name)["body"])


def list_segments(store: Store) -> list[Segment]:
    """All segments, by name."""
    return [Segment.model_validate(row["body"]) for row in list_rows(store, schema.segments)]


def save_campaign(store: Store, campaign: Campaign) -> Change:
    """Create or update a campaign (checked by `config.campaigns.check_campaign` before)."""
    body = {"body": campaign.model_dump(mode="json")}
    return upsert(store, schema.campaigns, campaign.name, body, same_columns(body))


def get_campaign(store: Store, name: str) -> Campaign:
    """The campaign `name`."""
    return Campaign.model_validate(get_row(store, schema.campaigns, "campaign", name)["body"])


def list_campaigns(store: Store) -> list[Campaign]:
    """All campaigns, by name."""
    return [Campaign.model_validate(row["body"]) for row in list_rows(store, schema.campaigns)]
