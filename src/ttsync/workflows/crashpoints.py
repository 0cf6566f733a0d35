"""Test-only crash points: make this process die by SIGKILL at a named point, to test crash recovery.

Off unless `$TTSYNC_TEST_CRASH_AT` is set (never set it outside tests). Its value is `POINT` or `POINT#N`
(die the N-th time POINT is reached in this process, default 1st). Points: `before:TASK` and `after:TASK`
for every task of a workflow (after: its counts are stored, the next task not started), `upload:batch`
(after a mapping batch is confirmed and checkpointed), `upload:inflight` (after the in-flight record is
written, before the first request), `create:sent` (after TikTok created the audience, before its id is
stored) and `commit:snapshot` (after the snapshot is replaced, before the in-flight records are cleared).
"""

from __future__ import annotations

import os
import signal

CRASH_ENV = "TTSYNC_TEST_CRASH_AT"
_reached: dict[str, int] = {}


def crash_point(name: str) -> None:
    """Die at once (SIGKILL: no cleanup, like `kill -9`) when `$TTSYNC_TEST_CRASH_AT` names this point."""
    spec = os.environ.get(CRASH_ENV)
    if not spec:
        return
    point, _, nth = spec.partition("#")
    if point != name:
        return
    _reached[name] = _reached.get(name, 0) + 1
    if _reached[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
