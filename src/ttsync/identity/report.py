"""The match-quality report: what `plan` shows before anything is sent, stored with each run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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

    @classmethod
    def merge(
        cls, reports: Sequence[MatchReport], duplicates: Mapping[str, int] | None = None
    ) -> MatchReport:
        """One report of several parts of an input (Spark partitions): every count is a sum, so the merged
        report equals the report of the whole input, except `duplicates`, which only the whole input can count
        (an identifier may repeat across parts): give `duplicates` per id schema, else the parts' sum."""
        types: dict[str, TypeStats] = {}
        auto: dict[str, AutoDecision] = {}
        people = matchable = 0
        for report in reports:
            people += report.people
            matchable += report.people_matchable
            for t in report.types:
                merged = types.setdefault(t.id_schema, TypeStats(id_schema=t.id_schema, columns=[]))
                merged.columns += [c for c in t.columns if c not in merged.columns]
                merged.present += t.present
                merged.valid += t.valid
                merged.duplicates += t.duplicates
                for reason, count in t.rejected.items():
                    merged.rejected[reason] = merged.rejected.get(reason, 0) + count
            for a in report.auto:
                seen = auto.get(a.column)
                auto[a.column] = (
                    a
                    if seen is None
                    else seen.model_copy(update={"not_fitting": seen.not_fitting + a.not_fitting})
                )
        if duplicates is not None:
            for schema, stats in types.items():
                stats.duplicates = duplicates.get(schema, 0)
        return cls(
            people=people,
            people_matchable=matchable,
            share_matchable=matchable / people if people else 0.0,
            types=list(types.values()),
            auto=list(auto.values()),
        )

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
