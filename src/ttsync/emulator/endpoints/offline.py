"""Offline event sets: offline/create/ and offline/get/ (ref §3.5)."""

from __future__ import annotations

from ttsync.emulator.clock import format_time
from ttsync.emulator.endpoints.common import Ctx, JsonDict, advertiser_access, endpoint
from ttsync.emulator.model import EventSet
from ttsync.emulator.validate import opt_bool, opt_str, query_list, req_str


def event_set_json(es: EventSet) -> JsonDict:
    """One item of ``event_set_list``."""
    return {
        "event_set_id": es.event_set_id,
        "advertiser_id": es.advertiser_id,
        "name": es.name,
        "description": es.description,
        "auto_tracking": es.auto_tracking,
        "create_time": format_time(es.created_at),
        "update_time": format_time(es.updated_at),
    }


@endpoint("offline/create/", "POST")
def offline_create(ctx: Ctx) -> JsonDict:
    """Create an offline event set on an advertiser."""
    p = ctx.params
    adv = advertiser_access(ctx, req_str(p, "advertiser_id"), write=True)
    es = EventSet(
        event_set_id=ctx.state.ids.numeric(),
        advertiser_id=adv.advertiser_id,
        name=req_str(p, "name"),
        # Required (official SDK yml_files/offline_create.yml, OfflineCreateBody.md; ref §9).
        description=req_str(p, "description"),
        auto_tracking=opt_bool(p, "auto_tracking", False),
        created_at=ctx.now,
        updated_at=ctx.now,
    )
    ctx.state.event_sets[es.event_set_id] = es
    ctx.state.touch()
    return {"event_set_id": es.event_set_id}


@endpoint("offline/get/", "GET")
def offline_get(ctx: Ctx) -> JsonDict:
    """Event sets of an advertiser, filtered by ``event_set_ids`` (JSON array) or ``name``."""
    p = ctx.params
    adv = advertiser_access(ctx, req_str(p, "advertiser_id"), write=False)
    wanted = query_list(p, "event_set_ids", 1, 100, required=False)
    name = opt_str(p, "name")
    rows = [
        event_set_json(es)
        for es in ctx.state.event_sets.values()
        if es.advertiser_id == adv.advertiser_id
        and es.kind in ("offline", "crm")
        and (wanted is None or es.event_set_id in wanted)
        and (name is None or es.name == name)
    ]
    return {"event_set_list": rows}
