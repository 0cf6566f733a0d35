"""Match reports of parts of an input (Spark partitions) merge into the report of the whole input."""

from __future__ import annotations

import pyarrow as pa

from ttsync.identity import ColumnSpec, MatchReport, Preparer

SPECS = [ColumnSpec("email", "email"), ColumnSpec("idfa", "idfa", hash_state="auto")]


def _table() -> pa.Table:
    emails = [f"user{i % 40}@example.com" if i % 7 else "not an email" for i in range(300)]
    emails[5] = None  # type: ignore[call-overload]
    idfas = [f"6d92078a-8246-4ba4-ae5b-{i % 50:012d}" if i % 11 else "0" * 64 for i in range(300)]
    keys = [str(i) if i % 13 else None for i in range(300)]
    return pa.table({"k": keys, "email": emails, "idfa": idfas})


def _report(table: pa.Table, decided: MatchReport | None = None) -> MatchReport:
    with Preparer(SPECS, key_column="k", workers=1, decided=decided.auto if decided else ()) as preparer:
        for batch in table.to_batches(max_chunksize=64):
            preparer.process(batch)
    return preparer.report()


def test_sum_of_part_reports_is_the_whole_report() -> None:
    table = _table()
    whole = _report(table)
    assert [a.decided for a in whole.auto] == ["raw"]
    assert any(t.duplicates for t in whole.types)  # duplicates cross the parts below
    parts = [_report(table.slice(start, 100), decided=whole) for start in (0, 100, 200)]
    duplicates = {t.id_schema: t.duplicates for t in whole.types}
    merged = MatchReport.merge(parts, duplicates=duplicates)
    assert merged == whole
    # Without the whole input's duplicate counts, only duplicates within a part are counted.
    summed = MatchReport.merge(parts)
    assert sum(t.duplicates for t in summed.types) < sum(duplicates.values())
    assert summed.model_copy(update={"types": merged.types}) == whole
