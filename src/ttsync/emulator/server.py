"""Serving the emulator with uvicorn: in the foreground (CLI) or on a background thread (tests)."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

from ttsync.emulator.app import Emulator


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening socket; port 0 picks a free port (read it back with ``getsockname``)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def make_server(emulator: Emulator) -> uvicorn.Server:
    """A quiet uvicorn server (no access log: request lines could carry IDs users consider private)."""
    config = uvicorn.Config(
        emulator,
        log_level="warning",
        access_log=False,
        lifespan="off",
        http="httptools",
        timeout_keep_alive=30,
        limit_concurrency=None,
        backlog=1024,
    )
    return uvicorn.Server(config)


class BackgroundServer:
    """Runs uvicorn on a daemon thread until :meth:`stop`."""

    def __init__(self, emulator: Emulator, host: str = "127.0.0.1", port: int = 0) -> None:
        self.emulator = emulator
        self.sock = bind_socket(host, port)
        self.host, self.port = self.sock.getsockname()[:2]
        self.server = make_server(emulator)
        self.thread = threading.Thread(target=self._run, name=f"ttsync-emulator-{self.port}", daemon=True)

    def _run(self) -> None:
        self.server.run(sockets=[self.sock])

    def start(self, timeout: float = 10.0) -> None:
        """Start and wait until the server accepts connections."""
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the emulator did not start")
            time.sleep(0.01)

    def stop(self, timeout: float = 10.0) -> None:
        """Ask uvicorn to exit and wait for the thread."""
        self.server.should_exit = True
        self.thread.join(timeout)
        self.sock.close()
        if self.emulator.persistence is not None:
            self.emulator.persistence.close()
