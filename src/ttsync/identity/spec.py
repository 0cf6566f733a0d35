"""Column specifications: which warehouse column holds which identifier, in which state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["email", "phone", "idfa", "aaid", "external_id"]
HashState = Literal["raw", "sha256", "md5", "auto"]
PhoneFormat = Literal["e164", "digits"]
MaidHash = Literal["sha256", "md5"]

KINDS: tuple[Kind, ...] = ("email", "phone", "idfa", "aaid", "external_id")
MAID_KINDS: frozenset[str] = frozenset({"idfa", "aaid"})

# TikTok's id_schema names (ref §6.2). MD5 exists only for mobile ids; external ids exist only for
# the Events API (ref §6.1).
_SCHEMAS: dict[tuple[str, str], str] = {
    ("email", "sha256"): "EMAIL_SHA256",
    ("phone", "sha256"): "PHONE_SHA256",
    ("idfa", "sha256"): "IDFA_SHA256",
    ("idfa", "md5"): "IDFA_MD5",
    ("aaid", "sha256"): "AAID_SHA256",
    ("aaid", "md5"): "AAID_MD5",
    ("external_id", "sha256"): "EXTERNAL_ID_SHA256",
}


def id_schema_for(kind: str, algorithm: str) -> str:
    """The TikTok id_schema for identifiers of `kind` hashed with `algorithm` ("sha256" or "md5")."""
    try:
        return _SCHEMAS[(kind, algorithm)]
    except KeyError:
        raise ValueError(f"TikTok has no {algorithm.upper()} id schema for {kind} identifiers") from None


@dataclass(frozen=True)
class ColumnSpec:
    """How to read one warehouse column.

    column: the column name. kind: which identifier it holds. hash_state: whether values arrive raw,
    already hashed (sha256/md5), or `auto` (decided once for the whole column). region: default
    region (ISO 3166 alpha-2) for phones written without `+`/`00`; region_column: a column holding
    that region per row (its nulls fall back to `region`). delimiter: split cells into several
    identifiers (list columns are always split). phone_format: `e164` hashes `+E164`, `digits`
    hashes the same digits without `+` (for customer files, ref §6.3). maid_hash: the algorithm
    used to hash raw mobile ids.
    """

    column: str
    kind: Kind
    hash_state: HashState = "raw"
    region: str | None = None
    region_column: str | None = None
    delimiter: str | None = None
    phone_format: PhoneFormat = "e164"
    maid_hash: MaidHash = "sha256"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown identifier kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        if self.hash_state not in ("raw", "sha256", "md5", "auto"):
            raise ValueError(f"unknown hash_state {self.hash_state!r}")
        if self.phone_format not in ("e164", "digits"):
            raise ValueError(f"unknown phone_format {self.phone_format!r}")
        if self.maid_hash not in ("sha256", "md5"):
            raise ValueError(f"unknown maid_hash {self.maid_hash!r}")
        if self.hash_state == "md5":
            id_schema_for(self.kind, "md5")  # raises for kinds TikTok cannot take as MD5
        if self.maid_hash == "md5" and self.kind not in MAID_KINDS:
            raise ValueError("maid_hash applies to idfa and aaid columns only")
        if self.delimiter == "":
            raise ValueError("delimiter must not be empty")

    def schema_for(self, state: str) -> str:
        """The id_schema of this column's identifiers once its hash state is known."""
        if state == "raw":
            return id_schema_for(self.kind, self.maid_hash if self.kind in MAID_KINDS else "sha256")
        return id_schema_for(self.kind, state)
