"""Dagster: an asset that runs an orchestration and shows its counts as metadata (docs/orchestrators.md)."""

from dagster import AssetExecutionContext, MaterializeResult, asset

import ttsync


@asset(group_name="tiktok", description="The 'High value customers' audience in TikTok Ads Manager")
def high_value_customers_audience(context: AssetExecutionContext) -> MaterializeResult:
    """Sync the audience; a failed workflow fails the materialization with its resolution key."""
    result = ttsync.Workspace().run("high-value-customers")  # the workspace: $TTSYNC_WORKSPACE
    plan, upload = result.counts.get("plan", {}), result.counts.get("upload", {})
    context.log.info(f"ttsync workflow {result.workflow_id}: {result.status}")
    return MaterializeResult(
        metadata={
            "workflow_id": result.workflow_id,
            "status": result.status,
            "people": plan.get("current_people", 0),
            "added_ids": upload.get("added_ids", 0),
            "removed_ids": upload.get("removed_ids", 0),
            "warnings": len(result.warnings),
        }
    )
