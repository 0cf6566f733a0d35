"""Exit codes of the `ttsync` command: stable, documented in the README ("Exit codes"), so that any
scheduler can branch on them. Codes are only ever added, never changed or reused."""

from __future__ import annotations

from typing import Final

EXIT_OK: Final = 0  # done; for runs: the workflow succeeded (also `succeeded_with_warnings`)
EXIT_FAILED: Final = 1  # the command ran and what it did failed: a workflow needs its resolution
EXIT_USAGE: Final = 2  # usage or configuration error: nothing was run
EXIT_WORKFLOW_RUNNING: Final = (
    3  # refused: another workflow of the orchestration runs (`WorkflowRunningError`)
)
EXIT_SUPERSEDED: Final = (
    4  # refused: continuing a workflow a newer run superseded (`WorkflowSupersededError`)
)
EXIT_TIKTOK_UNAVAILABLE: Final = 5  # a workflow stopped because TikTok was down or rate-limited: retry later
EXIT_INTERRUPTED: Final = 130  # Ctrl-C

# Resolutions that mean "TikTok did not answer (well) for long enough; nothing to fix, retry later".
RETRY_LATER_RESOLUTIONS: Final = frozenset({"tiktok_unavailable", "rate_limited"})


def for_failed_workflow(resolution: str | None) -> int:
    """The exit code of a failed workflow with this resolution key."""
    return EXIT_TIKTOK_UNAVAILABLE if resolution in RETRY_LATER_RESOLUTIONS else EXIT_FAILED
