"""Segment API endpoints (ref §2.1): segment audiences and the mapping requests that fill them.

Mapping requests are the bulk path of audience sync: bodies are written as JSON text directly, and a size
refusal (TikTok documents no maximum) shrinks the request to the stated limit, learned once per app.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any, Final, Literal

from ttsync.destinations.tiktok.client._core import BaseAsyncClient, CallSpec, build_request
from ttsync.destinations.tiktok.client.batch_data import mapping_rows_bytes
from ttsync.destinations.tiktok.client.errors import InvalidRequestError
from ttsync.destinations.tiktok.client.models.common import (
    EmptyResult,
    IdSchema,
)
from ttsync.destinations.tiktok.client.models.segment import (
    SegmentAudienceRequest,
    SegmentAudienceResult,
    SegmentMappingRequest,
)

_SIZE_CODES: Final = frozenset({40011, 40061})  # too many IDs / invalid batch size (ref §5.1)
_AT_MOST: Final = re.compile(r"at most ([\d,]+)")


def _shrunk(rows: int, message: str) -> int | None:
    """The next request size after a size refusal of `rows` rows: TikTok's stated maximum, else half."""
    match = _AT_MOST.search(message)
    stated = int(match.group(1).replace(",", "")) if match else 0
    size = stated if 0 < stated < rows else rows // 2
    return size if size >= 1 else None


def _dumps(rows: Any) -> str:
    return json.dumps(rows, separators=(",", ":"))


def _mapping_body(fields: dict[str, Any], rows_json: str | bytes) -> bytes:
    rows = rows_json.encode() if isinstance(rows_json, str) else rows_json
    return b"".join((json.dumps(fields)[:-1].encode(), b', "batch_data": ', rows, b"}"))


@functools.lru_cache(maxsize=64)
def _mapping_fields(
    action: Literal["add", "delete"], advertiser_ids: tuple[str, ...], id_schema: tuple[IdSchema, ...]
) -> dict[str, Any]:
    """The validated non-row fields of a mapping request (`ClientValidationError` when invalid)."""
    head = build_request(
        SegmentMappingRequest,
        "segment/mapping/",
        advertiser_ids=list(advertiser_ids),
        action=action,
        id_schema=list(id_schema),
        batch_data=[[{}] * len(id_schema)],  # placeholder: validated shape, replaced by the caller's rows
    )
    fields: dict[str, Any] = head.model_dump(mode="json", exclude={"batch_data"}, exclude_none=True)
    return fields


class SegmentMethods(BaseAsyncClient):
    """`segment/audience/` and `segment/mapping/` (ref §2.1), mixed into `AsyncTikTokClient`."""

    async def create_segment_audience(self, advertiser_id: str, name: str) -> SegmentAudienceResult:
        """`POST segment/audience/` action=create: a new partner audience (names > 70 chars are cut)."""
        path = "segment/audience/"
        body = build_request(
            SegmentAudienceRequest,
            path,
            advertiser_id=advertiser_id,
            action="create",
            custom_audience_name=name,
        )
        return await self._call(CallSpec("POST", path, body=body, idempotent=False), SegmentAudienceResult)

    async def delete_segment_audience(self, advertiser_id: str, audience_id: str) -> SegmentAudienceResult:
        """`POST segment/audience/` action=delete."""
        path = "segment/audience/"
        body = build_request(
            SegmentAudienceRequest,
            path,
            advertiser_id=advertiser_id,
            action="delete",
            delete_audience_id=audience_id,
        )
        return await self._call(CallSpec("POST", path, body=body, idempotent=False), SegmentAudienceResult)

    async def segment_mapping(
        self,
        *,
        action: Literal["add", "delete"],
        advertiser_ids: Sequence[str],
        audience_ids: Sequence[str],
        id_schema: Sequence[IdSchema],
        rows: Iterable[Sequence[str | None]],
    ) -> EmptyResult:
        """`POST segment/mapping/`: add or delete members of `audience_ids` on every advertiser listed.

        Each row is one person: hashes aligned with `id_schema`, None where the person has no value. Every
        value is checked (`ClientValidationError` naming the position, never the value) and the body is
        written as JSON text in one pass, with no object per row (see `mapping_rows_bytes`).
        """
        fields = _mapping_fields(action, tuple(advertiser_ids), tuple(id_schema))
        return await self._send_mapping(fields, mapping_rows_bytes(id_schema, rows, audience_ids), None)

    async def segment_mapping_json(
        self,
        *,
        action: Literal["add", "delete"],
        advertiser_ids: Sequence[str],
        id_schema: Sequence[IdSchema],
        batch_data_json: str | bytes,
    ) -> EmptyResult:
        """`POST segment/mapping/` with `batch_data` already serialized (the bulk path of audience sync).

        `batch_data_json` must be a JSON array of rows aligned with `id_schema` (ref §2.1), as text or UTF-8
        bytes; it is built from Arrow columns by `ttsync.destinations.tiktok.client.batch_data`, which avoids
        one Python object per identifier. The other fields are validated as in `segment_mapping` (once per
        distinct set of them: a delivery sends the same ones thousands of times).
        """
        fields = _mapping_fields(action, tuple(advertiser_ids), tuple(id_schema))
        return await self._send_mapping(fields, batch_data_json, None)

    def mapping_row_limit(self) -> int | None:
        """Rows per `segment/mapping/` request this server accepted after refusing a larger one (None: no
        refusal seen). Remembered per API server and app in the client's limiter registry (by default one per
        process), so every client of the app sends that size from then on."""
        return self._registry.mapping_row_limits.get((self._limiter_scope, self.app_id or ""))

    async def _send_mapping(
        self, fields: dict[str, Any], rows_json: str | bytes | None, rows: list[Any] | None
    ) -> EmptyResult:
        """Send one mapping, split into requests of at most the remembered row limit.

        TikTok documents no maximum rows per request (ref §2.1, §9). When it refuses a request as too large
        (40011 "too many IDs", or 40061 "invalid batch size"), the rows are split, in requests of the size
        its message names or else half, and the size it accepts is remembered for this server and app, so
        later batches go at that size from the start instead of failing. Re-sending rows is harmless: adding
        a member twice or removing an absent one changes nothing.
        """
        path = "segment/mapping/"
        key = (self._limiter_scope, self.app_id or "")
        limits = self._registry.mapping_row_limits
        limit = limits.get(key)
        if limit is None:
            body = _mapping_body(fields, rows_json if rows_json is not None else _dumps(rows))
            try:
                return await self._call(CallSpec("POST", path, content=body), EmptyResult)
            except InvalidRequestError as exc:
                if exc.code not in _SIZE_CODES:
                    raise
                rows = rows if rows is not None else json.loads(rows_json or b"[]")
                limit = _shrunk(len(rows), exc.message)
                if limit is None:
                    raise
                limits[key] = limit
        if rows is None:
            rows = json.loads(rows_json or b"[]")
        result = EmptyResult()
        start = 0
        while start < len(rows):
            chunk = rows[start : start + limit]
            try:
                result = await self._call(
                    CallSpec("POST", path, content=_mapping_body(fields, _dumps(chunk))), EmptyResult
                )
            except InvalidRequestError as exc:
                smaller = _shrunk(len(chunk), exc.message) if exc.code in _SIZE_CODES else None
                if smaller is None:
                    raise
                limit = limits[key] = smaller
                continue
            start += len(chunk)
        return result

    async def add_segment_members(
        self,
        advertiser_ids: Sequence[str],
        audience_ids: Sequence[str],
        id_schema: Sequence[IdSchema],
        rows: Iterable[Sequence[str | None]],
    ) -> EmptyResult:
        """`segment_mapping(action="add", ...)`."""
        return await self.segment_mapping(
            action="add",
            advertiser_ids=advertiser_ids,
            audience_ids=audience_ids,
            id_schema=id_schema,
            rows=rows,
        )

    async def remove_segment_members(
        self,
        advertiser_ids: Sequence[str],
        audience_ids: Sequence[str],
        id_schema: Sequence[IdSchema],
        rows: Iterable[Sequence[str | None]],
    ) -> EmptyResult:
        """`segment_mapping(action="delete", ...)`."""
        return await self.segment_mapping(
            action="delete",
            advertiser_ids=advertiser_ids,
            audience_ids=audience_ids,
            id_schema=id_schema,
            rows=rows,
        )
