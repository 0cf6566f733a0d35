"""Deliver a planned audience through TikTok's customer-file (DMP) API (ref §2.4).

One delivery writes hashed `.csv` parts from the plan's Parquet outputs (DuckDB `COPY`, see
`customer_file_parts`), uploads each part (the client sends its MD5 as `file_signature`), then creates or
updates the audience from the uploaded file paths, with the action always stated explicitly: TikTok's
update defaults to REPLACE, which would silently drop everyone not in the file (DESIGN, rules).

| mode      | no audience yet (first delivery)   | audience exists                                  |
|-----------|------------------------------------|--------------------------------------------------|
| `create`  | create with everyone               | create another one (a new audience per delivery) |
| `mirror`  | create with everyone               | REMOVE the removes, then APPEND the adds         |
| `append`  | create with everyone               | APPEND the adds                                  |
| `replace` | create with everyone               | REPLACE with everyone                            |

After a create the audience is shared with the destination's other advertisers (same business center).

Progress is kept in a JSON-able checkpoint dict (`checkpoint` in, `save_checkpoint` out after every step
TikTok confirmed): the parts and the TikTok file path of each uploaded part, the audience a create made, the
create/update calls TikTok confirmed, and whether the audience was shared. A retried delivery uploads only
parts it has no file path for and skips confirmed calls.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal, cast

import duckdb

from ttsync.audiences.audience import (
    AUDIENCE_CAP,
    MIN_USABLE_SIZE,
    audience_count,
    create_once,
    find_listed_audience,
    share_audience,
)
from ttsync.audiences.customer_file_parts import DEFAULT_PART_ROWS, PartFile, write_parts
from ttsync.audiences.plan import AudiencePlan, SyncMode
from ttsync.errors import AudienceLimitReachedError, ResolvableError
from ttsync.identity.digests import HEX_SQL
from ttsync.sqltext import sql_literal
from ttsync.tiktok import AsyncTikTokClient, InvalidRequestError, NotFoundError
from ttsync.tiktok.models.common import CalculateType
from ttsync.tiktok.models.dmp import AudienceDetails, UpdateAction
from ttsync.workflows.crashpoints import crash_point
from ttsync.workspace.errors import ConfigError

# id_schema (the identity stage's names) -> customer-file calculate_type (ref §2.4). The file flow names
# Android advertising ids GAID where the mapping API says AAID.
CALCULATE_TYPES: Final[dict[str, CalculateType]] = {
    "EMAIL_SHA256": "EMAIL_SHA256",
    "PHONE_SHA256": "PHONE_SHA256",
    "IDFA_SHA256": "IDFA_SHA256",
    "IDFA_MD5": "IDFA_MD5",
    "AAID_SHA256": "GAID_SHA256",
    "AAID_MD5": "GAID_MD5",
}
# Header line of each file. Email and phone files are named by their calculate_type; mobile ids use the
# MAID headers TikTok's customer-file pages list (ref §6.3). The calculate_type sent with the upload is what
# tells TikTok the type; the header only has to be one TikTok skips rather than reads as an identifier.
FILE_HEADERS: Final[dict[str, str]] = {
    "EMAIL_SHA256": "EMAIL_SHA256",
    "PHONE_SHA256": "PHONE_SHA256",
    "IDFA_SHA256": "MAID_SHA256",
    "IDFA_MD5": "MAID_MD5",
    "GAID_SHA256": "MAID_SHA256",
    "GAID_MD5": "MAID_MD5",
}
MAX_PATHS_PER_CALL: Final = 500  # file_paths maxItems of create and update (ref §2.4 step 2)
RECOMMENDED_PATHS_PER_CALL: Final = 49  # "fewer than 50 per request is recommended" (ref §2.4 step 2)
CHECKPOINT_VERSION: Final = 1

Phase = Literal["full", "add", "remove"]
CallAction = Literal["CREATE", "APPEND", "REMOVE", "REPLACE"]


def calculate_type_for(id_schema: str) -> CalculateType:
    """The customer-file calculate_type that carries `id_schema` (e.g. AAID_SHA256 -> GAID_SHA256)."""
    try:
        return CALCULATE_TYPES[id_schema.upper()]
    except KeyError:
        raise ConfigError(
            f"user id type {id_schema} cannot be sent in a customer file; customer files take "
            f"{', '.join(CALCULATE_TYPES)}"
        ) from None


def single_calculate_type(id_schemas: Sequence[str]) -> CalculateType:
    """The one calculate_type of a customer-file destination; ConfigError for none or several types."""
    if len(id_schemas) != 1:
        listed = ", ".join(id_schemas) or "none"
        raise ConfigError(
            f"a customer-file destination takes exactly one user id type (TikTok sets one calculate_type per "
            f"customer-file audience), but this one has {listed}. Use delivery 'partner', which sends several "
            "types in one audience, or make one customer-file destination per user id type"
        )
    return calculate_type_for(id_schemas[0])


@dataclass(frozen=True)
class CustomerFileOptions:
    """Knobs of a customer-file delivery (defaults suit production; tests turn them down)."""

    part_rows: int = DEFAULT_PART_ROWS  # hashes per uploaded file
    paths_per_call: int = RECOMMENDED_PATHS_PER_CALL  # file paths per create/update call (<= 500)
    upload_concurrency: int = 2  # uploads in flight (they share the app's `default` rate-limit group)
    ready_timeout_seconds: float = 60.0  # wait this long for a processing audience before giving up
    poll_seconds: float = 5.0

    def __post_init__(self) -> None:
        if not 1 <= self.paths_per_call <= MAX_PATHS_PER_CALL:
            raise ValueError(f"paths_per_call must be between 1 and {MAX_PATHS_PER_CALL}")
        if self.part_rows < 1 or self.upload_concurrency < 1:
            raise ValueError("part_rows and upload_concurrency must be at least 1")
        if self.part_rows * self.paths_per_call < MIN_USABLE_SIZE:
            # The first call of a large set creates (or replaces) with one chunk of parts; a chunk under
            # 1,000 people would land the audience at size 0, after which TikTok refuses every update.
            raise ValueError(f"part_rows x paths_per_call must be at least {MIN_USABLE_SIZE:,}")


@dataclass(frozen=True)
class Call:
    """One create or update call: its action, the phase whose parts it sends, which parts."""

    key: str  # stable across attempts: index and action, e.g. "1:APPEND"
    action: CallAction
    phase: Phase
    parts: tuple[int, ...]


@dataclass
class CustomerFileResult:
    """What one delivery did (counts are of this attempt; `checkpoint` is the final checkpoint)."""

    audience_id: str
    created: bool
    calculate_type: str
    calls: list[str]
    files_uploaded: int
    rows_uploaded: int
    rows_by_action: dict[str, int]
    shared_with: list[str]
    warnings: list[str]
    checkpoint: dict[str, Any] = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (no checkpoint)."""
        return {
            "audience_id": self.audience_id,
            "created": self.created,
            "calculate_type": self.calculate_type,
            "calls": self.calls,
            "files_uploaded": self.files_uploaded,
            "rows_uploaded": self.rows_uploaded,
            "rows_by_action": self.rows_by_action,
            "shared_with": self.shared_with,
            "warnings": self.warnings,
        }


async def deliver_customer_file(
    client: AsyncTikTokClient,
    con: duckdb.DuckDBPyConnection,
    plan: AudiencePlan,
    *,
    advertiser_ids: Sequence[str],
    audience_id: str | None,
    audience_name: str,
    retention_in_days: int | None,
    work_dir: Path,
    checkpoint: Mapping[str, Any] | None,
    save_checkpoint: Callable[[dict[str, Any]], None],
    options: CustomerFileOptions | None = None,
    progress: Callable[[str, int], None] | None = None,
    create_intent: Path | None = None,
) -> CustomerFileResult:
    """Send `plan` to a customer-file audience and return what was done.

    `advertiser_ids[0]` owns the audience; the others get it shared after a create. `audience_id` is the
    stored audience (None when there is none yet; ignored in mode `create`, which makes a new one per
    delivery). `checkpoint` is what `save_checkpoint` last received for this delivery (None on the first
    attempt). `work_dir` receives the hashed `.csv` parts (hashes only, never raw values); keep it until the
    delivery is done, a retry reuses the files (and rewrites them if they are gone). `progress(step,
    amount)` reports uploaded rows ("upload") and rows applied ("apply"). `con` is a DuckDB connection for
    writing the parts (e.g. `plan.connect(...)`, with its memory limit and spill folder). `create_intent` is
    where a create is announced (see `audience.create_once`): an audience an earlier attempt created without
    hearing back is adopted and REPLACEd with this delivery's files, never created twice.

    Raises `ResolvableError` with `audience_not_editable` (TikTok refuses updates below 1,000 people),
    `replace_in_progress` (the audience is still processing an earlier change), `audience_limit_reached`.
    """
    opts = options or CustomerFileOptions()
    if not advertiser_ids:
        raise ConfigError("the destination has no advertiser id: set advertiser_ids")
    owner = advertiser_ids[0]
    calculate_type = single_calculate_type(plan.id_schemas)
    state = _State.load(checkpoint, calculate_type, opts.part_rows, audience_id)
    if state.creating is None:
        # Decided once per delivery and kept: the calls to make depend on it, and after the create the
        # audience exists, so deciding again would turn the rest of a first delivery into updates.
        state.creating = plan.mode is SyncMode.CREATE or audience_id is None
        state.audience_id = None if state.creating else audience_id
    target = state.audience_id
    counts = _part_counts(con, plan, state, work_dir)
    calls = plan_calls(plan, creating=state.creating, part_counts=counts, paths_per_call=opts.paths_per_call)
    done = _Done(calculate_type=calculate_type)
    report = progress or (lambda _step, _n: None)

    pending = [c for c in calls if c.key not in state.confirmed]
    await _upload_needed(
        client, con, plan, state, pending, owner, work_dir, opts, done, save_checkpoint, report
    )
    for call in pending:
        paths = [state.file_path(call.phase, i) for i in call.parts]
        rows = sum(state.parts[call.phase][i].rows for i in call.parts)
        if call.action == "CREATE":
            created = await _create_once(
                client, owner, audience_name, calculate_type, paths, retention_in_days, create_intent
            )
            if created.adopted:
                # An earlier attempt's create went through unheard, maybe with other files: make the audience
                # hold exactly what this create would have.
                await _update(client, owner, created.audience_id, "REPLACE", paths, plan, opts, held=None)
            crash_point("create:sent")
            # The id goes into the checkpoint at once: a retry must update this audience, never create
            # another one.
            state.audience_id = target = created.audience_id
            if plan.current_ids < MIN_USABLE_SIZE:
                done.warnings.append(
                    f"audience {target} was created with {plan.current_ids:,} identifiers; TikTok keeps a "
                    f"customer-file audience under {MIN_USABLE_SIZE:,} people at size 0, and it cannot be "
                    "used in an ad group or updated later"
                )
        else:
            assert target is not None, "an update call always follows a create or a stored audience"
            # What TikTok should hold before this delivery's updates (for telling "landed at 0" from
            # "processing" when TikTok gives no reason): the snapshot, or unknown when this delivery created it.
            held = None if state.creating else plan.previous_ids
            await _update(client, owner, target, call.action, paths, plan, opts, held=held)
        # Re-applying a confirmed step would not corrupt the audience: REMOVE drops only hashes that match,
        # APPEND adds only hashes that are new, REPLACE with the same files gives the same set (ref §2.4
        # step 3), and adds and removes of one plan never overlap. Skipping it still matters: each update
        # puts the audience back into processing, and it refuses further updates until that ends.
        state.confirmed.append(call.key)
        save_checkpoint(state.to_json())
        done.calls.append(call.key)
        done.rows_by_action[call.action] = done.rows_by_action.get(call.action, 0) + rows
        report("apply", rows)

    if target is None:
        raise ResolvableError(
            f"nobody in this delivery has a {calculate_type} identifier, and TikTok cannot create an empty "
            "customer-file audience: check the query and the user id type of the destination",
            resolution_key="invalid_request",
        )
    shared = await _share(client, state, owner, target, advertiser_ids, save_checkpoint)
    return CustomerFileResult(
        audience_id=target,
        created=bool(state.creating),
        calculate_type=calculate_type,
        calls=done.calls,
        files_uploaded=done.files,
        rows_uploaded=done.rows,
        rows_by_action=done.rows_by_action,
        shared_with=shared,
        warnings=done.warnings,
        checkpoint=state.to_json(),
    )


def plan_calls(
    plan: AudiencePlan, *, creating: bool, part_counts: Mapping[str, int], paths_per_call: int
) -> list[Call]:
    """The create/update calls of one delivery, in order; each sends at most `paths_per_call` parts.

    `part_counts` maps a phase ("full", "add", "remove") to its number of parts; a phase without parts
    sends nothing.
    """
    calls: list[Call] = []
    for action, phase in delivery_steps(plan, creating=creating):
        count = int(part_counts.get(phase, 0))
        for start in range(0, count, paths_per_call):
            # More parts than one call takes: the first call creates (or replaces), the others append.
            step: CallAction = action if start == 0 or action in ("REMOVE", "APPEND") else "APPEND"
            parts = tuple(range(start, min(start + paths_per_call, count)))
            calls.append(Call(f"{len(calls)}:{step}", step, phase, parts))
    return calls


def delivery_steps(plan: AudiencePlan, *, creating: bool) -> list[tuple[CallAction, Phase]]:
    """Which action sends which set of hashes, in order (see the table in the module docstring)."""
    if creating:
        return [("CREATE", "full")]
    if plan.mode is SyncMode.REPLACE or (plan.mode is SyncMode.MIRROR and plan.full_upload):
        # A mirror without a snapshot (lost, or the last delivery never committed) cannot know whom to
        # remove: REPLACE makes the audience equal to the query anyway.
        return [("REPLACE", "full")]
    if plan.mode is SyncMode.APPEND:
        return [("APPEND", "add")]
    steps: list[tuple[CallAction, Phase]] = [("REMOVE", "remove"), ("APPEND", "add")]
    # Removes go first, like the partner path, except when the audience would dip under 1,000 people between
    # the two calls while ending above: TikTok refuses an update that leaves fewer than 1,000 (ref §2.4 step
    # 3), so then the adds go first. Adds and removes of one plan are disjoint: the order does not change
    # the result.
    if plan.previous_ids - plan.remove_ids < MIN_USABLE_SIZE <= plan.current_ids:
        steps.reverse()
    return steps


# -- internals -------------------------------------------------------------------------------------------


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
    column = '"' + plan.id_schemas[0].replace('"', '""') + '"'
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
    await _wait_editable(client, owner, audience_id, opts, held=held)
    try:
        await client.update_custom_audience(owner, audience_id, action=action, file_paths=list(paths))
    except InvalidRequestError as exc:
        if exc.resolution_key != "audience_not_editable":
            raise
        # TikTok gives one message for "still processing" and "too small" (ref §2.5); the audience's state
        # tells them apart.
        details = await _details(client, owner, audience_id)
        if details is not None and _landed_at_zero(details, held=held):
            raise _too_small(audience_id, details) from exc
        if details is not None and _processing(details):
            raise _in_progress(audience_id) from exc
        raise ResolvableError(
            f"TikTok refused to {action} customer-file audience {audience_id}: it would hold fewer than "
            f"{MIN_USABLE_SIZE:,} people afterwards (or has landed at size 0), and TikTok does not update "
            f"customer-file audiences below that. This delivery's segment has {plan.current_ids:,} "
            "identifiers. Widen the segment to at least 1,000 matched people, or switch the destination to "
            "partner delivery, which has no such minimum",
            resolution_key="audience_not_editable",
        ) from exc


async def _wait_editable(
    client: AsyncTikTokClient,
    owner: str,
    audience_id: str,
    opts: CustomerFileOptions,
    *,
    held: int | None = None,
) -> None:
    """Poll until the audience is valid; a processing one past the timeout gives `replace_in_progress`."""
    deadline = time.monotonic() + opts.ready_timeout_seconds
    delay = min(opts.poll_seconds, 0.25)
    while True:
        details = await _details(client, owner, audience_id)
        if details is None:
            raise ResolvableError(
                f"audience {audience_id} no longer exists in TikTok; restart the workflow so ttsync creates "
                "a new one and uploads everyone",
                resolution_key="audience_not_editable",
            )
        if details.is_valid:
            return
        if _landed_at_zero(details, held=held):
            raise _too_small(audience_id, details)
        if not _processing(details):
            raise ResolvableError(
                f"customer-file audience {audience_id} cannot be edited: {details.error_msg} TikTok keeps "
                f"an audience that was created with fewer than {MIN_USABLE_SIZE:,} people at size 0. Widen "
                "the segment and use mode 'create' for a new audience, or switch to partner delivery",
                resolution_key="audience_not_editable",
            )
        if time.monotonic() >= deadline:
            raise _in_progress(audience_id)
        await asyncio.sleep(delay)
        delay = min(delay * 2, opts.poll_seconds)


# TikTok builds a customer-file audience within 24-48 hours (ref §2.5, HELP): still at size 0 after that, it
# did not reach 1,000 matched people.
BUILD_WINDOW_SECONDS: Final = 48 * 3600


def _landed_at_zero(details: AudienceDetails, *, held: int | None, now: datetime | None = None) -> bool:
    """True when an invalid audience at size 0 *without* an error message has landed at 0 for good.

    TikTok's `error_msg` for this may be null (Segment's fixture, ref §9), which alone reads like "still
    processing" forever. So it is concluded from size and time: TikTok holds fewer than 1,000 identifiers by
    ttsync's own snapshot (`held`), or the audience is still at 0 after TikTok's 24-48 hour build window.
    """
    if details.is_valid or (details.error_msg or "").strip() or details.cover_num not in (0, None):
        return False
    if held is not None and held < MIN_USABLE_SIZE:
        return True
    created = _parse_time(details.create_time)
    if created is None:
        return False
    return ((now or datetime.now(UTC)) - created).total_seconds() >= BUILD_WINDOW_SECONDS


def _parse_time(text: str | None) -> datetime | None:
    """TikTok's `YYYY-MM-DD HH:MM:SS` (UTC, ref §2.1), or None."""
    try:
        return datetime.strptime(text or "", "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None


def _too_small(audience_id: str, details: AudienceDetails) -> ResolvableError:
    return ResolvableError(
        f"customer-file audience {audience_id} is at size 0 and TikTok gives no reason: it was left with fewer "
        f"than {MIN_USABLE_SIZE:,} matched people (a small segment, or identifiers TikTok could not match), and "
        "TikTok does not update such an audience. Widen the segment (check the match report with `ttsync run "
        "ORCHESTRATION --plan`), then use mode 'create' for a new audience or switch to partner delivery",
        resolution_key="audience_too_small",
    )


def _processing(details: AudienceDetails) -> bool:
    # Invalid without an error message: still processing (or expired, which the caller's verify step
    # checks before every delivery). An audience that landed at size 0 carries an error message.
    return not details.is_valid and not (details.error_msg or "").strip()


def _in_progress(audience_id: str) -> ResolvableError:
    return ResolvableError(
        f"customer-file audience {audience_id} is still processing an earlier change in TikTok (this can "
        "take hours for large files); ttsync continues where it stopped when the workflow is retried",
        resolution_key="replace_in_progress",
    )


async def _details(client: AsyncTikTokClient, owner: str, audience_id: str) -> AudienceDetails | None:
    try:
        result = await client.get_custom_audiences(owner, [audience_id], history_size=1)
    except (NotFoundError, InvalidRequestError) as exc:
        # The code for a deleted id is undocumented (40007 or 40002, ref §9): the list decides.
        if exc.resolution_key in ("advertiser_not_found", "missing_advertiser_permissions"):
            raise
        if await find_listed_audience(client, owner, audience_id) is not None:
            raise
        return None
    for item in result.audiences:
        if item.audience_details.audience_id == audience_id:
            return item.audience_details
    return None


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
