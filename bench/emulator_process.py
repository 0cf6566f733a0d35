"""`ttsync emulator serve` in its own process for the benchmarks (so it gets its own core and GIL)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import psutil


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def emulator_process(startup_seconds: float | None = None) -> Iterator[tuple[dict[str, Any], psutil.Process]]:
    """Run the emulator with the demo seed on a free loopback port; yield (seed JSON + `root_url`, process).

    `startup_seconds` bounds the wait for it to answer (default: $TTSYNC_BENCH_STARTUP_SECONDS, else 30; the
    CI smoke starts every bench at once on a small machine and allows more). The process is always stopped
    (SIGINT, then kill) when the block ends.
    """
    if startup_seconds is None:
        startup_seconds = float(os.environ.get("TTSYNC_BENCH_STARTUP_SECONDS", "30"))
    with tempfile.TemporaryDirectory() as tmp:
        seed_file = Path(tmp) / "seed.json"
        port = _free_port()
        cmd = [
            sys.executable,
            "-m",
            "ttsync",
            "emulator",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        cmd += ["--seed", "demo", "--seed-out", str(seed_file)]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + startup_seconds
            root = f"http://127.0.0.1:{port}"
            while True:
                if proc.poll() is not None:
                    err = proc.stderr.read().decode() if proc.stderr else ""
                    raise RuntimeError(f"emulator exited early: {err[-2000:]}")
                if seed_file.exists():
                    with contextlib.suppress(httpx2.TransportError, ValueError, KeyError):
                        auth = {"Authorization": f"Bearer {json.loads(seed_file.read_text())['admin_token']}"}
                        if httpx2.get(f"{root}/_emulator/seed", headers=auth, timeout=1.0).status_code == 200:
                            break
                if time.monotonic() > deadline:
                    raise RuntimeError("emulator did not start in time")
                time.sleep(0.1)
            seed = json.loads(seed_file.read_text())
            seed["root_url"] = root
            yield seed, psutil.Process(proc.pid)
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
