"""HTTP clients of `api_load.py`, in a module of their own: each client process imports only this (and orjson),
not the workspace and emulator code the benchmark's main process needs.

The clients must cost the machine little next to the server they measure (both share 2 cores): each process
runs its clients as coroutines on one uvloop event loop, each client on one keep-alive
connection of raw asyncio streams, sending request bytes built once. A client alternately lists workflows
(50 per page) and reads one. Every answer is checked: status 200, a complete body by Content-Length, and a body
that parses as the page (a list of workflows) or the workflow asked for.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import urlsplit

import orjson
import uvloop  # a dependency of the server (POSIX), and a cheaper event loop for the clients too

PAGE = 50


def _requests(host: str, port: int, token: str, workflow_id: str) -> tuple[bytes, bytes]:
    head = f"Host: {host}:{port}\r\nAuthorization: Bearer {token}\r\nAccept: application/json\r\n\r\n"
    listing = f"GET /api/workflows?limit={PAGE} HTTP/1.1\r\n{head}".encode()
    one = f"GET /api/workflows/{workflow_id} HTTP/1.1\r\n{head}".encode()
    return listing, one


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bytes]:
    """Send one request on the connection; read the status and the body (by Content-Length)."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length)


def _problem(status: int, body: bytes, listing: bool, workflow_id: str) -> str | None:
    """What is wrong with an answer (None when it is a good one)."""
    if status != 200:
        return str(status)
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "bad_json"
    if listing:
        good = isinstance(value, list) and 0 < len(value) <= PAGE and all("id" in item for item in value)
    else:
        good = isinstance(value, dict) and value.get("workflow", {}).get("id") == workflow_id
    return None if good else "bad_body"


async def _client(
    url: str, token: str, workflow_id: str, until: float, rate: float | None, out: dict[str, Any]
) -> None:
    """One client on one connection until `until`: closed loop (next request when the answer came) or, with
    `rate`, open loop (requests due every 1/rate s; latency counted from when each was due)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    requests = _requests(host, port, token, workflow_id)
    latencies: list[float] = out["latencies"]
    errors: list[str] = out["errors"]
    reader, writer = await asyncio.open_connection(host, port)
    turn = 0
    due = time.perf_counter()
    try:
        while True:
            if rate is not None:
                due += 1.0 / rate
                wait = due - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
            began = due if rate is not None else time.perf_counter()
            if time.monotonic() >= until:
                return
            listing = turn % 2 == 0
            turn += 1
            try:
                status, body = await _exchange(reader, writer, requests[0 if listing else 1])
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                latencies.append(time.perf_counter() - began)
                errors.append(type(exc).__name__)
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
                continue
            latencies.append(time.perf_counter() - began)
            problem = _problem(status, body, listing, workflow_id)
            if problem is not None:
                errors.append(problem)
    finally:
        writer.close()


async def _clients(
    url: str, token: str, workflow_id: str, seconds: float, clients: int, rate: float | None
) -> dict[str, Any]:
    out: dict[str, Any] = {"latencies": [], "errors": []}
    until = time.monotonic() + seconds
    await asyncio.gather(*(_client(url, token, workflow_id, until, rate, out) for _ in range(clients)))
    return out


def client_process(
    url: str,
    token: str,
    workflow_id: str,
    seconds: float,
    clients: int,
    go: Any,
    out: Any,
    rate: float | None = None,
) -> None:
    """`clients` clients in one process: report ready on `out`, wait for `go`, run `seconds`, then put
    (latencies, errors, CPU seconds this process spent) on `out`."""
    out.put("ready")
    go.wait()
    cpu = time.process_time()
    result = uvloop.run(_clients(url, token, workflow_id, seconds, clients, rate))
    out.put((result["latencies"], result["errors"], time.process_time() - cpu))
