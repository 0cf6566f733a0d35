"""Render time of the web UI's main pages over a store holding many workflows (the issue's target: p95 <= 150
ms with 10,000 workflows). The real app in process (FastAPI's TestClient: no network, no worker processes),
the sample workspace, and workflows inserted in bulk with the task counts real runs store (audience sizes,
event deliveries), spread over a year (`--days`) and 20 orchestrations.

    .venv/bin/python bench/ui_render.py                  # 10,000 workflows over a year, 40 renders per page
    .venv/bin/python bench/ui_render.py --days 30        # the same 10,000 in the events page's 30-day window
    .venv/bin/python bench/ui_render.py --workflows 1000 --renders 10

Prints one JSON document: per page, p50 / p95 / max in ms and the page size; and the slowest page's p95.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from ttsync.app import accounts
from ttsync.app.workspace.apply import apply_config
from ttsync.app.workspace.init import init_workspace
from ttsync.app.workspace.layout import load_config
from ttsync.server.app import ServerConfig, create_app
from ttsync.store import repos, schema
from ttsync.store.db import Store

PASSWORD = "bench password 123"
AUDIENCE, EVENTS = "high-value-customers", "store-purchases-last-7-days"
AUDIENCE_TASKS = ("query", "prepare", "verify_audience", "plan", "upload", "commit", "read_back")
EVENT_TASKS = ("query", "prepare", "deliver")


def _fill(store: Store, workflows: int, notifications: int, days: int) -> tuple[str, str, str]:
    """20 orchestrations (copies of the sample's two), `workflows` finished workflows over the last `days` days
    with their tasks' counts, and notifications; returns (a workflow id, an audience orchestration, the id
    ending the 100th page of the workflows list)."""
    base = {o.name: o for o in repos.list_orchestrations(store)}
    names = []
    for index in range(20):
        source = base[AUDIENCE if index % 2 == 0 else EVENTS]
        name = f"{source.name}-{index}"
        repos.save_orchestration(store, source.model_copy(update={"name": name}))
        names.append((name, "audience" if index % 2 == 0 else "offline_events"))
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    tasks: list[dict[str, Any]] = []
    for index in range(workflows):
        name, kind = names[index % len(names)]
        wid = uuid.uuid4().hex
        at = now - timedelta(minutes=index * days * 1440 // max(workflows, 1))
        state = "failed" if index % 50 == 7 else "succeeded"
        error = {"resolution": "rate_limited", "message": "bench"} if state == "failed" else None
        rows.append({"id": wid, "orchestration": name, "kind": kind, "state": state, "created_at": at,
                     "started_at": at, "finished_at": at, "counts": {}, "checkpoint": {}, "error": error})  # fmt: skip
        for position, task in enumerate(AUDIENCE_TASKS if kind == "audience" else EVENT_TASKS):
            counts: dict[str, Any] = {}
            if task == "read_back":
                counts = {
                    "audience_id": f"7{index % 20:018d}",
                    "tiktok_size": 5_000 + index,
                    "match_rate": 0.61,
                }
            elif task == "plan":
                counts = {"add_ids": index % 97, "remove_ids": index % 13}
            elif task == "deliver":
                counts = {"sent": 900 + index % 100, "duplicate_skipped": index % 7,
                          "rejected": {"invalid_email_or_phone": index % 11, "missing_timestamp": index % 3}}  # fmt: skip
            tasks.append({"workflow_id": wid, "name": task, "position": position, "state": "succeeded",
                          "attempts": 1, "started_at": at, "finished_at": at, "counts": counts,
                          "checkpoint": {}, "error": None})  # fmt: skip
    alerts = [{"workflow_id": rows[i % workflows]["id"], "created_at": now, "severity": "error", "title": "bench",
               "message": "bench", "resolution": "rate_limited", "read": i % 2 == 0, "webhook_attempts": 0}
              for i in range(notifications)]  # fmt: skip
    with store.engine.begin() as conn:
        conn.execute(sa.insert(schema.workflows), rows)
        conn.execute(sa.insert(schema.tasks), tasks)
        conn.execute(sa.insert(schema.notifications), alerts)
    return str(rows[workflows // 2]["id"]), names[0][0], str(rows[min(4_999, workflows - 1)]["id"])


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    """Fill a store, sign in, render each page `--renders` times; print the JSON report."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workflows", type=int, default=10_000)
    parser.add_argument("--notifications", type=int, default=1_000)
    parser.add_argument("--renders", type=int, default=40)
    parser.add_argument(
        "--days",
        type=int,
        default=365,
        help="spread the workflows over this many days (the events page shows 30)",
    )
    args = parser.parse_args()
    for key, value in {"TTSYNC_APP_SECRET": "bench", "TTSYNC_ACCESS_TOKEN": "bench",
                       "TTSYNC_SANDBOX_URL": "http://127.0.0.1:9/open_api/v1.3/"}.items():  # fmt: skip
        os.environ.setdefault(key, value)
    with tempfile.TemporaryDirectory(prefix="ttsync-ui-bench-") as folder:
        workspace = init_workspace(Path(folder) / "ws", sample=True, rows=300).workspace
        store = workspace.open_store()
        apply_config(store, load_config(workspace.config_path))
        accounts.add_user(store, "admin", PASSWORD, "admin", actor="bench")
        began = time.perf_counter()
        workflow_id, audience, deep = _fill(store, args.workflows, args.notifications, args.days)
        fill_seconds = time.perf_counter() - began
        app = create_app(workspace, store, ServerConfig(), background_work=False)
        pages = ["/ui/orchestrations", f"/ui/orchestrations/{audience}", "/ui/workflows",
                 "/ui/workflows?state=failed", f"/ui/workflows?after={deep}", f"/ui/workflows/{workflow_id}",
                 "/ui/templates", "/ui/campaigns", "/ui/destinations", "/ui/credentials", "/ui/notifications",
                 f"/ui/audiences/{audience}", "/ui/audiences", "/ui/events", "/ui/users", "/ui/audit"]  # fmt: skip
        report: dict[str, Any] = {}
        with TestClient(app, base_url="http://127.0.0.1") as client:
            answer = client.post(
                "/ui/login", data={"name": "admin", "password": PASSWORD}, follow_redirects=False
            )
            assert answer.status_code == 303, answer.text
            for path in pages:
                times = []
                for _ in range(args.renders):
                    start = time.perf_counter()
                    page = client.get(path)
                    times.append((time.perf_counter() - start) * 1000)
                    assert page.status_code == 200, (path, page.status_code, page.text[:300])
                report[path] = {
                    "p50_ms": round(statistics.median(times), 1),
                    "p95_ms": round(_percentile(times, 0.95), 1),
                    "max_ms": round(max(times), 1),
                    "kb": round(len(page.content) / 1024, 1),
                    "rows": len(re.findall(r"<tr", page.text)),
                }
        store.close()
    slowest = max(report, key=lambda p: report[p]["p95_ms"])
    print(json.dumps({"workflows": args.workflows, "days": args.days, "notifications": args.notifications,
                      "renders": args.renders, "load_average": round(os.getloadavg()[0], 1),
                      "fill_seconds": round(fill_seconds, 1), "target_p95_ms": 150,
                      "slowest": {"page": slowest, "p95_ms": report[slowest]["p95_ms"]}, "pages": report},
                     indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
