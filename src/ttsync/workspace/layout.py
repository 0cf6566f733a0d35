"""Where a workspace lives: discovery (`--workspace`, `$TTSYNC_WORKSPACE`, cwd) and its file layout.

DIR/ttsync.yaml          the config file (in git)
DIR/state/ttsync.db      the control-plane store (unless $TTSYNC_STORE_URL points elsewhere)
DIR/state/secret.key     the Fernet key, mode 0600 (unless $TTSYNC_SECRET_KEY is set)
DIR/state/...            snapshots and ledgers (data plane)
DIR/warehouse.duckdb     the sample warehouse (`ttsync init --sample`)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ttsync.store import Store, load_key
from ttsync.store.crypto import KEY_FILE_NAME
from ttsync.workspace.config import CONFIG_FILE

WORKSPACE_ENV = "TTSYNC_WORKSPACE"
STATE_DIR = "state"
SAMPLE_WAREHOUSE = "warehouse.duckdb"


@dataclass(frozen=True)
class Workspace:
    """A workspace folder and the paths inside it."""

    root: Path

    @classmethod
    def discover(cls, option: Path | str | None = None) -> Workspace:
        """`option` (the --workspace flag) if given, else `$TTSYNC_WORKSPACE`, else the current directory."""
        chosen = option or os.environ.get(WORKSPACE_ENV) or Path.cwd()
        return cls(Path(chosen).expanduser().resolve())

    @property
    def config_path(self) -> Path:
        """`ttsync.yaml` in the workspace."""
        return self.root / CONFIG_FILE

    @property
    def state_dir(self) -> Path:
        """The state folder (store, key, snapshots, ledger)."""
        return self.root / STATE_DIR

    @property
    def key_file(self) -> Path:
        """The 0600 key file used when `$TTSYNC_SECRET_KEY` is not set."""
        return self.state_dir / KEY_FILE_NAME

    @property
    def sample_warehouse(self) -> Path:
        """Where `ttsync init --sample` writes the DuckDB warehouse."""
        return self.root / SAMPLE_WAREHOUSE

    def open_store(self, *, with_key: bool = True) -> Store:
        """Open the store (`$TTSYNC_STORE_URL` or state/ttsync.db); with the secret key unless `with_key=False`."""
        box = load_key(self.key_file) if with_key else None
        return Store.open_default(self.state_dir, box)
