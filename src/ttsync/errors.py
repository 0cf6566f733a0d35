"""The one base of every error a user can meet: `ResolvableError` and its resolution key.

Each user-facing error (workspace and configuration mistakes, source failures, TikTok refusals, credential
flows, bad event columns) derives from `ResolvableError`, so that the workflow engine classifies a failure by
`isinstance` alone and finds its entry in the resolution catalog (`ttsync.workflows.resolutions`). Kept at the
bottom of the package so that every layer can raise them without importing the workflow engine.
"""

from __future__ import annotations

from typing import Any, ClassVar


class ResolvableError(Exception):
    """A failure with a known resolution: `resolution_key` names the catalog entry; the message says what
    happened in this case (never with PII or secrets)."""

    resolution_key = "invalid_request"

    def __init__(self, message: str, *, resolution_key: str | None = None) -> None:
        super().__init__(message)
        if resolution_key is not None:
            self.resolution_key = resolution_key

    def details(self) -> dict[str, Any]:
        """Extra fields stored with a failed task beside the key and message (a destination's error code,
        request id and endpoint); none by default. Never PII or secrets."""
        return {}


class LargeRemovalBlockedError(ResolvableError):
    """The plan removes a larger share of the audience than the remove guard allows."""

    resolution_key = "large_removal_blocked"


class AudienceLimitReachedError(ResolvableError):
    """The advertiser has 400 custom audiences already."""

    resolution_key = "audience_limit_reached"


class AudienceNotReadyError(ResolvableError):
    """The audience is still processing and refuses mappings after waiting."""

    resolution_key = "audience_not_ready"


class WorkspaceError(ResolvableError):
    """A workspace problem the user can fix (missing file, bad setting, unknown object)."""

    resolution_key = "configuration_error"


class ConfigError(WorkspaceError):
    """The configuration file or an object's settings are invalid."""


class MissingSettingError(ConfigError):
    """A setting needed to run is set nowhere (destination, data template or orchestration)."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(message)
        self.setting = setting


class NotFoundError(WorkspaceError):
    """A named object (credential, source, destination, ...) does not exist in the store."""

    _CLI_GROUPS: ClassVar[dict[str, str]] = {
        "credential": "credentials",
        "source": "sources",
        "destination": "destinations",
        "data template": "templates",
        "orchestration": "orchestrations",
    }

    def __init__(self, kind: str, name: str) -> None:
        group = self._CLI_GROUPS.get(kind, kind + "s")
        if kind in self._CLI_GROUPS:
            hint = f"see `ttsync {group} list`, or add it to ttsync.yaml and run `ttsync apply`"
        else:
            # Workflows, runs and notifications are made by ttsync, never declared in ttsync.yaml.
            hint = f"see `ttsync {group} list`"
        super().__init__(f"{kind} {name!r} does not exist: {hint}")
        self.kind = kind
        self.name = name


class AmbiguousIdError(WorkspaceError):
    """A short id prefix matches several objects."""

    def __init__(self, kind: str, prefix: str, matches: list[str]) -> None:
        shown = ", ".join(matches[:10]) + (f" and {len(matches) - 10} more" if len(matches) > 10 else "")
        super().__init__(
            f"{kind} id {prefix!r} is ambiguous: it starts {len(matches)} ids ({shown}); type more characters"
        )
        self.kind = kind
        self.prefix = prefix
        self.matches = matches


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


class TaskOrderError(RunRefusedError):
    """`retry --task X` past a task that has not succeeded: X would run on output that task never made, and
    the workflow would end `succeeded` with that task still failed. Nothing ran; a usage error (exit 2)."""

    exit_code = 2


class RunCancelledError(ResolvableError):
    """Someone cancelled the run; it stopped at a batch boundary and can be retried."""

    resolution_key = "run_cancelled"
