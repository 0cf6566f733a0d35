"""Notification webhooks: POST a Slack-compatible message for a notification, with bounded retries.

Where the URL comes from: the environment variable `TTSYNC_WEBHOOK_URL`. A Slack incoming-webhook URL is a
secret (anyone holding it can post to the channel), so it is not written in `ttsync.yaml` nor stored; the URL
is never printed or logged, and errors name only its host.

Delivery state is recorded on the notification: `webhook_state` is `sending` while attempts run, then
`delivered` or `failed`; `webhook_attempts` counts every HTTP attempt. Retried: connection errors, timeouts,
HTTP 429 and 5xx. Not retried: other 4xx (a wrong or revoked URL will not heal by retrying).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Final
from urllib.parse import urlsplit

import httpx2
import stamina

from ttsync.destinations.tiktok.client.retrylog import retrying
from ttsync.redact import install_log_redaction, redact_text
from ttsync.store import Store, repos
from ttsync.store.records import NotificationRecord
from ttsync.workflows.resolutions import resolution_for

WEBHOOK_URL_ENV: Final = "TTSYNC_WEBHOOK_URL"
DEFAULT_ATTEMPTS: Final = 4
DEFAULT_TIMEOUT: Final = 10.0
_HEADER_MAX: Final = 150  # Slack's limit for a header block's text

log = logging.getLogger(__name__)
install_log_redaction(__name__)


class WebhookError(Exception):
    """A webhook answered with a status worth retrying (429 or 5xx)."""


def webhook_url_from_env() -> str | None:
    """`$TTSYNC_WEBHOOK_URL`, or None when notifications are not posted anywhere."""
    value = os.environ.get(WEBHOOK_URL_ENV, "").strip()
    return value or None


def _host(url: str) -> str:
    return urlsplit(url).hostname or "?"


def build_payload(notification: NotificationRecord) -> dict[str, Any]:
    """The Slack-compatible message: `text` (fallback and non-Slack receivers) and `blocks`."""
    resolution = resolution_for(notification.resolution) if notification.resolution else None
    workflow = notification.workflow_id
    # Stored messages are redacted when a workflow fails; redact again in case a notification was written by
    # another path (e-mail addresses only: ids of advertisers and audiences must stay readable).
    title, message = (
        redact_text(notification.title, digits=False),
        redact_text(notification.message, digits=False),
    )
    # Only a failed workflow is continued; a warning's resolution explains, it has nothing to continue.
    failed = notification.severity == "error"
    command = (
        f"ttsync workflows {resolution.action.value} {workflow}"
        if resolution and workflow and failed
        else None
    )
    lines = [f"[ttsync] {title}", message]
    if command:
        lines.append(f"Continue with: {command}")
    fields = [{"type": "mrkdwn", "text": f"*Severity*\n{notification.severity}"}]
    if workflow:
        fields.append({"type": "mrkdwn", "text": f"*Workflow*\n`{workflow}`"})
    if resolution:
        fields.append({"type": "mrkdwn", "text": f"*Resolution*\n{resolution.title}"})
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:_HEADER_MAX]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": message}},
        {"type": "section", "fields": fields},
    ]
    if command:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"Continue with `{command}`"}})
    data: dict[str, Any] = {"text": "\n".join(lines), "blocks": blocks}
    return data


def deliver_webhook(
    store: Store,
    notification: NotificationRecord,
    url: str,
    *,
    attempts: int = DEFAULT_ATTEMPTS,
    timeout: float = DEFAULT_TIMEOUT,
    wait_initial: float = 0.5,
    wait_max: float = 5.0,
    transport: httpx2.BaseTransport | None = None,
) -> bool:
    """POST `notification` to `url`; True when delivered. Never raises for delivery failures.

    Up to `attempts` HTTP attempts with exponential backoff (stamina), each bounded by `timeout` seconds;
    `webhook_state` / `webhook_attempts` on the notification record the outcome.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    payload = build_payload(notification)
    repos.update_notification(store, notification.id, webhook_state="sending")
    host = _host(url)
    try:
        with (
            httpx2.Client(timeout=timeout, transport=transport, follow_redirects=False) as http,
            retrying(f"webhook at {host}", attempts),  # names the retries in the readable retry lines
        ):
            for attempt in stamina.retry_context(
                on=(httpx2.TransportError, WebhookError),
                attempts=attempts,
                timeout=None,
                wait_initial=wait_initial,
                wait_max=wait_max,
                wait_jitter=min(wait_initial, 1.0),
            ):
                with attempt:
                    repos.update_notification(store, notification.id, add_webhook_attempt=True)
                    response = http.post(url, json=payload)
                    if response.status_code == 429 or response.status_code >= 500:
                        raise WebhookError(f"HTTP {response.status_code}")
                    if response.status_code >= 400:
                        log.warning(
                            "webhook at %s refused notification %s with HTTP %s; not retried",
                            host,
                            notification.id,
                            response.status_code,
                        )
                        repos.update_notification(store, notification.id, webhook_state="failed")
                        return False
    except (httpx2.TransportError, WebhookError) as exc:
        log.warning("webhook at %s failed for notification %s: %s", host, notification.id, type(exc).__name__)
        repos.update_notification(store, notification.id, webhook_state="failed")
        return False
    repos.update_notification(store, notification.id, webhook_state="delivered")
    return True


def deliver_pending(
    store: Store,
    url: str | None = None,
    *,
    attempts: int = DEFAULT_ATTEMPTS,
    timeout: float = DEFAULT_TIMEOUT,
    include_failed: bool = False,
) -> dict[str, int]:
    """Deliver every notification not yet posted (and, with `include_failed`, retry failed ones).

    `url` defaults to `$TTSYNC_WEBHOOK_URL`; without one nothing is sent. Returns counts by outcome.
    """
    target = url or webhook_url_from_env()
    counts = {"delivered": 0, "failed": 0}
    if target is None:
        return counts
    wanted = {None, "failed"} if include_failed else {None}
    for notification in reversed(repos.list_notifications(store, limit=1000)):
        if notification.webhook_state in wanted:
            ok = deliver_webhook(store, notification, target, attempts=attempts, timeout=timeout)
            counts["delivered" if ok else "failed"] += 1
    return counts
