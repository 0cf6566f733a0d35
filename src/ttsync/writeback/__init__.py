"""Write-back: each workflow's results as tables in the warehouse (docs/writeback.md).

`ttsync.config.writeback` (the `writeback:` block), `resolve` (its target for one orchestration), `stored`
(the applied block in the state folder), `schema` (tables and migrations), `target` (writable connections limited
to the target), `collect` (rows from the workflow record and run folder), `writer` (migrate, delete + insert
by workflow id in one transaction), `task` (the workflow task and the hooks `services.runs` calls).
"""

from ttsync.config.writeback import WritebackConfig, WritebackSettings, WritebackTarget
from ttsync.writeback.resolve import resolve_target
from ttsync.writeback.schema import SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION", "WritebackConfig", "WritebackSettings", "WritebackTarget", "resolve_target"]
