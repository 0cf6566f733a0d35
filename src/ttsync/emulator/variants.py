"""Named behaviour variants: where TikTok's public sources are silent or conflict, the emulator can behave
each way, so ttsync's client is tested against all of them (DESIGN: "where sources are silent or conflict it
offers variants, and the client must be correct under each").

A variant is off unless selected: at `ttsync emulator serve --variant NAME[,NAME...]`, with
`EmulatorServer(variants=[...])`, `POST /_emulator/variants {"variants": [...]}` or the `variants` key of
`POST /_emulator/reset`. With no variant the emulator follows the best-sourced reading of the reference.
Variants in the same `group` exclude each other (e.g. the three 40002 message formats).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Variant:
    """One alternative behaviour: what changes, and what is known or unknown about real TikTok."""

    name: str
    behaviour: str
    known: str
    group: str = ""


VARIANTS: Final[dict[str, Variant]] = {
    v.name: v
    for v in (
        Variant(
            "partner-name-registered",
            'event/track/ answers 40063 "Invalid partner name" for a `partner_name` that is not registered '
            "(registered names: the `partner_names` tunable of /_emulator/config, empty by default).",
            "40063 INVALID_PARTNER_NAME is in TikTok's code list (SDK tiktok_code.py); a public Go client's "
            "request type has no partner_name at all. Whether TikTok checks names against a registry: unknown.",
        ),
        Variant(
            "error-field-only",
            'A bad event\'s 40002 names only the field, e.g. "Invalid value for event_id: not a valid string."',
            "Observed on real TikTok (stape-io/tiktok-tag issue 33). Default: `data.N.field`.",
            group="event-error-path",
        ),
        Variant(
            "error-batch-index",
            'A bad event\'s 40002 names `Batch.N.field`, e.g. "Batch.3.event_id: Not a valid string".',
            "Observed on /pixel/batch/ (RudderStack test fixtures); unknown for event/track/.",
            group="event-error-path",
        ),
        Variant(
            "file-zero-null-error",
            "A customer-file audience that lands at size 0 reads `error_msg: null` (default: a message).",
            "Null in Segment's fixture; TikTok's actual text, if any, is unknown.",
        ),
        Variant(
            "get-missing-40002",
            "dmp/custom_audience/get/ with an unknown or deleted audience id answers 40002 (default 40007).",
            'Undocumented: 40007 "object does not exist" and 40002 "parameter error" are both plausible.',
        ),
        Variant(
            "short-rows",
            "segment/mapping/ accepts rows with fewer entries than id_schema (missing trailing entries = none).",
            "RudderStack sends such rows in production (recordTransform.ts), apparently accepted; TikTok's "
            "documented shape is one entry per id_schema item.",
        ),
        Variant(
            "no-trailing-slash",
            "Paths without the trailing slash are served like the documented ones (default: plain-text 404).",
            "TikTok documents a 404 (ref §1), yet Segment calls `dmp/custom_audience/get` without the slash and "
            "parses JSON. Unconfirmed either way.",
        ),
        Variant(
            "strict-properties",
            "event/track/ rejects unknown keys in `properties` (e.g. `event_channel`) with 40002.",
            "`event_channel` appears only in the legacy offline payload; whether Events 2.0 ignores or rejects "
            "unknown properties is unknown.",
        ),
        Variant(
            "mapping-limit-1000",
            "segment/mapping/ accepts at most 1,000 rows per request (40011 above; default 10,000).",
            "No source gives the maximum (ref §2.1, §9); Tealium batches at most 1,000.",
        ),
    )
}


class UnknownVariantError(ValueError):
    """A variant name that does not exist, or two variants of one group."""


def parse_variants(names: Iterable[str]) -> list[str]:
    """Validate variant names (comma-separated items allowed); returns them sorted, without duplicates."""
    out: set[str] = set()
    for item in names:
        for name in str(item).split(","):
            name = name.strip()
            if not name:
                continue
            if name not in VARIANTS:
                raise UnknownVariantError(
                    f"unknown emulator variant {name!r}; choose from: {', '.join(sorted(VARIANTS))}"
                )
            out.add(name)
    groups: dict[str, str] = {}
    for name in sorted(out):
        group = VARIANTS[name].group
        if group and group in groups:
            raise UnknownVariantError(f"variants {groups[group]!r} and {name!r} exclude each other")
        if group:
            groups[group] = name
    return sorted(out)


def describe_variants() -> str:
    """A plain-text list of every variant (for `--variant help`)."""
    lines = []
    for v in VARIANTS.values():
        lines.append(f"{v.name}\n    {v.behaviour}\n    Known: {v.known}")
    return "\n".join(lines)
