"""Webhook delivery of notifications to a real tiny HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from ttsync.notify import WEBHOOK_URL_ENV, deliver_pending, deliver_webhook
from ttsync.store import Store, repos
from ttsync.store.db import sqlite_url
from ttsync.store.records import NotificationRecord


class Receiver:
    """Answers each POST with the next status of `statuses` (the last one repeats) and keeps the bodies."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.bodies: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                index = min(len(receiver.bodies), len(receiver.statuses)) - 1
                self.send_response(receiver.statuses[index])
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/T000/B000/secret-part"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05})

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.thread.join(timeout=5)
        self.server.server_close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(sqlite_url(tmp_path / "ttsync.db"))
    yield opened
    opened.close()


def _failed(store: Store) -> NotificationRecord:
    return repos.add_notification(
        store,
        workflow_id="wf123",
        severity="error",
        title="high-value: Missing advertiser permissions",
        message="Task 'upload' failed: no permission. See `ttsync workflows show wf123`.",
        resolution="missing_advertiser_permissions",
    )


def _record(store: Store, notification_id: int) -> NotificationRecord:
    return next(n for n in repos.list_notifications(store) if n.id == notification_id)


def test_first_attempt_fails_then_delivered(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    notification = _failed(store)
    with Receiver([500, 200]) as receiver:
        delivered = deliver_webhook(store, notification, receiver.url, attempts=3, wait_initial=0.01)
    assert delivered is True
    record = _record(store, notification.id)
    assert record.webhook_state == "delivered"
    assert record.webhook_attempts == 2
    body = receiver.bodies[-1]
    assert receiver.bodies[0] == body
    assert "wf123" in body["text"]
    assert "Continue with: ttsync workflows resolve wf123" in body["text"]
    blocks = json.dumps(body["blocks"])
    assert "Missing advertiser permissions" in blocks
    assert "ttsync workflows resolve wf123" in blocks
    assert body["blocks"][0]["type"] == "header"
    assert "secret-part" not in caplog.text  # the webhook URL is a secret


def test_retries_are_bounded_then_failed(store: Store) -> None:
    notification = _failed(store)
    with Receiver([503]) as receiver:
        delivered = deliver_webhook(store, notification, receiver.url, attempts=3, wait_initial=0.01)
    assert delivered is False
    assert len(receiver.bodies) == 3
    record = _record(store, notification.id)
    assert (record.webhook_state, record.webhook_attempts) == ("failed", 3)


def test_client_error_is_not_retried(store: Store) -> None:
    notification = _failed(store)
    with Receiver([404]) as receiver:
        assert deliver_webhook(store, notification, receiver.url, attempts=5, wait_initial=0.01) is False
    assert len(receiver.bodies) == 1
    assert _record(store, notification.id).webhook_attempts == 1


def test_unreachable_url_fails_after_attempts(store: Store) -> None:
    notification = _failed(store)
    with Receiver([200]) as receiver:
        url = receiver.url
    # The server is closed now: every attempt is a connection error.
    assert deliver_webhook(store, notification, url, attempts=2, wait_initial=0.01, timeout=2) is False
    record = _record(store, notification.id)
    assert (record.webhook_state, record.webhook_attempts) == ("failed", 2)


def test_deliver_pending_uses_env_and_skips_delivered(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    first = _failed(store)
    with Receiver([200]) as receiver:
        monkeypatch.setenv(WEBHOOK_URL_ENV, receiver.url)
        assert deliver_pending(store) == {"delivered": 1, "failed": 0}
        second = _failed(store)
        assert deliver_pending(store) == {"delivered": 1, "failed": 0}
    assert len(receiver.bodies) == 2
    assert _record(store, first.id).webhook_attempts == 1
    assert _record(store, second.id).webhook_state == "delivered"
    monkeypatch.delenv(WEBHOOK_URL_ENV)
    assert deliver_pending(store) == {"delivered": 0, "failed": 0}
