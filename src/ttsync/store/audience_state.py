"""A destination's state per orchestration and advertiser: the audience it created, its last known size."""

from __future__ import annotations

import sqlalchemy as sa

from ttsync.store import schema
from ttsync.store.db import Store
from ttsync.store.records import AudienceStateRecord
from ttsync.store.rows import utc_now, utc_row


def get_audience_states(store: Store, destination: str, orchestration: str) -> list[AudienceStateRecord]:
    """The stored TikTok audience per advertiser for one destination + orchestration."""
    table = schema.audience_state
    query = (
        sa.select(table)
        .where(table.c.destination == destination, table.c.orchestration == orchestration)
        .order_by(table.c.advertiser_id)
    )
    with store.engine.connect() as conn:
        return [AudienceStateRecord.model_validate(utc_row(row)) for row in conn.execute(query).mappings()]


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
        result = conn.execute(sa.update(table).where(*key).values(updated_at=utc_now(), **values))
        if result.rowcount == 0:
            conn.execute(
                sa.insert(table).values(
                    destination=record.destination,
                    orchestration=record.orchestration,
                    advertiser_id=record.advertiser_id,
                    created_at=utc_now(),
                    updated_at=utc_now(),
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


def list_audience_states(store: Store) -> list[AudienceStateRecord]:
    """Every orchestration's TikTok audience with its last known size."""
    table = schema.audience_state
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(table).order_by(table.c.orchestration)).mappings().all()
    return [AudienceStateRecord.model_validate(utc_row(row)) for row in rows]
