"""The partner "Segment API": segment/audience/ and segment/mapping/ (ref §2.1, §8.5)."""

from __future__ import annotations

import re
from typing import Any, Final

import orjson

from ttsync.emulator.endpoints.common import Ctx, JsonDict, advertiser_access, endpoint
from ttsync.emulator.endpoints.mapping_body import PackedRows, parse_mapping_body
from ttsync.emulator.errors import NOT_FOUND, PARAM_ERROR, TASK_NOT_READY, TOO_MANY_IDS, ApiError, param_error
from ttsync.emulator.model import PARTNER, Audience
from ttsync.emulator.ops import create_audience, delete_audience
from ttsync.emulator.validate import MISSING, NOT_LIST, NOT_STRING, one_of, opt_str, req_str, str_list
from ttsync.emulator.views import is_expired

NAME_LIMIT: Final = 70  # longer partner names are cut to 67 + "..." (ref §2.1)
ID_SCHEMAS: Final = frozenset(
    {"EMAIL_SHA256", "PHONE_SHA256", "IDFA_SHA256", "AAID_SHA256", "IDFA_MD5", "AAID_MD5"}
)  # ref §2.1; there is no GAID_* value in the mapping schema
_SHA256 = re.compile(r"[0-9a-f]{64}")
_MD5 = re.compile(r"[0-9a-f]{32}")


def truncate_partner_name(name: str) -> str:
    """Partner audience names over 70 characters become the first 67 + "..." (ref §2.1)."""
    return name if len(name) <= NAME_LIMIT else name[:67] + "..."


@endpoint("segment/audience/", "POST")
def segment_audience(ctx: Ctx) -> JsonDict:
    """Create (default) or delete a partner audience. ``id_type`` is accepted and ignored (ref §2.1)."""
    p = ctx.params
    adv = advertiser_access(ctx, req_str(p, "advertiser_id"), write=True)
    action = one_of(opt_str(p, "action") or "create", ("create", "delete"), "action")
    if action == "create":
        name = truncate_partner_name(req_str(p, "custom_audience_name"))
        aud = create_audience(ctx.state, adv.advertiser_id, name, PARTNER, "MULTIPLE_TYPES", ctx.now)
        return {"audience_id": aud.audience_id}
    audience_id = req_str(p, "delete_audience_id")
    target = ctx.state.audiences.get(audience_id)
    if target is None or target.deleted or target.owner_id != adv.advertiser_id:
        raise ApiError(
            NOT_FOUND, f"Audience {audience_id} does not exist for advertiser {adv.advertiser_id}."
        )
    delete_audience(ctx.state, target, ctx.now)
    return {"audience_id": target.audience_id}


def _mappable(ctx: Ctx, audience_id: str, advertiser_ids: list[str], field: str) -> Audience:
    aud = ctx.state.audiences.get(audience_id)
    if aud is None or aud.deleted:
        raise param_error(field, f"Invalid audience ID {audience_id}: the audience does not exist")
    if aud.owner_id not in advertiser_ids and not any(a in aud.shared_with for a in advertiser_ids):
        raise param_error(field, f"Audience {audience_id} does not belong to any of the advertiser_ids")
    if is_expired(aud, ctx.now):
        raise param_error(field, f"Audience {audience_id} has expired")
    if ctx.now < aud.ready_at:
        # Emulator choice (ref §2.1, §7: "not yet available" right after creation): 40201 "task not ready",
        # which clients retry, like the condition it models.
        raise ApiError(
            TASK_NOT_READY,
            f"Task is not ready. Audience {audience_id} is still being created; retry in a moment.",
        )
    return aud


@endpoint("segment/mapping/", "POST", parse=parse_mapping_body)
def segment_mapping(ctx: Ctx) -> JsonDict:
    """Add (default) or delete member hashes; all-or-nothing: any bad row rejects the request (ref §8.5)."""
    p = ctx.params
    state = ctx.state
    advertiser_ids = str_list(p, "advertiser_ids", 1, 1000)
    bc_ids = {advertiser_access(ctx, a, write=True).bc_id for a in advertiser_ids}
    if len(bc_ids) > 1:
        raise param_error("advertiser_ids", "All advertisers must belong to the same Business Center")
    action = one_of(opt_str(p, "action") or "add", ("add", "delete"), "action")
    raw_schema = str_list(p, "id_schema", 1, len(ID_SCHEMAS))
    schema = [s.upper() for s in raw_schema]  # lower-case enum values are accepted (ref §2.1)
    for i, s in enumerate(schema):
        if s not in ID_SCHEMAS:
            raise param_error(f"id_schema.{i}", "Must be one of: " + ", ".join(sorted(ID_SCHEMAS)))
    if len(set(schema)) != len(schema):
        raise param_error("id_schema", "Duplicate id types are not allowed")
    rows = p.get("batch_data")
    if isinstance(rows, PackedRows) and any(
        length != (32 if s.endswith("_MD5") else 64)
        for s, length in zip(schema, rows.hash_lengths, strict=False)
    ):
        # A hash of the wrong length for its id_schema: the row-by-row checks name the first one.
        rows = orjson.loads(ctx.body)["batch_data"]
    if rows is None:
        raise param_error("batch_data", "Missing data for required field")
    if not isinstance(rows, list | PackedRows):
        raise param_error("batch_data", NOT_LIST)
    if not rows:
        raise param_error("batch_data", "Length must be at least 1")
    limit = state.config.mapping_limit
    if state.config.has("mapping-limit-1000"):
        limit = min(limit, 1_000)  # variant: Tealium's 1,000 (ref §2.1); TikTok documents no maximum
    if len(rows) > limit:
        # Emulator choice: TikTok documents no limit (ref §2.1, §9); 40011 is its "too many IDs" code.
        raise ApiError(
            TOO_MANY_IDS, f"Too many IDs: batch_data holds {len(rows)} rows, at most {limit} allowed."
        )

    if isinstance(rows, PackedRows):
        _apply_packed(ctx, rows, schema, advertiser_ids, action)
        return {}
    width = len(schema)
    matchers = [(_MD5 if s.endswith("_MD5") else _SHA256).fullmatch for s in schema]
    checked: dict[str, Audience] = {}
    # Per schema column: audience id -> hashes; validated fully before anything is applied.
    columns: list[dict[str, list[bytes]]] = [{} for _ in schema]
    fromhex = bytes.fromhex
    # Variant `short-rows`: RudderStack sends rows shorter than id_schema in production (recordTransform.ts,
    # ref §9), apparently accepted; missing trailing entries then mean "no value".
    short_ok = state.config.has("short-rows")
    for r, row in enumerate(rows):
        if type(row) is not list or (len(row) != width and not (short_ok and 0 < len(row) < width)):
            raise param_error(
                f"batch_data.{r}", f"Each row must be a list of {width} items, one per id_schema entry"
            )
        for c, entry in enumerate(row):
            if type(entry) is not dict:
                raise param_error(f"batch_data.{r}.{c}", "Not a valid object")
            if not entry:
                continue  # `{}` placeholder: this person has no value for id_schema[c]
            value = entry.get("id")
            if type(value) is not str:
                raise param_error(f"batch_data.{r}.{c}.id", NOT_STRING if value is not None else MISSING)
            if matchers[c](value) is None:
                kind = "32-character MD5" if schema[c].endswith("_MD5") else "64-character SHA-256"
                raise param_error(f"batch_data.{r}.{c}.id", f"Not a valid {kind} lowercase hex hash")
            audience_ids: Any = entry.get("audience_ids")
            if type(audience_ids) is not list or not audience_ids:
                raise param_error(f"batch_data.{r}.{c}.audience_ids", NOT_LIST)
            digest = fromhex(value)
            column = columns[c]
            for a, audience_id in enumerate(audience_ids):
                if type(audience_id) is not str:
                    raise param_error(f"batch_data.{r}.{c}.audience_ids.{a}", NOT_STRING)
                bucket = column.get(audience_id)
                if bucket is None:
                    if audience_id not in checked:
                        field = f"batch_data.{r}.{c}.audience_ids.{a}"
                        checked[audience_id] = _mappable(ctx, audience_id, advertiser_ids, field)
                    bucket = column[audience_id] = []
                bucket.append(digest)
    pending = {
        (audience_id, c): hashes for c, column in enumerate(columns) for audience_id, hashes in column.items()
    }
    if not pending and not any(isinstance(r, list) and any(r) for r in rows):
        raise ApiError(PARAM_ERROR, "batch_data: every row is empty")
    apply = state.add_members if action == "add" else state.remove_members
    for (audience_id, c), hashes in pending.items():
        apply(checked[audience_id], schema[c], hashes)
    return {}


def _apply_packed(
    ctx: Ctx, rows: PackedRows, schema: list[str], advertiser_ids: list[str], action: str
) -> None:
    """Apply rows of the compact layout (see mapping_body.py): the same checks and result as the row-by-row
    path, whose checks of shape and hashes `PackedRows` already holds for every row."""
    width = len(schema)
    if len(rows.hash_lengths) != width and not (
        ctx.state.config.has("short-rows") and 0 < len(rows.hash_lengths) < width
    ):
        raise param_error(
            "batch_data.0", f"Each row must be a list of {width} items, one per id_schema entry"
        )
    checked: dict[str, Audience] = {}
    pending: dict[tuple[str, int], list[bytes]] = {}
    for c, audience_ids in enumerate(rows.audience_ids):
        hashes = rows.column(c)
        for a, audience_id in enumerate(audience_ids):
            if audience_id not in checked:
                field = f"batch_data.0.{c}.audience_ids.{a}"
                checked[audience_id] = _mappable(ctx, audience_id, advertiser_ids, field)
            # An audience named twice in an entry gets the row twice, as in the row-by-row path.
            pending.setdefault((audience_id, c), []).extend(hashes)
    apply = ctx.state.add_members if action == "add" else ctx.state.remove_members
    for (audience_id, c), hashes in pending.items():
        apply(checked[audience_id], schema[c], hashes)
