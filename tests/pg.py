"""Start a real, throw-away PostgreSQL server for tests (initdb + pg_ctl on a free loopback port).

initdb refuses to run as root, so when the tests run as root the cluster is created and started as the
`postgres` system user (runuser) in a temporary folder owned by it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PG_BIN = Path(os.environ.get("TTSYNC_PG_BIN", "/usr/lib/postgresql/15/bin"))


def missing_reason() -> str | None:
    """Why a PostgreSQL server cannot be started here, or None when it can."""
    for tool in ("initdb", "pg_ctl", "postgres"):
        if not (PG_BIN / tool).exists():
            return f"PostgreSQL server binaries not found in {PG_BIN} (install the postgresql package)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no `postgres` user to run initdb as"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _run(cmd: list[str], as_postgres: bool) -> None:
    if as_postgres:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    # No pipes: the server pg_ctl forks would inherit them and keep `run` waiting; output goes to a log file.
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield a SQLAlchemy URL (psycopg) of a fresh database; stop and delete the server afterwards."""
    reason = missing_reason()
    if reason:
        raise RuntimeError(reason)
    as_postgres = os.geteuid() == 0
    tmp = Path(tempfile.mkdtemp(prefix="ttsync-pg-"))
    data, sockets = tmp / "data", tmp / "sock"
    sockets.mkdir()
    if as_postgres:
        entry = pwd.getpwnam("postgres")
        for path in (tmp, sockets):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    user = "postgres" if as_postgres else pwd.getpwuid(os.geteuid()).pw_name
    port = _free_port()
    started = False
    try:
        _run([str(PG_BIN / "initdb"), "-D", str(data), "-U", user, "--auth=trust", "-E", "UTF8"], as_postgres)
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={sockets} -c fsync=off"
        )
        log = tmp / "server.log"
        _run([str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start"],
             as_postgres)  # fmt: skip
        started = True
        yield f"postgresql+psycopg://{user}@127.0.0.1:{port}/postgres"
    finally:
        if started:
            _run([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"], as_postgres)
        shutil.rmtree(tmp, ignore_errors=True)
