"""Issue 17's "done when": after the sample quickstart with write-back on, the four tables are in the sample
warehouse with counts that match the workflow records and the emulator's state, and the query of
docs/writeback.md explains for every customer why they are or are not in the audience."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb

DOC = Path(__file__).resolve().parents[1] / "docs" / "writeback.md"


def _doc_query_snippet(workspace: Path) -> str:
    """The Python block of docs/writeback.md that joins outcomes to the customer table, pointed at `workspace`."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    (snippet,) = [str(b) for b in blocks if "customer_keys" in b]
    return snippet.replace(
        '"my-workspace/warehouse.duckdb"', repr(str(workspace / "warehouse.duckdb"))
    ).replace('"my-workspace"', repr(str(workspace)))


def test_quickstart_writes_back_tables_that_explain_the_audience(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTSYNC_")}
    root = tmp_path / "qs"
    done = subprocess.run(
        [sys.executable, "-m", "ttsync", "quickstart", "--rows", "3000", "--dir", str(root), "--json"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    data: dict[str, Any] = json.loads(done.stdout)
    runs = [*data["runs"], data["events"]]
    warehouse = root / "warehouse.duckdb"
    with duckdb.connect(str(warehouse), read_only=True) as con:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'ttsync'").fetchall()}  # fmt: skip
        assert tables >= {
            "ttsync_runs",
            "ttsync_audience_syncs",
            "ttsync_row_outcomes",
            "ttsync_event_outcomes",
        }
        written = con.execute(
            "SELECT workflow_id, status, kind FROM ttsync.ttsync_runs ORDER BY created_at"
        ).fetchall()
        assert written == [(r["id"], r["state"], r["kind"]) for r in runs]
        for run, in_emulator in zip(data["runs"], data["emulator_members_after_each_run"], strict=True):
            plan, upload = run["counts"]["plan"], run["counts"]["upload"]
            row = con.execute(
                "SELECT adds, removes, added_confirmed, removed_confirmed, deferred, size_after, people "
                "FROM ttsync.ttsync_audience_syncs WHERE workflow_id = ?",
                [run["id"]],
            ).fetchone()
            assert row == (
                plan["add_ids"], plan["remove_ids"], upload["added_ids"], upload["removed_ids"], 0,
                plan["current_ids"], plan["current_people"],
            )  # fmt: skip
            assert row[5] == in_emulator  # what the emulator holds after the run
            people = con.execute(
                "SELECT count(DISTINCT row_key) FROM ttsync.ttsync_row_outcomes "
                "WHERE workflow_id = ? AND status IN ('sent', 'in_audience')",
                [run["id"]],
            ).fetchone()
            assert people == (plan["current_people"],)
        # The second run re-confirms most people and sends only the newcomers' identifiers.
        second = data["runs"][1]["id"]
        sent = con.execute(
            "SELECT count(*) FROM (SELECT DISTINCT identifier_type, row_key FROM ttsync.ttsync_row_outcomes "
            "WHERE workflow_id = ? AND status = 'sent')",
            [second],
        ).fetchone()
        assert sent is not None
        assert 0 < sent[0] <= data["runs"][1]["counts"]["plan"]["add_ids"]
        deliver = data["events"]["counts"]["deliver"]
        events = dict(
            con.execute("SELECT status, count(*) FROM ttsync.ttsync_event_outcomes GROUP BY 1").fetchall()
        )
        assert sum(events.values()) == deliver["rows"]
        assert events.get("accepted", 0) >= deliver["sent"] == data["emulator_events_received"]

    # The documented join: one answer per customer, consistent with the segment and the audience.
    scope: dict[str, Any] = {}
    exec(_doc_query_snippet(root), scope)  # noqa: S102 - the documentation's own example, run as printed
    answers = scope["why"].fetchall()
    scope["con"].close()
    with duckdb.connect(str(warehouse), read_only=True) as con:
        customers = con.execute("SELECT count(*) FROM Merged_Customers").fetchone()
    assert customers == (len(answers),)
    reasons = {why for _id, _value, why in answers}
    assert reasons <= {"in the audience", "not selected by the query (or no identifier)"} | {
        why for why in reasons if why.startswith("every identifier rejected: ")
    }
    in_audience = [value for _id, value, why in answers if why == "in the audience"]
    assert len(in_audience) == data["runs"][1]["counts"]["plan"]["current_people"]
    assert all(value >= 500 for value in in_audience)  # the segment: lifetime_value >= 500
    assert any(why == "not selected by the query (or no identifier)" for *_, why in answers)
