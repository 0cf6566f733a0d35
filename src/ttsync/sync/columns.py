"""Which warehouse columns feed which TikTok identifier: the audience side of a data template's mapping.

A data template's `attribute_mapping` maps a source column to a TikTok field. For audiences the fields are the
user id types, optionally with the column's hash state after a colon:

    email: EMAIL            # raw emails (normalized and hashed by ttsync)
    email_sha256: EMAIL:sha256   # already SHA-256 hashed: checked, never hashed again
    phone: PHONE
    country: REGION         # per-row country for phones written in national format
    idfa: IDFA:auto         # ttsync decides raw / sha256 / md5 for the whole column

Without a mapping, columns named like the user id types (`email`, `phone`, `idfa`, `aaid`) are used with hash
state `auto`, and a `country` column, when present, gives each phone its region.

The destination's `user_id_types` lists the types that may be sent; an orchestration sends those its query has
columns for (a template's mapping is shared by orchestrations whose queries return different columns), and
is refused only when none of them has a column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ttsync.errors import ConfigError
from ttsync.identity import ColumnSpec

USER_ID_KINDS = {"EMAIL": "email", "PHONE": "phone", "IDFA": "idfa", "AAID": "aaid"}
HASH_STATES = ("raw", "sha256", "md5", "auto")
REGION_FIELD = "REGION"


def audience_column_specs(
    *,
    user_id_types: Sequence[str],
    mapping: Mapping[str, str],
    columns: Sequence[str],
    default_region: str | None,
    phone_format: str = "e164",
) -> list[ColumnSpec]:
    """Column specs for the enabled user id types, with errors that say how to fix the mapping."""
    available = {c.lower(): c for c in columns}
    if mapping:
        pairs = [(source, target) for source, target in mapping.items()]
    else:
        pairs = [(available[k.lower()], k) for k in USER_ID_KINDS if k.lower() in available]
        if "country" in available:
            pairs.append((available["country"], REGION_FIELD))

    region_column: str | None = None
    specs: list[ColumnSpec] = []
    for source, target in pairs:
        field, _, state = target.strip().upper().partition(":")
        state = state.lower() or ("auto" if not mapping else "raw")
        if field != REGION_FIELD and field not in USER_ID_KINDS:
            raise ConfigError(
                f"attribute_mapping maps {source!r} to {target!r}; audience fields are EMAIL, PHONE, IDFA, AAID "
                "(optionally with :raw, :sha256, :md5 or :auto) and REGION"
            )
        if source not in columns:
            continue  # this query does not return it: that type is simply not sent by this orchestration
        if field == REGION_FIELD:
            region_column = source
            continue
        if field not in USER_ID_KINDS:
            raise ConfigError(
                f"attribute_mapping maps {source!r} to {target!r}; audience fields are EMAIL, PHONE, IDFA, AAID "
                "(optionally with :raw, :sha256, :md5 or :auto) and REGION"
            )
        if state not in HASH_STATES:
            raise ConfigError(
                f"attribute_mapping {source!r}: hash state {state!r} is not one of {', '.join(HASH_STATES)}"
            )
        if field not in user_id_types:
            continue
        specs.append(ColumnSpec(column=source, kind=USER_ID_KINDS[field], hash_state=state))  # type: ignore[arg-type]

    if not specs:
        mapped = [f"{source} -> {target}" for source, target in mapping.items()]
        raise ConfigError(
            f"no query column feeds any user id type the destination allows ({', '.join(user_id_types)}); "
            f"the query returns: {', '.join(columns)}"
            + (f"; the data template maps {', '.join(mapped)}" if mapped else "")
            + ". Return one of those columns (e.g. `email`), or map a column in the data template's "
            "attribute_mapping"
        )
    return [
        ColumnSpec(
            column=spec.column,
            kind=spec.kind,
            hash_state=spec.hash_state,
            region=default_region if spec.kind == "phone" else None,
            region_column=region_column if spec.kind == "phone" else None,
            phone_format=phone_format,  # type: ignore[arg-type]
        )
        for spec in specs
    ]
