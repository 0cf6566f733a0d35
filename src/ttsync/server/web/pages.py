"""The web UI's routes: one router per page group, all under /ui.

Each page authenticates like the API (session cookie; the CSRF token of the session on every post, from the
form), checks the role and the destination access rules with the API's own helpers, and calls the app
layer: no business rule lives in a page, only what to show. Shared machinery is in `core`."""

from __future__ import annotations

from fastapi import APIRouter

from ttsync.server.web import (
    admin,
    campaigns,
    credentials,
    data_templates,
    destinations,
    insights,
    runs,
    session,
)

GROUPS = (session, runs, destinations, credentials, data_templates, campaigns, insights, admin)

router = APIRouter()
for _group in GROUPS:
    router.include_router(_group.router)
