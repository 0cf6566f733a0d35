"""Load of the team server's API: N concurrent clients listing workflows and reading one, against a real
`ttsync serve` whose store holds many workflows and notifications, while a sync runs in a worker process.

    .venv/bin/python bench/api_load.py                       # 10,000 workflows, 1,000 notifications, 50 clients
    .venv/bin/python bench/api_load.py --workflows 1000 --clients 10 --seconds 5 --no-run

The clients are coroutines on raw keep-alive connections (bench/load_clients.py), cheap next to the server
they measure; each answer is checked (status, body). The headline is the closed loop: every client sends its
next request as soon as its answer came. `--open-rate R` adds an open-loop phase (each client sends R requests
per second whatever the answers do; latency counted from when a request was due). Prints one JSON document:
requests, errors, latency p50/p95/p99/max in ms, requests per second, and the CPU per request of the HTTP
processes and of the clients.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2 as httpx
import psutil
import sqlalchemy as sa

from load_clients import client_process
from ttsync.app.workspace.apply import apply_config
from ttsync.app.workspace.init import init_workspace
from ttsync.app.workspace.layout import load_config
from ttsync.emulator.embedded import EmulatorServer
from ttsync.store import schema

PASSWORD = "bench password 123"


def _fill(store_url_engine: sa.Engine, workflows: int, notifications: int) -> str:
    """Insert finished workflows (with 7 tasks each) and notifications in bulk; return one workflow id."""
    now = datetime.now(UTC)
    rows, tasks = [], []
    for index in range(workflows):
        wid = uuid.uuid4().hex
        at = now - timedelta(minutes=index)
        rows.append({"id": wid, "orchestration": f"bench-{index % 20}", "kind": "audience", "state": "succeeded",
                     "created_at": at, "started_at": at, "finished_at": at, "counts": {"upload": {"added": index}},
                     "checkpoint": {}, "error": None})  # fmt: skip
        for position, name in enumerate(
            ("query", "prepare", "verify_audience", "plan", "upload", "commit", "read_back")
        ):
            tasks.append({"workflow_id": wid, "name": name, "position": position, "state": "succeeded", "attempts": 1,
                          "started_at": at, "finished_at": at, "counts": {}, "checkpoint": {}, "error": None})  # fmt: skip
    alerts = [{"workflow_id": rows[i % workflows]["id"], "created_at": now, "severity": "error", "title": "bench",
               "message": "bench", "resolution": "rate_limited", "read": False, "webhook_attempts": 0}
              for i in range(notifications)]  # fmt: skip
    with store_url_engine.begin() as conn:
        conn.execute(sa.insert(schema.workflows), rows)
        conn.execute(sa.insert(schema.tasks), tasks)
        conn.execute(sa.insert(schema.notifications), alerts)
    return str(rows[workflows // 2]["id"])


def _api_processes(server_pid: int, port: int) -> list[psutil.Process]:
    """The processes that serve HTTP: those listening on the port (the server itself, or its uvicorn workers
    with `--http-workers`), not the run workers."""
    server = psutil.Process(server_pid)
    listening = [
        process
        for process in [server, *server.children(recursive=True)]
        if any(
            c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN
            for c in process.net_connections()
        )
    ]
    return [p for p in listening if p.pid != server_pid] or listening


def _cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        times = process.cpu_times()
        total += times.user + times.system
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workflows", type=int, default=10_000)
    parser.add_argument("--notifications", type=int, default=1_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rows", type=int, default=200_000, help="people in the sync that runs meanwhile")
    parser.add_argument("--no-run", action="store_true", help="no sync in progress during the load")
    parser.add_argument(
        "--client-processes", type=int, default=1, help="processes the clients are spread over"
    )
    parser.add_argument(
        "--open-rate", type=float, default=0.0,
        help="also run an open-loop phase: each client sends this many requests per second (0: none)",
    )  # fmt: skip
    parser.add_argument("--http-workers", type=int, default=1, help="`ttsync serve --http-workers`")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ttsync-api-load-") as tmp, EmulatorServer() as emulator:
        seed = emulator.seed
        environ = dict(os.environ) | {
            "TTSYNC_APP_SECRET": seed.app_secret, "TTSYNC_ACCESS_TOKEN": seed.operator_token,
            "TTSYNC_SANDBOX_URL": emulator.base_url, "BENCH_PASSWORD": PASSWORD,
        }  # fmt: skip
        environ.pop("TTSYNC_STORE_URL", None)
        os.environ.update(environ)  # `apply` reads the credential's secrets from the environment
        root = Path(tmp) / "ws"
        workspace = init_workspace(root, sample=True, rows=args.rows, seed_info=seed.to_dict()).workspace
        store = workspace.open_store()
        apply_config(store, load_config(workspace.config_path, environ=environ))
        workflow_id = _fill(store.engine, args.workflows, args.notifications)
        store.close()
        ttsync = [sys.executable, "-m", "ttsync"]
        subprocess.run([*ttsync, "users", "add", "bench", "--role", "admin", "--password-env", "BENCH_PASSWORD",
                        "-w", str(root)], env=environ, check=True, capture_output=True)  # fmt: skip
        port = 8700 + os.getpid() % 1000
        server = subprocess.Popen([*ttsync, "serve", "-w", str(root), "--port", str(port), "--workers", "1",
                                   "--http-workers", str(args.http_workers)],
                                  env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            with httpx.Client(base_url=url, timeout=30) as client:
                login = client.post("/api/session", json={"name": "bench", "password": PASSWORD}).json()
                token = client.post(
                    "/api/tokens", json={"label": "bench"}, headers={"X-CSRF-Token": login["csrf_token"]}
                ).json()["token"]
                run_state: dict[str, Any] = {}
                if not args.no_run:
                    emulator.admin.set_faults(rate=0.0, codes=[50002], latency_ms=50)  # keep the sync going
                    started = client.post(
                        "/api/orchestrations/high-value-customers/runs",
                        headers={"Authorization": f"Bearer {token}"},
                    ).json()
                    run_state["workflow_id"] = started["workflow_id"]
                    time.sleep(1.0)
            api = _api_processes(server.pid, port)
            closed = _load(args, url, token, workflow_id, api, rate=None)
            opened = (
                _load(args, url, token, workflow_id, api, rate=args.open_rate) if args.open_rate else None
            )
            if run_state:
                shown = httpx.get(
                    f"{url}/api/workflows/{run_state['workflow_id']}",
                    headers={"Authorization": f"Bearer {token}"},
                ).json()
                run_state["state_after_load"] = shown["workflow"]["state"]
                run_state["error"] = (shown["workflow"].get("error") or {}).get("message")
                run_state["tasks"] = {t["name"]: t["state"] for t in shown["workflow"]["tasks"]}
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(json.dumps({
        "workflows": args.workflows, "notifications": args.notifications, "clients": args.clients,
        "seconds": args.seconds, "http_workers": args.http_workers, **closed,
        "open_loop": opened, "sync_in_progress": run_state or None,
        "api_processes": len(api), "load_average_1m": round(os.getloadavg()[0], 1),
    }, indent=2))  # fmt: skip


def _load(
    args: argparse.Namespace,
    url: str,
    token: str,
    workflow_id: str,
    api: list[psutil.Process],
    rate: float | None,
) -> dict[str, Any]:
    """One load phase: `args.clients` clients for `args.seconds`, closed loop, or open loop at `rate` requests
    per second per client. Returns the latency percentiles, errors, and CPU per request of both sides."""
    latencies: list[float] = []
    errors: list[str] = []
    client_cpu = 0.0
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    go = context.Event()
    share = [args.clients // args.client_processes + (i < args.clients % args.client_processes)
             for i in range(args.client_processes)]  # fmt: skip
    processes = [context.Process(target=client_process,
                                 args=(url, token, workflow_id, args.seconds, n, go, results, rate))
                 for n in share if n]  # fmt: skip
    for process in processes:
        process.start()
    for _ in processes:
        assert results.get(timeout=120) == "ready"
    cpu_before = _cpu_seconds(api)
    go.set()  # every client starts at the same moment
    for _ in processes:
        got, failed, cpu = results.get(timeout=args.seconds + 120)
        latencies.extend(got)
        errors.extend(failed)
        client_cpu += cpu
    api_cpu = _cpu_seconds(api) - cpu_before
    for process in processes:
        process.join(timeout=30)
    ordered = sorted(latencies) or [0.0]
    requests = len(latencies)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000, 1)

    return {
        "mode": "closed_loop" if rate is None else f"open_loop_{rate:g}_per_s_per_client",
        "requests": requests, "errors": len(errors), "error_kinds": sorted(set(errors)),
        "requests_per_second": round(requests / args.seconds, 1),
        "p50_ms": pct(0.50), "p95_ms": pct(0.95), "p99_ms": pct(0.99), "max_ms": round(ordered[-1] * 1000, 1),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 1),
        # CPU the API spent (the HTTP processes, not the run worker) per request: what bounds the throughput;
        # and what the load generator spent, which the server did not have.
        "api_cpu_ms_per_request": round(api_cpu * 1000 / max(1, requests), 3),
        "client_cpu_ms_per_request": round(client_cpu * 1000 / max(1, requests), 3),
    }  # fmt: skip


if __name__ == "__main__":
    main()
