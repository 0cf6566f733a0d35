"""Write-back of a campaign run's own rows: the people it left out on purpose (docs/writeback.md).

Each delivery (sub-audience × destination) is an audience workflow and writes its rows like any other. The
campaign run adds one `ttsync_runs` row of kind `campaign` (its id: `campaign-` + a fresh hex id) and, in
`ttsync_row_outcomes`, one row per person it did not send: `excluded` (reason `exclusion:SEGMENT` or
`suppression:SEGMENT`) and `holdout`. Row keys are in their stored form (keyed-hashed when they look like
identifiers), never raw. Write-back problems never fail the campaign: they come back as a message.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from ttsync import __version__
from ttsync.config.models import Source
from ttsync.config.writeback import TableName
from ttsync.redact import redact_text
from ttsync.writeback.collect import RUNS_SCHEMA
from ttsync.writeback.resolve import resolve_target
from ttsync.writeback.stored import load_writeback
from ttsync.writeback.target import open_target
from ttsync.writeback.writer import WorkflowRows, write_rows

OUTCOME_FIELDS = ("workflow_id", "orchestration", "row_key", "identifier_type", "identifier_column", "status",
                  "reason")  # fmt: skip


@dataclass(frozen=True)
class CampaignRun:
    """What the campaign run's rows say: who ran what, when, and how it ended."""

    run_id: str
    campaign: str
    status: str
    started_at: datetime
    rows_read: int | None = None


def campaign_outcomes(run_id: str, campaign: str, excluded: pa.Table, holdout: pa.Table) -> pa.Table:
    """`ttsync_row_outcomes` rows: `excluded` (`row_key`, `reason`) then `holdout` (`row_key`)."""
    n_ex, n_ho = excluded.num_rows, holdout.num_rows
    keys = pa.chunked_array(
        [*excluded.column("row_key").chunks, *holdout.column("row_key").chunks], pa.string()
    )
    reasons = pa.chunked_array([*excluded.column("reason").chunks, pa.nulls(n_ho, pa.string())], pa.string())
    return pa.table(
        {
            "workflow_id": pa.array([run_id] * (n_ex + n_ho), pa.string()),
            "orchestration": pa.array([campaign] * (n_ex + n_ho), pa.string()),
            "row_key": keys,
            "identifier_type": pa.nulls(n_ex + n_ho, pa.string()),
            "identifier_column": pa.nulls(n_ex + n_ho, pa.string()),
            "status": pa.array(["excluded"] * n_ex + ["holdout"] * n_ho, pa.string()),
            "reason": reasons,
        }
    )


def write_campaign_run(
    state_dir: Path, root: Path, source: Source, run: CampaignRun, excluded: pa.Table, holdout: pa.Table
) -> str | None:
    """Write the campaign run's rows when write-back is on for the campaign (its name takes the place of an
    orchestration's in `writeback.orchestrations`); returns a problem's message, or None."""
    try:
        target = resolve_target(load_writeback(state_dir), run.campaign, source, root)
        if target is None:
            return None
        now = datetime.now(UTC)
        runs = pa.Table.from_pylist(
            [{"workflow_id": run.run_id, "orchestration": run.campaign, "campaign": run.campaign,
              "kind": "campaign", "status": run.status, "created_at": run.started_at,
              "started_at": run.started_at, "finished_at": now,
              "duration_seconds": (now - run.started_at).total_seconds(), "rows_read": run.rows_read,
              "warnings": 0, "written_at": now, "ttsync_version": __version__}],
            schema=RUNS_SCHEMA,
        )  # fmt: skip
        tables: dict[TableName, pa.Table] = {
            "ttsync_runs": runs,
            "ttsync_row_outcomes": campaign_outcomes(run.run_id, run.campaign, excluded, holdout),
        }
        conn = open_target(target, root)
        try:
            write_rows(conn, target, WorkflowRows(run.run_id, tables))
        finally:
            with contextlib.suppress(Exception):
                conn.close()
    except Exception as exc:  # never fails the campaign: the deliveries are already sent
        return redact_text(f"write-back failed ({type(exc).__name__}: {exc})")
    return None
