"""Audiences (TikTok size and match rate over time, the last sync's changes, retention) and offline events
(accepted and rejected by reason per day, the ledger's totals), charted as server-side SVG."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

from fastapi import Depends, Query, Request
from fastapi.responses import HTMLResponse

from ttsync.app import queries
from ttsync.errors import NotFoundError
from ttsync.server import access
from ttsync.server.auth import store_of
from ttsync.server.web.charts import ACCEPTED, PALETTE, Series, line_chart, stacked_bars
from ttsync.server.web.core import NAME, Viewer, page_router, render, signed_in
from ttsync.store import repos

router = page_router()
HISTORY = 200  # runs charted on an audience's page


@router.get("/audiences")
def audiences(request: Request, viewer: Viewer = Depends(signed_in)) -> HTMLResponse:
    """The TikTok audiences this workspace keeps, with their last known size."""
    store = store_of(request)
    hidden = set(access.hidden_orchestrations(store, viewer.user))
    destinations = {d.name: d for d in repos.list_destinations(store)}
    rows = [
        s
        for s in repos.list_audience_states(store)
        if s.orchestration not in hidden and access.visible(viewer.user, destinations[s.destination])
    ]
    return render(request, "audiences.html", viewer=viewer, rows=rows)


@router.get("/audiences/{name}")
def audience(request: Request, name: str = NAME, viewer: Viewer = Depends(signed_in)) -> HTMLResponse:
    """An audience's runs, by orchestration or TikTok audience id (a campaign's audiences have only the
    latter): size and match rate over time, the last sync, retention."""
    store = store_of(request)
    hidden = access.hidden_orchestrations(store, viewer.user)
    # A stored orchestration's audience reads by orchestration (its newest runs only); a campaign's by id.
    owner = {s.audience_id: s.orchestration for s in repos.list_audience_states(store)}.get(name)
    if owner is not None and any(o.name == owner for o in repos.list_orchestrations(store)):
        name = owner
    points = queries.audience_history(store, name, limit=HISTORY, exclude_orchestrations=hidden)
    orchestration = points[0].orchestration if points else name
    timeline = list(reversed(points))  # oldest first, as the charts draw them
    by_audience: dict[str, list[queries.AudiencePoint]] = {}
    for p in timeline:
        by_audience.setdefault(p.audience_id or "?", []).append(p)
    sizes, rates = [], []
    for i, (audience_id, items) in enumerate(by_audience.items()):
        colour = PALETTE[i % len(PALETTE)]
        sizes.append(Series(audience_id, colour, [(p.time, p.size) for p in items if p.size is not None]))
        rates.append(
            Series(audience_id, colour, [(p.time, p.match_rate) for p in items if p.match_rate is not None])
        )
    kept = [s for s in repos.list_audience_states(store) if s.orchestration == orchestration]
    destination = repos.get_destination(store, kept[0].destination) if kept else None
    if destination is not None and not access.visible(viewer.user, destination):
        raise NotFoundError("audience", name)
    retention = getattr(destination.settings, "retention_days", None) if destination else None
    return render(
        request,
        "audience.html",
        viewer=viewer,
        orchestration=orchestration,
        points=points,
        last=next((p for p in points if p.state.startswith("succeeded")), None),
        size_chart=line_chart(f"TikTok size of {orchestration} over time", sizes),
        rate_chart=line_chart(f"Match rate of {orchestration} over time", rates, "{:.0%}".format, top=1.0),
        legend=[(s.label, s.colour) for s in sizes],
        retention=retention,
    )


@router.get("/events")
def events(
    request: Request,
    viewer: Viewer = Depends(signed_in),
    destination: str = Query(default="", max_length=80),
    days: int = Query(default=30, ge=1, le=366),
) -> HTMLResponse:
    """Offline events accepted and rejected by reason per day (one chart), and the ledger's totals."""
    store = store_of(request)
    hidden = access.hidden_orchestrations(store, viewer.user)
    rows = queries.events_per_day(
        store, destination=destination or None, days=days, exclude_orchestrations=hidden
    )
    today = datetime.now(UTC).date()
    span = [today - timedelta(days=days - 1 - i) for i in range(days)]
    stacks = [("accepted", ACCEPTED, _daily(span, rows, lambda r: r.accepted))]
    reasons = sorted({reason for r in rows for reason in r.rejected})
    for i, reason in enumerate(reasons):
        values = _daily(span, rows, lambda r, reason=reason: r.rejected.get(reason, 0))  # type: ignore[misc]
        stacks.append((f"rejected: {reason}", PALETTE[(i + 1) % len(PALETTE)], values))
    visible = [
        d.name
        for d in repos.list_destinations(store)
        if d.kind == "offline_events" and access.visible(viewer.user, d)
    ]
    return render(
        request,
        "events.html",
        viewer=viewer,
        rows=rows,
        chart=stacked_bars(f"Offline events per day, last {days} days", span, stacks),
        legend=[(label, colour) for label, colour, _ in stacks],
        destinations=visible,
        destination=destination,
        days=days,
        ledger=queries.ledger_totals(request.app.state.workspace.state_dir),
    )


def _daily(
    span: list[date], rows: list[queries.EventDay], value: Callable[[queries.EventDay], int]
) -> list[int]:
    """`value` of the rows summed per day of `span` (several destinations on one day add up)."""
    totals: dict[date, int] = {}
    for row in rows:
        totals[row.day] = totals.get(row.day, 0) + value(row)
    return [totals.get(day, 0) for day in span]
