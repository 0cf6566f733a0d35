"""ttsync: send first-party warehouse data to TikTok Ads Manager (custom audiences, offline events).

The Python API (`ttsync.Workspace`, `RunResult`, the errors; docs/python-api.md) is imported on first use,
so that `import ttsync` and the command line stay quick.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Arrow's allocator (mimalloc) reads its options once, when pyarrow is first imported, so this is set before
# any ttsync module imports pyarrow (a process that imported pyarrow first keeps its own setting; a user's
# own setting wins). With transparent huge pages allowed, mimalloc's fresh memory faults in 2 MiB pages that
# the kernel zeroes (and compacts for) on first touch: measured with bench/prepare.py on a loaded 2-core VM,
# emails cost 375-599 ns/row of CPU with them and 237-268 without, the first batch 650-910 against 325-345.
os.environ.setdefault("MIMALLOC_ALLOW_THP", "0")

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
