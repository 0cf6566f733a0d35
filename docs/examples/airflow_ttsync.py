"""Airflow: sync the audience every morning with ttsync's Python API (docs/orchestrators.md)."""

from datetime import datetime, timedelta
from typing import Any

from airflow.decorators import dag, task

import ttsync


@task(retries=3, retry_delay=timedelta(minutes=10))
def sync_audience(orchestration: str) -> dict[str, Any]:
    """Run one orchestration; the return value lands in XCom for the tasks after it."""
    try:
        result = ttsync.Workspace().run(orchestration)  # the workspace: $TTSYNC_WORKSPACE
    except ttsync.RunFailedError as failed:
        # TikTok down or rate-limited: fail this try, Airflow retries it (nothing TikTok confirmed is sent twice).
        # Anything else needs a person: the resolution key names the fix (docs/resolutions.md).
        print(f"ttsync workflow {failed.result.workflow_id} failed: {failed.resolution}")
        raise
    upload = result.counts.get("upload", {})
    return {
        "workflow_id": result.workflow_id,
        "status": result.status,
        "added": upload.get("added_ids", 0),
        "removed": upload.get("removed_ids", 0),
    }


@dag(schedule="0 6 * * *", start_date=datetime(2026, 1, 1), catchup=False, tags=["ttsync"])
def ttsync_audiences() -> None:
    """One task per orchestration."""
    sync_audience("high-value-customers")


ttsync_audiences()
