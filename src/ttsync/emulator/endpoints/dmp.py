"""Customer-file (DMP) audiences: list, get, file/upload, create, update, share, share/cancel, share/log,
delete (ref §2.2–§2.5)."""

from __future__ import annotations

import hashlib
import re
from typing import Any, Final

from ttsync.emulator.clock import format_time
from ttsync.emulator.endpoints.common import Ctx, JsonDict, advertiser_access, endpoint
from ttsync.emulator.errors import (
    CALCULATE_TYPE_UNSUPPORTED,
    FILE_SIGNATURE_MISMATCH,
    FILE_TYPE_UNSUPPORTED,
    NOT_FOUND,
    PARAM_ERROR,
    ApiError,
    param_error,
)
from ttsync.emulator.model import CUSTOMER_FILE, Audience, Upload
from ttsync.emulator.ops import create_audience, delete_audience, record_history
from ttsync.emulator.validate import (
    MISSING,
    one_of,
    opt_bool,
    opt_int,
    opt_str,
    query_list,
    req_str,
    str_list,
)
from ttsync.emulator.views import audience_details

# File calculate_type values (ref §2.4) -> the schema member hashes are stored under.
CALCULATE_TYPES: Final[dict[str, str]] = {
    "EMAIL_SHA256": "EMAIL_SHA256",
    "PHONE_SHA256": "PHONE_SHA256",
    "IDFA_SHA256": "IDFA_SHA256",
    "IDFA_MD5": "IDFA_MD5",
    "GAID_SHA256": "AAID_SHA256",
    "GAID_MD5": "AAID_MD5",
    "MAID_SHA256": "MAID_SHA256",
    "MAID_MD5": "MAID_MD5",
    "FIRST_SHA256": "MAID_SHA256",
    "FIRST_MD5": "MAID_MD5",
    "MULTIPLE_TYPES": "",
}
# dmp/custom_audience/create/ takes fewer values than file upload: no MAID_* (official SDK
# yml_files/dmp_custom_audience_create.yml vs dmp_custom_audience_file_upload.yml, ref §9). MAID_* files are
# created as FIRST_*, their equal in TikTok's enum (MAID_SHA256 = FIRST_SHA256 = 6, MAID_MD5 = FIRST_MD5 = 7).
CREATE_CALCULATE_TYPES: Final = tuple(t for t in CALCULATE_TYPES if not t.startswith("MAID_"))
_SAME_TYPE: Final[dict[str, str]] = {"MAID_SHA256": "FIRST_SHA256", "MAID_MD5": "FIRST_MD5"}
# file_paths items are 16-character strings (minLength = maxLength = 16 in the SDK's create spec, ref §9).
FILE_PATH_LENGTH: Final = 16
# Column headers allowed in a MULTIPLE_TYPES file.
HEADER_SCHEMAS: Final[dict[str, str]] = {k: v for k, v in CALCULATE_TYPES.items() if v} | {
    "EMAIL": "EMAIL_SHA256",
    "PHONE": "PHONE_SHA256",
    "MAID": "MAID_SHA256",
    "AAID_SHA256": "AAID_SHA256",
    "AAID_MD5": "AAID_MD5",
}
MIN_EDITABLE: Final = 1_000  # ref §2.4 step 3, §2.5
NOT_EDITABLE: Final = "Audience is not editable, please check audience status"  # ref §2.5 (AE)
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX32 = re.compile(r"[0-9a-f]{32}")


def _visible(ctx: Ctx, advertiser_id: str, audience_id: str) -> Audience:
    aud = ctx.state.audiences.get(audience_id)
    if aud is None or aud.deleted or (aud.owner_id != advertiser_id and advertiser_id not in aud.shared_with):
        raise ApiError(
            NOT_FOUND, f"Custom audience {audience_id} does not exist for advertiser {advertiser_id}."
        )
    return aud


def _owned(ctx: Ctx, advertiser_id: str, audience_id: str) -> Audience:
    aud = _visible(ctx, advertiser_id, audience_id)
    if aud.owner_id != advertiser_id:
        raise ApiError(
            PARAM_ERROR, f"Custom audience {audience_id} is shared with you; only its owner can change it."
        )
    return aud


@endpoint("dmp/custom_audience/list/", "GET")
def audience_list(ctx: Ctx) -> JsonDict:
    """Owned and shared audiences, newest first, paginated (ref §1 pagination, §2.2)."""
    p = ctx.params
    adv = advertiser_access(ctx, req_str(p, "advertiser_id"), write=False)
    wanted = query_list(p, "custom_audience_ids", 1, 100, required=False)
    page = opt_int(p, "page", 1, 1_000_000, 1) or 1
    page_size = opt_int(p, "page_size", 1, 100, 10) or 10
    adv_id = adv.advertiser_id
    visible = [
        a
        for a in ctx.state.audiences.values()
        if not a.deleted
        and (a.owner_id == adv_id or adv_id in a.shared_with)
        and (wanted is None or a.audience_id in wanted)
    ]
    visible.sort(key=lambda a: (a.created_at, a.audience_id), reverse=True)
    total = len(visible)
    chunk = visible[(page - 1) * page_size : page * page_size]
    null_error = ctx.state.config.has("file-zero-null-error")
    return {
        "list": [audience_details(a, adv_id, ctx.now, null_zero_error=null_error) for a in chunk],
        "page_info": {
            "page": page,
            "page_size": page_size,
            "total_number": total,
            "total_page": (total + page_size - 1) // page_size,
        },
    }


@endpoint("dmp/custom_audience/get/", "GET")
def audience_get(ctx: Ctx) -> JsonDict:
    """Details and history of 1–100 audiences (ref §2.2)."""
    p = ctx.params
    adv = advertiser_access(ctx, req_str(p, "advertiser_id"), write=False)
    ids = query_list(p, "custom_audience_ids", 1, 100, required=True) or []
    history_size = opt_int(p, "history_size", 1, 100, 100) or 100
    out = []
    for audience_id in ids:
        if ctx.state.config.has("get-missing-40002"):
            # Variant: the code for an unknown or deleted id is undocumented (40007 or 40002, ref §9).
            found = ctx.state.audiences.get(audience_id)
            if (
                found is None
                or found.deleted
                or (found.owner_id != adv.advertiser_id and adv.advertiser_id not in found.shared_with)
            ):
                raise param_error("custom_audience_ids", f"Invalid custom audience id {audience_id}")
        aud = _visible(ctx, adv.advertiser_id, audience_id)
        history = [{**h, "opt_time": _fmt(h["opt_time"])} for h in aud.history[-history_size:][::-1]]
        out.append(
            {
                "audience_details": audience_details(
                    aud,
                    adv.advertiser_id,
                    ctx.now,
                    null_zero_error=ctx.state.config.has("file-zero-null-error"),
                ),
                "audience_history": history,
            }
        )
    return {"list": out}


def _fmt(ts: Any) -> str:
    return format_time(float(ts))


def _parse_file(content: bytes, calculate_type: str) -> tuple[dict[str, set[bytes]], int]:
    """Member hashes per schema and the number of data rows.

    One identifier per line (single type) or comma-separated columns named by a header (MULTIPLE_TYPES).
    Raw values are hashed with SHA-256 after trimming and lower-casing, as TikTok hashes raw files (ref §6.3);
    they are never stored.
    """
    text = content.decode("utf-8-sig", errors="replace")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    members: dict[str, set[bytes]] = {}
    if calculate_type == "MULTIPLE_TYPES":
        if not lines:
            return members, 0
        headers = [h.strip().upper() for h in lines[0].split(",")]
        schemas = [HEADER_SCHEMAS.get(h, "") for h in headers]
        if not any(schemas):
            raise ApiError(PARAM_ERROR, "file: the header names no supported id type")
        data = lines[1:]
        for line in data:
            for col, value in enumerate(line.split(",")):
                if col < len(schemas) and schemas[col] and value.strip():
                    members.setdefault(schemas[col], set()).add(_digest(value.strip(), schemas[col]))
        return members, len(data)
    schema = CALCULATE_TYPES[calculate_type]
    if lines and lines[0].upper() in HEADER_SCHEMAS:
        lines = lines[1:]
    target = members.setdefault(schema, set())
    for value in lines:
        target.add(_digest(value, schema))
    return members, len(lines)


def _digest(value: str, schema: str) -> bytes:
    md5 = schema.endswith("MD5")
    lowered = value.lower()
    if (_HEX32 if md5 else _HEX64).fullmatch(lowered):
        return bytes.fromhex(lowered)
    algo = hashlib.md5 if md5 else hashlib.sha256
    return algo(lowered.encode(), usedforsecurity=False).digest()


@endpoint("dmp/custom_audience/file/upload/", "POST", multipart=True)
def file_upload(ctx: Ctx) -> JsonDict:
    """Multipart upload; MD5 ``file_signature`` checked; .csv/.txt only (ref §2.4 step 1, §5.1 409xx)."""
    p = ctx.params
    adv = advertiser_access(ctx, req_str(p, "advertiser_id"), write=True)
    # The SDK sends calculate_type, the Go SDK the misspelled caculate_type: accept both (ref §2.4).
    calculate_type = opt_str(p, "calculate_type") or opt_str(p, "caculate_type")
    if calculate_type is None:
        raise param_error("calculate_type", MISSING)
    if calculate_type not in CALCULATE_TYPES:
        raise ApiError(CALCULATE_TYPE_UNSUPPORTED, f"Unsupported calculate_type: {calculate_type}.")
    upload = ctx.form.get("file")
    if not isinstance(upload, tuple):
        raise param_error("file", MISSING)
    filename, content = upload
    name = opt_str(p, "file_name") or opt_str(p, "name") or filename or ""
    if not (name.endswith(".csv") or name.endswith(".txt")):
        raise ApiError(FILE_TYPE_UNSUPPORTED, "Unsupported file type: only .csv and .txt files are accepted.")
    signature = req_str(p, "file_signature")
    if hashlib.md5(content, usedforsecurity=False).hexdigest() != signature.lower():
        raise ApiError(
            FILE_SIGNATURE_MISMATCH, "File signature mismatch: file_signature must be the MD5 of the file."
        )
    members, rows = _parse_file(content, calculate_type)
    # An opaque 16-character token (ref §9: file_paths items are 16 characters in the SDK's create spec).
    file_path = ""
    while not file_path or file_path in ctx.state.uploads:
        seed = f"{adv.advertiser_id}:{signature.lower()}:{ctx.state.ids.numeric()}".encode()
        file_path = hashlib.blake2b(seed, digest_size=FILE_PATH_LENGTH // 2).hexdigest()
    up = Upload(file_path, adv.advertiser_id, calculate_type, ctx.now, rows, members)
    ctx.state.uploads[file_path] = up
    if ctx.state.journal is not None:
        ctx.state.journal.upload_stored(up)
    ctx.state.touch()
    return {"file_path": file_path}


def _uploads(ctx: Ctx, advertiser_id: str, calculate_type: str, paths: list[str]) -> list[Upload]:
    out = []
    for i, path in enumerate(paths):
        if len(path) != FILE_PATH_LENGTH:
            raise param_error(f"file_paths.{i}", f"Length must be {FILE_PATH_LENGTH}")
        up = ctx.state.uploads.get(path)
        if up is None or up.advertiser_id != advertiser_id:  # only the uploader may use a path (ref §2.4)
            raise param_error(f"file_paths.{i}", "Invalid file path: upload the file first")
        if _SAME_TYPE.get(up.calculate_type, up.calculate_type) != _SAME_TYPE.get(
            calculate_type, calculate_type
        ):
            raise param_error(f"file_paths.{i}", "The calculate_type of the file does not match")
        out.append(up)
    return out


def _merged(uploads: list[Upload]) -> dict[str, set[bytes]]:
    merged: dict[str, set[bytes]] = {}
    for up in uploads:
        for schema, hashes in up.members.items():
            merged.setdefault(schema, set()).update(hashes)
    return merged


@endpoint("dmp/custom_audience/create/", "POST")
def audience_create(ctx: Ctx) -> JsonDict:
    """Create a customer-file audience from uploaded files (ref §2.4 step 2).

    Below 1,000 people it is created but lands at ``cover_num`` 0 and is not editable (ref §8.3).
    """
    p = ctx.params
    adv = advertiser_access(ctx, req_str(p, "advertiser_id"), write=True)
    name = req_str(p, "custom_audience_name")
    if len(name) > 128:
        raise param_error("custom_audience_name", "Length must be between 1 and 128")
    calculate_type = one_of(req_str(p, "calculate_type"), CREATE_CALCULATE_TYPES, "calculate_type")
    paths = str_list(p, "file_paths", 1, 500)
    sub_type = one_of(
        opt_str(p, "audience_sub_type") or "NORMAL", ("NORMAL", "REACH_FREQUENCY"), "audience_sub_type"
    )
    retention = opt_int(p, "retention_in_days", 1, 365, None)
    opt_bool(p, "audience_enhancement", False)
    uploads = _uploads(ctx, adv.advertiser_id, calculate_type, paths)
    aud = create_audience(
        ctx.state,
        adv.advertiser_id,
        name,
        CUSTOMER_FILE,
        calculate_type,
        ctx.now,
        retention_in_days=retention,
        sub_type=sub_type,
    )
    for schema, hashes in _merged(uploads).items():
        ctx.state.add_members(aud, schema, list(hashes))
    aud.landed_at_zero = aud.member_count() < MIN_EDITABLE
    return {"custom_audience_id": aud.audience_id}


@endpoint("dmp/custom_audience/update/", "POST")
def audience_update(ctx: Ctx) -> JsonDict:
    """Rename and/or APPEND / REMOVE / REPLACE (default) members from files (ref §2.4 step 3).

    Refused with 40002 "Audience is not editable, please check audience status" when the audience is still
    processing, landed at size 0, or would hold fewer than 1,000 people afterwards (ref §2.5).
    """
    p = ctx.params
    adv = advertiser_access(ctx, req_str(p, "advertiser_id"), write=True)
    aud = _owned(ctx, adv.advertiser_id, req_str(p, "custom_audience_id"))
    name = opt_str(p, "custom_audience_name")
    paths = str_list(p, "file_paths", 1, 500, required=False)
    if name is None and not paths:
        raise param_error("file_paths", "One of custom_audience_name or file_paths is required")
    if name is not None and len(name) > 128:
        raise param_error("custom_audience_name", "Length must be between 1 and 128")
    action = one_of(opt_str(p, "action") or "REPLACE", ("APPEND", "REMOVE", "REPLACE"), "action")
    if aud.audience_type != CUSTOMER_FILE or aud.landed_at_zero or ctx.now < aud.ready_at:
        raise ApiError(PARAM_ERROR, NOT_EDITABLE)
    if paths:
        incoming = _merged(_uploads(ctx, adv.advertiser_id, aud.calculate_type, paths))
        current = aud.members
        if action == "APPEND":
            after = sum(
                len(current.get(s, {}).keys() | incoming.get(s, set())) for s in set(current) | set(incoming)
            )
        elif action == "REMOVE":
            after = sum(len(current[s].keys() - incoming.get(s, set())) for s in current)
        else:
            after = sum(len(v) for v in incoming.values())
        if after < MIN_EDITABLE:
            raise ApiError(PARAM_ERROR, NOT_EDITABLE)
        state = ctx.state
        if action == "REPLACE":
            state.clear_members(aud)
            for schema, hashes in incoming.items():
                state.add_members(aud, schema, list(hashes))
        elif action == "APPEND":
            for schema, hashes in incoming.items():
                state.add_members(aud, schema, list(hashes - current.get(schema, {}).keys()))
        else:
            for schema, hashes in incoming.items():
                state.remove_members(aud, schema, list(hashes & current.get(schema, {}).keys()))
        aud.ready_at = ctx.now + state.config.processing_delay
        record_history(aud, "update", ctx.now, action)
    if name is not None:
        aud.name = name
        record_history(aud, "rename", ctx.now)
    ctx.state.touch()
    return {}


@endpoint("dmp/custom_audience/share/", "POST")
def audience_share(ctx: Ctx) -> JsonDict:
    """Share owned audiences with advertisers of the same Business Center (ref §2.3)."""
    p = ctx.params
    adv = advertiser_access(ctx, req_str(p, "advertiser_id"), write=True)
    ids = str_list(p, "custom_audience_ids", 1, 10)
    targets = str_list(p, "shared_advertiser_ids", 1, 10)
    for i, target in enumerate(targets):
        other = ctx.state.advertisers.get(target)
        if other is None or other.status == "deleted":
            raise param_error(f"shared_advertiser_ids.{i}", f"Advertiser {target} does not exist")
        if other.bc_id != adv.bc_id:
            raise param_error(
                f"shared_advertiser_ids.{i}", "Target advertisers must be in the same Business Center"
            )
    auds = [_owned(ctx, adv.advertiser_id, a) for a in ids]
    for aud in auds:
        for target in targets:
            if target not in aud.shared_with and target != aud.owner_id:
                aud.shared_with.append(target)
            aud.share_log.append({"shared_advertiser_id": target, "status": "SHARED"})
        record_history(aud, "share", ctx.now, ",".join(targets))
    ctx.state.touch()
    return {}


@endpoint("dmp/custom_audience/share/cancel/", "POST")
def audience_share_cancel(ctx: Ctx) -> JsonDict:
    """Stop sharing one audience with one advertiser (ref §2.3)."""
    p = ctx.params
    adv = advertiser_access(ctx, req_str(p, "advertiser_id"), write=True)
    aud = _owned(ctx, adv.advertiser_id, req_str(p, "custom_audience_id"))
    target = req_str(p, "shared_advertiser_id")
    if target not in aud.shared_with:
        raise param_error("shared_advertiser_id", f"Audience is not shared with advertiser {target}")
    aud.shared_with.remove(target)
    aud.share_log.append({"shared_advertiser_id": target, "status": "CANCELLED"})
    record_history(aud, "cancel_share", ctx.now, target)
    ctx.state.touch()
    return {}


@endpoint("dmp/custom_audience/share/log/", "GET")
def audience_share_log(ctx: Ctx) -> JsonDict:
    """Sharing history of one audience (ref §2.3)."""
    p = ctx.params
    adv = advertiser_access(ctx, req_str(p, "advertiser_id"), write=False)
    aud = _owned(ctx, adv.advertiser_id, req_str(p, "custom_audience_id"))
    rows = []
    for entry in aud.share_log:
        target = ctx.state.advertisers.get(entry["shared_advertiser_id"])
        rows.append(
            {
                "custom_audience_id": aud.audience_id,
                "shared_advertiser_id": entry["shared_advertiser_id"],
                "shared_advertiser_name": target.name if target else "",
                "status": entry["status"],
            }
        )
    return {"list": rows}


@endpoint("dmp/custom_audience/delete/", "POST")
def audience_delete(ctx: Ctx) -> JsonDict:
    """Delete 1–100 owned audiences (ref §2.4)."""
    p = ctx.params
    adv = advertiser_access(ctx, req_str(p, "advertiser_id"), write=True)
    ids = str_list(p, "custom_audience_ids", 1, 100)
    auds = [_owned(ctx, adv.advertiser_id, a) for a in ids]
    for aud in auds:
        delete_audience(ctx.state, aud, ctx.now)
    return {}
