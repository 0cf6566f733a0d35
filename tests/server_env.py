"""A real `ttsync serve` process on loopback for the server tests, with an admin user added by the CLI."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2 as httpx

ADMIN_PASSWORD = "correct horse battery"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def ttsync(
    *args: str, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a real process."""
    return subprocess.run(
        [sys.executable, "-m", "ttsync", *args],
        capture_output=True,
        text=True,
        env=env,
        check=check,
        timeout=120,
    )


@dataclass
class Server:
    """A running server and its base URL."""

    url: str
    process: subprocess.Popen[str]
    log: Path

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)

    def login(self, name: str = "admin", password: str = ADMIN_PASSWORD) -> tuple[httpx.Client, str]:
        """A client with a session cookie, and its CSRF token."""
        client = self.client()
        answer = client.post("/api/session", json={"name": name, "password": password})
        assert answer.status_code == 200, answer.text
        return client, str(answer.json()["csrf_token"])


@contextmanager
def running_server(root: Path, env: dict[str, str], *extra: str, port: int | None = None) -> Iterator[Server]:
    """Start `ttsync serve` on a free loopback port; wait for /healthz; stop it afterwards."""
    port = port or free_port()
    log = root / f"server-{port}.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "ttsync", "serve", "-w", str(root), "--port", str(port), *extra],
            env=env, stdout=out, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
    server = Server(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise AssertionError(f"server exited: {log.read_text()}")
            try:
                if httpx.get(server.url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"server did not start: {log.read_text()}")
            time.sleep(0.2)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def server_environ(base: dict[str, str]) -> dict[str, str]:
    """The test process's environment plus `base` (the emulator's URL and secrets)."""
    environ = dict(os.environ)
    environ.update(base)
    environ.pop("TTSYNC_STORE_URL", None)
    environ["ADMIN_PASSWORD"] = ADMIN_PASSWORD
    return environ


def add_admin(root: Path, environ: dict[str, str]) -> None:
    """`ttsync users add admin --role admin` in a real process: a server never starts without an admin."""
    ttsync(
        "users",
        "add",
        "admin",
        "--role",
        "admin",
        "--password-env",
        "ADMIN_PASSWORD",
        "-w",
        str(root),
        env=environ,
    )
