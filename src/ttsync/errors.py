"""Errors any layer may raise that map to an entry of the resolution catalog (`ttsync.workflows.resolutions`).

Kept at the bottom of the package so that audiences, events and services can raise them without importing
the workflow engine.
"""

from __future__ import annotations


class ResolvableError(Exception):
    """A failure with a known resolution: `resolution_key` names the catalog entry; the message says what
    happened in this case (never with PII or secrets)."""

    resolution_key = "invalid_request"

    def __init__(self, message: str, *, resolution_key: str | None = None) -> None:
        super().__init__(message)
        if resolution_key is not None:
            self.resolution_key = resolution_key


class LargeRemovalBlockedError(ResolvableError):
    """The plan removes a larger share of the audience than the remove guard allows."""

    resolution_key = "large_removal_blocked"


class AudienceLimitReachedError(ResolvableError):
    """The advertiser has 400 custom audiences already."""

    resolution_key = "audience_limit_reached"


class AudienceNotReadyError(ResolvableError):
    """The audience is still processing and refuses mappings after waiting."""

    resolution_key = "audience_not_ready"


class RunRefusedError(ResolvableError):
    """A run or a retry was refused before anything ran; the CLI exits with `exit_code` (see README)."""

    exit_code = 3


class WorkflowRunningError(RunRefusedError):
    """Another live workflow holds the lease of the orchestration or of its audience."""

    resolution_key = "workflow_running"
    exit_code = 3


class WorkflowSupersededError(RunRefusedError):
    """The workflow was superseded by a newer run of its orchestration and cannot continue."""

    resolution_key = "workflow_superseded"
    exit_code = 4
