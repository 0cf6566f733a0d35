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

# The hash algorithms each kind may arrive in. MD5 is kept only for mobile ids (ad platforms take MD5 MAIDs
# but not MD5 emails or phones, ref §6.2); external ids exist only for events (ref §6.1).
ALGORITHMS: dict[str, tuple[str, ...]] = {
    "email": ("sha256",),
    "phone": ("sha256",),
    "idfa": ("sha256", "md5"),
    "aaid": ("sha256", "md5"),
    "external_id": ("sha256",),
}


def id_schema_for(kind: str, algorithm: str) -> str:
    """Identity's name for identifiers of `kind` hashed with `algorithm` ("sha256" or "md5"): `KIND_ALGORITHM`
    upper-cased (e.g. EMAIL_SHA256). Destinations map these names to their own (`destinations.tiktok.schemas`)."""
    if algorithm not in ALGORITHMS.get(kind, ()):
        allowed = " or ".join(a.upper() for a in ALGORITHMS.get(kind, ())) or "no algorithm"
        raise ValueError(f"{kind} identifiers cannot arrive {algorithm.upper()}-hashed: use {allowed}")
    return f"{kind}_{algorithm}".upper()


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
            id_schema_for(self.kind, "md5")  # raises for kinds that never arrive as MD5
        if self.maid_hash == "md5" and self.kind not in MAID_KINDS:
            raise ValueError("maid_hash applies to idfa and aaid columns only")
        if self.delimiter == "":
            raise ValueError("delimiter must not be empty")

    def schema_for(self, state: str) -> str:
        """The id_schema of this column's identifiers once its hash state is known."""
        if state == "raw":
            return id_schema_for(self.kind, self.maid_hash if self.kind in MAID_KINDS else "sha256")
        return id_schema_for(self.kind, state)
