"""Opening the control-plane store: a SQLAlchemy engine (SQLite by default, Postgres by URL) + the secret box."""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from ttsync.store.crypto import SecretBox, SecretKeyError
from ttsync.store.migrations import migrate

STORE_URL_ENV = "TTSYNC_STORE_URL"
_READ_ONLY = "ttsync_read_only"


class StoreError(Exception):
    """The store cannot be opened (bad URL, unreachable server, missing driver)."""


def sqlite_url(path: Path) -> str:
    """SQLAlchemy URL of a SQLite file."""
    return f"sqlite:///{path}"


def _tune_sqlite(engine: sa.Engine) -> None:
    # pysqlite's implicit transactions do not cover DDL and begin lazily; take control so migrations are
    # atomic and a writer takes the lock up front (BEGIN IMMEDIATE) instead of failing mid-transaction.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        # A reader (`Store.read`) takes no lock: in WAL mode it reads a snapshot while a writer commits, where
        # BEGIN IMMEDIATE would queue every API read behind the other readers and a running sync's writes.
        read_only = conn.get_execution_options().get(_READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


class Store:
    """The control plane: an engine with the schema migrated, plus the box that seals secrets."""

    def __init__(self, engine: sa.Engine, box: SecretBox | None) -> None:
        self.engine = engine
        self._box = box

    @classmethod
    def open(cls, url: str, box: SecretBox | None = None) -> Store:
        """Open (creating and migrating as needed) the store at `url`. `box` is needed to touch secrets."""
        try:
            parsed = sa.make_url(url)
        except ArgumentError:
            raise StoreError(
                f"{STORE_URL_ENV} / store URL is not a SQLAlchemy URL (e.g. sqlite:///state/ttsync.db or "
                "postgresql+psycopg://user@host/db)"
            ) from None
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        try:
            engine = sa.create_engine(parsed, pool_pre_ping=parsed.get_backend_name() != "sqlite")
        except (NoSuchModuleError, ImportError) as exc:
            raise StoreError(
                f"no driver for store backend {parsed.drivername!r}: install it (for Postgres: "
                "pip install 'ttsync[postgres]')"
            ) from exc
        if engine.dialect.name == "sqlite":
            _tune_sqlite(engine)
        try:
            migrate(engine)
        except sa.exc.OperationalError as exc:
            engine.dispose()
            # The driver's message can contain the URL's password; report only the host and database.
            raise StoreError(
                f"cannot open the store at {parsed.render_as_string(hide_password=True)}: "
                f"{type(exc.orig).__name__}; check that the server runs and the URL is right"
            ) from None
        return cls(engine, box)

    @classmethod
    def open_default(cls, state_dir: Path, box: SecretBox | None = None) -> Store:
        """`$TTSYNC_STORE_URL` if set, else SQLite at `state_dir/ttsync.db`."""
        url = os.environ.get(STORE_URL_ENV) or sqlite_url(state_dir / "ttsync.db")
        return cls.open(url, box)

    def read(self) -> sa.Connection:
        """A connection for reads only (`with store.read() as conn:`): on SQLite its transaction takes no
        lock, so it neither waits for nor delays writers. Writes go through `store.engine.begin()`."""
        return self.engine.connect().execution_options(**{_READ_ONLY: True})

    @property
    def box(self) -> SecretBox:
        """The secret box; raises when the store was opened without a key."""
        if self._box is None:
            raise SecretKeyError("this operation needs the workspace secret key, which was not loaded")
        return self._box

    @property
    def has_box(self) -> bool:
        """Whether secrets can be sealed and opened."""
        return self._box is not None

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.engine.url.render_as_string(hide_password=True)!r})"
