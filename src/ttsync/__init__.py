"""ttsync: send first-party warehouse data to TikTok Ads Manager (custom audiences, offline events).

The Python API (`ttsync.Workspace`, `RunResult`, the errors; docs/python-api.md) is imported on first use,
so that `import ttsync` and the command line stay quick.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from ttsync.api import (
        ConfigurationError,
        RunFailedError,
        RunRefusedError,
        RunResult,
        TtsyncError,
        WorkflowSummary,
        Workspace,
    )

__all__ = [
    "ConfigurationError",
    "RunFailedError",
    "RunRefusedError",
    "RunResult",
    "TtsyncError",
    "WorkflowSummary",
    "Workspace",
    "__version__",
]
_API = frozenset(__all__) - {"__version__"}  # the names `ttsync.api` defines


def __getattr__(name: str) -> Any:
    if name in _API:
        from ttsync import api

        return getattr(api, name)
    raise AttributeError(f"module 'ttsync' has no attribute {name!r}")
