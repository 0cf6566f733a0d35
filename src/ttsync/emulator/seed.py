"""Seeds: the demo world (`--seed demo`) and an empty one.

The demo seed is deterministic: the same IDs, secret and tokens on every machine and every run, so docs and
quickstarts can show them. The seed info has exactly the keys of the ``--seed-out`` file minus ``base_url``
(which depends on where the server listens).
"""

from __future__ import annotations

import secrets
from typing import Any

from ttsync.emulator.clock import Clock
from ttsync.emulator.endpoints.oauth import issue_token
from ttsync.emulator.model import Advertiser, App, BusinessCenter, EventSet, State, User

SEEDS = ("demo", "empty")


def build_state(seed: str = "demo", clock: Clock | None = None, *, deterministic_ids: bool = False) -> State:
    """A fresh State for a named seed.

    The seed's own objects (app, advertisers, users, tokens, event set) are the same on every run. Ids made
    afterwards (audiences, uploads, new tokens) continue from a random salt unless ``deterministic_ids``:
    an emulator restarted without ``--state`` must not hand out an audience id it gave before, or a workspace
    that stored the old id would write into whichever new audience got it.
    """
    if seed not in SEEDS:
        raise ValueError(f"unknown seed {seed!r}; choose one of {', '.join(SEEDS)}")
    state = State(id_seed=seed, clock=clock or Clock())
    if seed == "demo":
        _demo(state)
    if not deterministic_ids:
        state.ids.seed = f"{seed}:{secrets.token_hex(8)}"
    return state


def _demo(state: State) -> None:
    now = state.clock.now()
    ids = state.ids
    app = App(app_id=ids.numeric(), secret=ids.hex_token(), name="ttsync demo app", tier="basic")
    state.apps[app.app_id] = app
    bc = BusinessCenter(bc_id=ids.numeric(), name="Demo Business Center")
    state.bcs[bc.bc_id] = bc
    advertisers = [
        Advertiser(advertiser_id=ids.numeric(), name=f"Demo Advertiser {n}", bc_id=bc.bc_id) for n in (1, 2)
    ]
    for adv in advertisers:
        state.advertisers[adv.advertiser_id] = adv
    adv_ids = [a.advertiser_id for a in advertisers]
    users = {
        role: User(user_id=ids.numeric(), name=f"demo-{role.lower()}", roles=dict.fromkeys(adv_ids, role))
        for role in ("Admin", "Operator", "Analyst")
    }
    for user in users.values():
        state.users[user.user_id] = user
    operator = issue_token(state, app.app_id, users["Operator"].user_id, adv_ids, now, None)
    analyst = issue_token(state, app.app_id, users["Analyst"].user_id, adv_ids, now, None)
    event_set = EventSet(
        event_set_id=ids.numeric(),
        advertiser_id=adv_ids[0],
        name="Demo offline events",
        description="Created by the demo seed",
        created_at=now,
        updated_at=now,
    )
    state.event_sets[event_set.event_set_id] = event_set
    info: dict[str, Any] = {
        "app_id": app.app_id,
        "app_secret": app.secret,
        "business_center_id": bc.bc_id,
        "advertiser_ids": adv_ids,
        "operator_token": operator.token,
        "analyst_token": analyst.token,
        "event_set_id": event_set.event_set_id,
    }
    state.seed_info = info
