"""The steps of a customer-file delivery (customer_file.py): its checkpoint as objects, the parts of each
phase, uploads, and the create, update and share calls."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, cast

import duckdb

from ttsync.destinations.tiktok.audience.audience import (
    AUDIENCE_CAP,
    MIN_USABLE_SIZE,
    audience_count,
    create_once,
    lookup_audience,
    share_audience,
)
from ttsync.destinations.tiktok.audience.customer_file_calls import (
    Call,
    CustomerFileOptions,
    Phase,
    delivery_steps,
)
from ttsync.destinations.tiktok.audience.customer_file_parts import PartFile, write_parts
from ttsync.destinations.tiktok.audience.customer_file_ready import (
    in_progress,
    landed_at_zero,
    processing,
    too_small,
    wait_editable,
)
from ttsync.destinations.tiktok.client import AsyncTikTokClient, InvalidRequestError
from ttsync.destinations.tiktok.client.models.common import CalculateType
from ttsync.destinations.tiktok.client.models.dmp import UpdateAction
from ttsync.destinations.tiktok.schemas import FILE_HEADERS
from ttsync.errors import AudienceLimitReachedError, ResolvableError
from ttsync.identity.digests import HEX_SQL
from ttsync.sqltext import sql_identifier, sql_literal
from ttsync.sync.plan import AudiencePlan

CHECKPOINT_VERSION: Final = 1


@dataclass
class _Done:
    calculate_type: str
    calls: list[str] = field(default_factory=list)
    files: int = 0
    rows: int = 0
    rows_by_action: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Part:
    file: PartFile
    file_path: str | None = None  # TikTok's path once uploaded (usable by the uploading advertiser only)

    @property
    def rows(self) -> int:
        return self.file.rows


@dataclass
class _State:
    """The checkpoint, as objects. JSON form: see `to_json`."""

    calculate_type: str
    part_rows: int
    creating: bool | None = None
    audience_id: str | None = None
    parts: dict[str, list[_Part]] = field(default_factory=dict)
    confirmed: list[str] = field(default_factory=list)
    shared: bool = False

    @classmethod
    def load(
        cls, data: Mapping[str, Any] | None, calculate_type: str, part_rows: int, audience_id: str | None
    ) -> _State:
        fresh = cls(calculate_type=calculate_type, part_rows=part_rows)
        if not data:
            return fresh
        if data.get("creating") is False and data.get("audience_id") != audience_id:
            # Progress of updates to another audience (the stored one was replaced since): none of it applies.
            return fresh
        if data.get("version") != CHECKPOINT_VERSION or data.get("calculate_type") != calculate_type:
            raise ResolvableError(
                "the saved progress of this delivery belongs to another user id type or ttsync version; "
                "restart the workflow",
                resolution_key="invalid_request",
            )
        parts = {
            phase: [
                _Part(PartFile(p["name"], int(p["rows"]), p["md5"]), p.get("file_path"))
                for p in cast(list[dict[str, Any]], items)
            ]
            for phase, items in cast(dict[str, Any], data.get("parts") or {}).items()
        }
        return cls(
            calculate_type=calculate_type,
            # A resumed delivery keeps its split: part numbers only mean something with it.
            part_rows=int(data.get("part_rows") or part_rows),
            creating=data.get("creating"),
            audience_id=data.get("audience_id"),
            parts=parts,
            confirmed=list(data.get("confirmed") or []),
            shared=bool(data.get("shared")),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "version": CHECKPOINT_VERSION,
            "calculate_type": self.calculate_type,
            "part_rows": self.part_rows,
            "creating": self.creating,
            "audience_id": self.audience_id,
            "parts": {
                phase: [p.file.to_json() | {"file_path": p.file_path} for p in items]
                for phase, items in self.parts.items()
            },
            "confirmed": list(self.confirmed),
            "shared": self.shared,
        }

    def file_path(self, phase: str, index: int) -> str:
        path = self.parts[phase][index].file_path
        assert path is not None, "parts are uploaded before the call that sends them"
        return path


def _phase_sql(plan: AudiencePlan, phase: Phase) -> str:
    """SQL selecting the hashes (column `hash`) of one phase from the plan's Parquet outputs."""
    schema = sql_literal(plan.id_schemas[0])
    if phase == "full":
        current = f"read_parquet({sql_literal(plan.current_ids_path)})"
        # The prepared file lists an identifier once per person who has it: send each once.
        return f"SELECT {HEX_SQL} AS hash FROM (SELECT DISTINCT k1, k2, k3, k4 FROM {current} WHERE id_schema = {schema})"
    if phase == "remove":
        return (
            f"SELECT hash FROM read_parquet({sql_literal(plan.remove_ids_path)}) WHERE id_schema = {schema}"
        )
    column = sql_identifier(plan.id_schemas[0])
    return f"SELECT {column} AS hash FROM read_parquet({sql_literal(plan.add_rows_path)})"


def _part_counts(
    con: duckdb.DuckDBPyConnection, plan: AudiencePlan, state: _State, work_dir: Path
) -> dict[str, int]:
    """Parts per phase, writing the parts of a phase the checkpoint does not know yet."""
    assert state.creating is not None
    counts: dict[str, int] = {}
    for _action, phase in delivery_steps(plan, creating=state.creating):
        if phase not in state.parts:
            written = write_parts(
                con,
                source_sql=_phase_sql(plan, phase),
                header=FILE_HEADERS[state.calculate_type],
                out_dir=work_dir,
                prefix=phase,
                part_rows=state.part_rows,
            )
            state.parts[phase] = [_Part(p) for p in written]
        counts[phase] = len(state.parts[phase])
    return counts


async def _upload_needed(
    client: AsyncTikTokClient,
    con: duckdb.DuckDBPyConnection,
    plan: AudiencePlan,
    state: _State,
    pending: Sequence[Call],
    owner: str,
    work_dir: Path,
    opts: CustomerFileOptions,
    done: _Done,
    save_checkpoint: Callable[[dict[str, Any]], None],
    report: Callable[[str, int], None],
) -> None:
    """Upload every part a pending call sends and TikTok has no file path for yet."""
    needed = [(c.phase, i) for c in pending for i in c.parts if state.parts[c.phase][i].file_path is None]
    if not needed:
        return
    _rewrite_missing(con, plan, state, {phase for phase, _ in needed}, work_dir)
    semaphore = asyncio.Semaphore(opts.upload_concurrency)
    calculate_type = cast(CalculateType, state.calculate_type)

    async def upload(phase: str, index: int) -> None:
        part = state.parts[phase][index]
        async with semaphore:
            result = await client.upload_audience_file(
                owner, calculate_type=calculate_type, file=work_dir / part.file.name
            )
        part.file_path = result.file_path
        save_checkpoint(state.to_json())  # one event loop: no two saves interleave
        done.files += 1
        done.rows += part.rows
        report("upload", part.rows)

    try:
        async with asyncio.TaskGroup() as group:
            for phase, index in needed:
                group.create_task(upload(phase, index))
    except BaseExceptionGroup as failed:
        # Callers classify TikTok errors by type; hand them the first failure, not a group of them.
        raise failed.exceptions[0] from None


def _rewrite_missing(
    con: duckdb.DuckDBPyConnection, plan: AudiencePlan, state: _State, phases: set[str], folder: Path
) -> None:
    """Write again the parts of a resumed delivery whose files are gone (a new machine, a cleaned folder)."""
    for phase in sorted(phases):
        parts = state.parts[phase]
        if all((folder / p.file.name).exists() for p in parts if p.file_path is None):
            continue
        written = write_parts(
            con,
            source_sql=_phase_sql(plan, cast(Phase, phase)),
            header=FILE_HEADERS[state.calculate_type],
            out_dir=folder,
            prefix=phase,
            part_rows=state.part_rows,
        )
        # Same plan and same split give byte-identical parts; anything else means the plan changed under
        # a half-done delivery, and mixing old and new parts would send the wrong set.
        if [p.to_json() for p in written] != [p.file.to_json() for p in parts]:
            raise ResolvableError(
                "the files of this delivery changed since its upload started; restart the workflow",
                resolution_key="invalid_request",
            )


@dataclass(frozen=True)
class _Created:
    audience_id: str
    adopted: bool


async def _create_once(
    client: AsyncTikTokClient,
    owner: str,
    name: str,
    calculate_type: CalculateType,
    paths: Sequence[str],
    retention_in_days: int | None,
    intent: Path | None,
) -> _Created:
    """`_create`, or (with an intent file) the audience an earlier unanswered create made."""

    async def create() -> str:
        return await _create(client, owner, name, calculate_type, paths, retention_in_days)

    if intent is None:
        return _Created(await create(), adopted=False)
    audience_id, adopted = await create_once(client, owner, name, intent, create)
    return _Created(audience_id, adopted)


async def _create(
    client: AsyncTikTokClient,
    owner: str,
    name: str,
    calculate_type: CalculateType,
    paths: Sequence[str],
    retention_in_days: int | None,
) -> str:
    """Create the audience from uploaded files after checking the 400-audience cap (ref §2.4, §2.5)."""
    if await audience_count(client, owner) >= AUDIENCE_CAP:
        raise AudienceLimitReachedError(
            f"advertiser {owner} already has {AUDIENCE_CAP} custom audiences; delete unused ones in TikTok "
            "Ads Manager before ttsync can create another"
        )
    # A cap reached after the check above comes back tagged `audience_limit_reached` by the client.
    created = await client.create_custom_audience(
        owner,
        name=name,
        calculate_type=calculate_type,
        file_paths=list(paths),
        retention_in_days=retention_in_days,
    )
    return created.custom_audience_id


async def _update(
    client: AsyncTikTokClient,
    owner: str,
    audience_id: str,
    action: UpdateAction,
    paths: Sequence[str],
    plan: AudiencePlan,
    opts: CustomerFileOptions,
    *,
    held: int | None = None,
) -> None:
    """One update with an explicit action, once the audience has finished processing."""
    await wait_editable(
        client,
        owner,
        audience_id,
        timeout_seconds=opts.ready_timeout_seconds,
        poll_seconds=opts.poll_seconds,
        held=held,
    )
    try:
        await client.update_custom_audience(owner, audience_id, action=action, file_paths=list(paths))
    except InvalidRequestError as exc:
        if exc.resolution_key != "audience_not_editable":
            raise
        # TikTok gives one message for "still processing" and "too small" (ref §2.5); the audience's state
        # tells them apart.
        details = await lookup_audience(client, owner, audience_id)
        if details is not None and landed_at_zero(details, held=held):
            raise too_small(audience_id, details) from exc
        if details is not None and processing(details):
            raise in_progress(audience_id) from exc
        raise ResolvableError(
            f"TikTok refused to {action} customer-file audience {audience_id}: it would hold fewer than "
            f"{MIN_USABLE_SIZE:,} people afterwards (or has landed at size 0), and TikTok does not update "
            f"customer-file audiences below that. This delivery's segment has {plan.current_ids:,} "
            "identifiers. Widen the segment to at least 1,000 matched people, or switch the destination to "
            "partner delivery, which has no such minimum",
            resolution_key="audience_not_editable",
        ) from exc


async def _share(
    client: AsyncTikTokClient,
    state: _State,
    owner: str,
    audience_id: str,
    advertiser_ids: Sequence[str],
    save_checkpoint: Callable[[dict[str, Any]], None],
) -> list[str]:
    """Share a newly created audience with the destination's other advertisers (ref §2.3), once."""
    others = [a for a in dict.fromkeys(advertiser_ids) if a != owner]
    if not state.creating or not others:
        return []
    if not state.shared:
        await share_audience(client, owner, audience_id, others)  # at most 10 per call, inside
        state.shared = True
        save_checkpoint(state.to_json())
    return others
