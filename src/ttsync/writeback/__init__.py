"""Write-back: each workflow's results as tables in the warehouse (docs/writeback.md).

`config` (the `writeback:` block), `schema` (tables and migrations), `target` (writable connections limited
to the target), `collect` (rows from the workflow record and run folder), `writer` (migrate, delete + insert
by workflow id in one transaction), `task` (the workflow task and the hooks `services.runs` calls).
"""

from ttsync.writeback.config import WritebackConfig, WritebackSettings, WritebackTarget, resolve_target
from ttsync.writeback.schema import SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION", "WritebackConfig", "WritebackSettings", "WritebackTarget", "resolve_target"]
