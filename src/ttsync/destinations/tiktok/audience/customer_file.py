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

The calls of a delivery are planned in `customer_file_calls`; its steps (checkpoint objects, uploads, create,
update, share) are in `customer_file_steps`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from ttsync.destinations.tiktok.audience.audience import (
    MIN_USABLE_SIZE,
)
from ttsync.destinations.tiktok.audience.customer_file_calls import (
    MAX_PATHS_PER_CALL,
    RECOMMENDED_PATHS_PER_CALL,
    Call,
    CallAction,
    CustomerFileOptions,
    Phase,
    calculate_type_for,
    delivery_steps,
    plan_calls,
    single_calculate_type,
)
from ttsync.destinations.tiktok.audience.customer_file_steps import (  # this delivery's own steps, split out for size
    _create_once,
    _Done,
    _part_counts,
    _share,
    _State,
    _update,
    _upload_needed,
)
from ttsync.destinations.tiktok.client import AsyncTikTokClient
from ttsync.errors import ConfigError, ResolvableError
from ttsync.sync.plan import AudiencePlan, SyncMode
from ttsync.workflows.crashpoints import crash_point

__all__ = [
    "MAX_PATHS_PER_CALL",
    "RECOMMENDED_PATHS_PER_CALL",
    "Call",
    "CallAction",
    "CustomerFileOptions",
    "CustomerFileResult",
    "Phase",
    "calculate_type_for",
    "deliver_customer_file",
    "delivery_steps",
    "plan_calls",
    "single_calculate_type",
]


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
