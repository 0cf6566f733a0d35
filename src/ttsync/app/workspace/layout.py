"""Where a workspace lives: discovery (`--workspace`, `$TTSYNC_WORKSPACE`, cwd) and its file layout.

DIR/ttsync.yaml          the config file (in git)
DIR/state/ttsync.db      the control-plane store (unless $TTSYNC_STORE_URL points elsewhere)
DIR/state/secret.key     the Fernet key, mode 0600 (unless $TTSYNC_SECRET_KEY is set)
DIR/state/...            snapshots and ledgers (data plane)
DIR/warehouse.duckdb     the sample warehouse (`ttsync init --sample`)

The state folder is private: mode 0700, every file in it 0600 and every folder 0700 (`secure_state`).
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ttsync.config import file as config_file
from ttsync.config.file import CONFIG_FILE, WorkspaceFile
from ttsync.destinations.tiktok.settings import check_workspace_file
from ttsync.errors import ConfigError
from ttsync.store import Store, load_key
from ttsync.store.crypto import KEY_FILE_NAME

WORKSPACE_ENV = "TTSYNC_WORKSPACE"
STATE_DIR = "state"
SAMPLE_WAREHOUSE = "warehouse.duckdb"
# Group and others get nothing on anything ttsync creates once a workspace is open (see `secure_state`).
PRIVATE_UMASK = 0o077


def secure_state(state_dir: Path) -> None:
    """Make the state folder private to its owner, now and for every file ttsync writes in it later.

    The store (SQLite with its -wal and -shm files), the ledger, run folders, Parquet files written by Arrow
    and DuckDB, snapshots and logs are created by several libraries, each with the process umask: so the
    process umask gains 077 (it is only ever tightened, never loosened), which makes every new file 0600 and
    every new folder 0700. Files and folders an earlier version left open are tightened once, here.
    """
    current = os.umask(PRIVATE_UMASK)
    os.umask(current | PRIVATE_UMASK)
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    for folder, dirs, files in os.walk(state_dir):
        for path in (folder, *(os.path.join(folder, name) for name in (*dirs, *files))):
            try:
                info = os.lstat(path)
            except FileNotFoundError:  # removed meanwhile (a finished run's temporary files)
                continue
            if stat.S_ISLNK(info.st_mode) or not stat.S_IMODE(info.st_mode) & PRIVATE_UMASK:
                continue
            private = 0o700 if stat.S_ISDIR(info.st_mode) else 0o600
            # Removed meanwhile, or not ours to change: opening the workspace goes on regardless.
            with contextlib.suppress(OSError):
                os.chmod(path, stat.S_IMODE(info.st_mode) & private)


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
        secure_state(self.state_dir)
        box = load_key(self.key_file) if with_key else None
        return Store.open_default(self.state_dir, box)


def parse_config(
    text: str, *, source: str = CONFIG_FILE, environ: Mapping[str, str] | None = None
) -> WorkspaceFile:
    """Parse config text and validate it whole: the neutral shape (`ttsync.config.file`), then each
    destination's settings by its wing. `${VAR}` comes from `environ` (default: the process environment)."""
    parsed = config_file.parse_config(text, source=source, environ=os.environ if environ is None else environ)
    return check_workspace_file(parsed, source)


def load_config(path: Path, *, environ: Mapping[str, str] | None = None) -> WorkspaceFile:
    """Read and validate a config file."""
    if not path.is_file():
        raise ConfigError(f"{path} does not exist: create a workspace with `ttsync init DIR` or pass -f FILE")
    return parse_config(path.read_text(encoding="utf-8"), source=str(path), environ=environ)
