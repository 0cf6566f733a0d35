"""HTTP clients of `api_load.py`, in a module of their own: each client process imports only this (and
httpx), not the workspace and emulator code the benchmark's main process needs."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx2 as httpx


def client(
    url: str, token: str, workflow_id: str, until: float, latencies: list[float], errors: list[str]
) -> None:
    """One client: alternately list workflows (50 per page) and read one, as fast as answers come."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as session:
        turn = 0
        while time.monotonic() < until:
            path = "/api/workflows?limit=50" if turn % 2 == 0 else f"/api/workflows/{workflow_id}"
            turn += 1
            began = time.perf_counter()
            try:
                answer = session.get(path)
                ok = answer.status_code == 200
            except httpx.HTTPError as exc:
                ok, answer = False, None
                errors.append(type(exc).__name__)
            latencies.append(time.perf_counter() - began)
            if not ok and answer is not None:
                errors.append(str(answer.status_code))


def client_process(
    url: str, token: str, workflow_id: str, seconds: float, threads: int, go: Any, out: Any
) -> None:
    """`threads` clients in one process: report ready on `out`, wait for `go`, run `seconds`, then put
    (latencies, errors) on `out`."""
    latencies: list[float] = []
    errors: list[str] = []
    out.put("ready")
    go.wait()
    until = time.monotonic() + seconds
    workers = [threading.Thread(target=client, args=(url, token, workflow_id, until, latencies, errors))
               for _ in range(threads)]  # fmt: skip
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    out.put((latencies, errors))
