"""Notification delivery beyond the store: Slack-compatible webhooks (`TTSYNC_WEBHOOK_URL`)."""

from ttsync.notify.webhook import (
    WEBHOOK_URL_ENV,
    build_payload,
    deliver_pending,
    deliver_webhook,
    webhook_url_from_env,
)

__all__ = ["WEBHOOK_URL_ENV", "build_payload", "deliver_pending", "deliver_webhook", "webhook_url_from_env"]
