"""The match-quality report: what `plan` shows before anything is sent, stored with each run."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from rich.console import Console
from rich.table import Table


class AutoDecision(BaseModel):
    """How an `auto` column was read: decided once for the whole column."""

    column: str
    decided: str  # raw, sha256 or md5
    sampled: int  # non-empty values looked at to decide (from the first batch that had any)
    not_fitting: int = 0  # values rejected because they did not fit the decision


class TypeStats(BaseModel):
    """Counts for one identifier type (identity's id_schema name), over every column of that type."""

    id_schema: str
    columns: list[str]
    present: int = 0  # non-null values, after splitting multi-value cells
    valid: int = 0
    rejected: dict[str, int] = Field(default_factory=dict)  # reason code -> count
    duplicates: int = 0  # valid identifiers whose hash was already seen (exact, see duplicates.py)


class MatchReport(BaseModel):
    """Match quality of a prepared input: per identifier type, and per person (row)."""

    people: int = 0  # rows with a row key
    people_matchable: int = 0  # rows with at least one usable identifier
    share_matchable: float = 0.0
    types: list[TypeStats] = Field(default_factory=list)
    auto: list[AutoDecision] = Field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (stored with each run)."""
        return self.model_dump(mode="json")

    def render(self, console: Console) -> None:
        """Print the report as rich tables."""
        table = Table(title="Identifiers", show_lines=False)
        for name in ("type", "columns", "present", "valid", "rejected", "duplicates"):
            table.add_column(name, justify="right" if name in ("present", "valid", "duplicates") else "left")
        for t in self.types:
            rejected = ", ".join(f"{reason} {count:,}" for reason, count in sorted(t.rejected.items())) or "-"
            table.add_row(
                t.id_schema,
                ", ".join(t.columns),
                f"{t.present:,}",
                f"{t.valid:,}",
                rejected,
                f"{t.duplicates:,}",
            )
        console.print(table)
        if self.auto:
            auto = Table(title="Hash state decided by auto")
            for name in ("column", "decided", "sampled", "not fitting"):
                auto.add_column(name)
            for a in self.auto:
                auto.add_row(a.column, a.decided, f"{a.sampled:,}", f"{a.not_fitting:,}")
            console.print(auto)
        console.print(
            f"People: {self.people:,}; with at least one usable identifier: {self.people_matchable:,} "
            f"({self.share_matchable:.1%} matchable)"
        )
