"""The emulator's world: apps, business centers, advertisers, users, tokens, audiences, event sets, events.

Plain dataclasses mutated only on the server's event-loop thread (so no locks). Member hashes are kept as
raw bytes in one set per id schema: 32 bytes of SHA-256 cost ~80 bytes of Python memory, so 10M members
stay around 1 GB. Everything except member hashes, uploads and received events is "metadata" and is
serialised as one small JSON document by :mod:`ttsync.emulator.persistence`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from ttsync.emulator.clock import Clock
from ttsync.emulator.ids import IdGenerator

Role = Literal["Admin", "Operator", "Analyst"]
ROLES: tuple[str, ...] = ("Admin", "Operator", "Analyst")
WRITE_ROLES = frozenset({"Admin", "Operator"})

# Partner (Segment API) audiences; customer-file audiences made by dmp/custom_audience/create/ (ref §2).
PARTNER = "Partner"
CUSTOMER_FILE = "Customer File Audience"
LOOKALIKE = "Lookalike Audience"  # dmp/custom_audience/lookalike/create/ (ref §2.x)


@dataclass
class App:
    app_id: str
    secret: str = field(repr=False)
    name: str
    tier: str = "basic"
    # None: OAuth tokens are long-lived (Marketing API, ref §4.4). A number: they expire and carry a refresh token.
    token_expires_in: int | None = None


@dataclass
class BusinessCenter:
    bc_id: str
    name: str


@dataclass
class Advertiser:
    advertiser_id: str
    name: str
    bc_id: str
    status: Literal["approved", "unapproved", "deleted"] = "approved"


@dataclass
class User:
    user_id: str
    name: str
    roles: dict[str, str] = field(default_factory=dict)  # advertiser_id -> Role


@dataclass
class Token:
    token: str = field(repr=False)
    app_id: str
    user_id: str
    advertiser_ids: list[str]
    created_at: float
    expires_at: float | None = None
    refresh_token: str | None = field(default=None, repr=False)
    refresh_expires_at: float | None = None
    revoked: bool = False
    scope: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 30, 31, 32])


@dataclass
class AuthCode:
    code: str = field(repr=False)
    app_id: str
    user_id: str
    advertiser_ids: list[str]
    expires_at: float
    used: bool = False


@dataclass
class Audience:
    audience_id: str
    name: str
    owner_id: str
    audience_type: str  # PARTNER, CUSTOMER_FILE or LOOKALIKE
    calculate_type: str
    created_at: float
    ready_at: float  # is_valid becomes true at this emulator time (processing delay)
    expires_at: float
    sub_type: str = "NORMAL"
    retention_in_days: int | None = None
    shared_with: list[str] = field(default_factory=list)
    share_log: list[dict[str, str]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    deleted: bool = False
    # A customer-file audience that ended below 1,000 people lands at size 0 and is not editable (ref §2.5).
    landed_at_zero: bool = False
    lookalike_spec: dict[str, Any] | None = None  # a lookalike audience's spec, as list/get show it
    # id schema -> member hashes. A dict with bytes keys and None values rather than a set: CPython never
    # tracks such a dict for garbage collection, whereas every full collection walks a set entry by entry
    # (0.65 s per collection at 10M members, which halved mapping throughput at that size; measured).
    members: dict[str, dict[bytes, None]] = field(default_factory=dict)

    def members_any(self) -> bool:
        """True when the audience holds at least one identifier."""
        return any(self.members.values())

    def member_count(self) -> int:
        """Distinct identifiers across schemas (the emulator treats every identifier as a matched person)."""
        return sum(len(s) for s in self.members.values())


@dataclass
class Upload:
    file_path: str
    advertiser_id: str
    calculate_type: str
    created_at: float
    rows: int
    members: dict[str, set[bytes]] = field(default_factory=dict)


@dataclass
class EventSet:
    event_set_id: str
    advertiser_id: str
    name: str
    description: str = ""
    auto_tracking: bool = False
    kind: Literal["offline", "crm", "web", "app"] = "offline"
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass
class EventBatch:
    """One accepted event/track/ request, kept as its raw body (compact; parsed again only when inspected)."""

    source_id: str
    event_source: str
    received_at: float
    body: bytes
    accepted: list[int] | None = None  # indexes of data[] kept (not duplicates); None = all
    test_event_code: str | None = None

    def items(self) -> list[Any]:
        """The accepted events, parsed."""
        data = json.loads(self.body)["data"]
        return list(data) if self.accepted is None else [data[i] for i in self.accepted]


@dataclass
class Config:
    processing_delay: float = 0.0  # seconds an audience stays is_valid=false after create/update
    mapping_limit: int = 10_000  # rows per segment/mapping/ request (ref §2.1: no documented limit)
    audience_cap: int = 400  # custom audiences per advertiser (ref §2.5)
    max_stored_events: int = 2_000_000  # beyond this, events are counted and deduplicated but not kept
    dedupe_window: float = 48 * 3600.0  # ref §3.3
    auth_code_ttl: float = 3600.0  # ref §4.2
    # Named behaviour variants in effect (see ttsync.emulator.variants); empty = the best-sourced behaviour.
    variants: list[str] = field(default_factory=list)
    # partner_name values event/track/ accepts under the `partner-name-registered` variant.
    partner_names: list[str] = field(default_factory=list)

    def has(self, variant: str) -> bool:
        """True when the named variant is selected."""
        return variant in self.variants


class Journal(Protocol):
    """Receives every change so persistence can write it incrementally."""

    def meta_changed(self) -> None: ...
    def members_added(self, audience_id: str, schema: str, hashes: list[bytes]) -> None: ...
    def members_removed(self, audience_id: str, schema: str, hashes: list[bytes]) -> None: ...
    def members_cleared(self, audience_id: str) -> None: ...
    def upload_stored(self, upload: Upload) -> None: ...
    def events_stored(self, batch: EventBatch) -> None: ...
    def dedupe_keys(self, keys: list[tuple[bytes, float]]) -> None: ...
    def dedupe_pruned(self, seen_before: float) -> None: ...


@dataclass
class EventStats:
    received: int = 0
    accepted: int = 0
    deduplicated: int = 0
    test: int = 0
    stored: int = 0


class State:
    """Everything the emulator knows. Handlers read and mutate it; the journal mirrors changes to disk."""

    def __init__(self, id_seed: str = "demo", clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self.ids = IdGenerator(id_seed)
        self.config = Config()
        self.apps: dict[str, App] = {}
        self.bcs: dict[str, BusinessCenter] = {}
        self.advertisers: dict[str, Advertiser] = {}
        self.users: dict[str, User] = {}
        self.tokens: dict[str, Token] = {}
        self.refresh_tokens: dict[str, str] = {}  # refresh token -> access token
        self.auth_codes: dict[str, AuthCode] = {}
        self.audiences: dict[str, Audience] = {}
        self.uploads: dict[str, Upload] = {}
        self.event_sets: dict[str, EventSet] = {}
        self.event_batches: dict[str, list[EventBatch]] = {}  # source id -> batches (test ones kept apart)
        self.test_event_batches: dict[str, list[EventBatch]] = {}
        self.event_stats = EventStats()
        self.dedupe: dict[bytes, float] = {}  # blake2b(source, event, event_id) -> first seen
        self.dedupe_pruned_at = float("-inf")
        # (app_id or "*", group) -> {"qps":..., "qpm":..., "qpd":...}; None values mean "no limit".
        self.rate_limits: dict[str, dict[str, int | None]] = {}
        self.seed_info: dict[str, Any] = {}
        self.journal: Journal | None = None

    def prune_dedupe(self, now: float) -> int:
        """Forget dedupe keys older than the window, at most once per 1/48 of it (an hour at 48 hours), so a
        long-running emulator's memory follows the last window of events rather than every event ever."""
        window = self.config.dedupe_window
        if now - self.dedupe_pruned_at < window / 48:
            return 0
        self.dedupe_pruned_at = now
        cutoff = now - window
        before = len(self.dedupe)
        self.dedupe = {key: t for key, t in self.dedupe.items() if t > cutoff}
        if self.journal is not None and len(self.dedupe) < before:
            self.journal.dedupe_pruned(cutoff)
        return before - len(self.dedupe)

    # -- change notification -------------------------------------------------------------------------
    def touch(self) -> None:
        """Mark metadata as changed (persistence debounces the write)."""
        if self.journal is not None:
            self.journal.meta_changed()

    # -- members -------------------------------------------------------------------------------------
    def add_members(self, audience: Audience, schema: str, hashes: list[bytes]) -> None:
        """Add member hashes of one schema to an audience."""
        audience.members.setdefault(schema, {}).update(dict.fromkeys(hashes))
        if self.journal is not None:
            self.journal.members_added(audience.audience_id, schema, hashes)

    def remove_members(self, audience: Audience, schema: str, hashes: list[bytes]) -> None:
        """Remove member hashes of one schema from an audience."""
        target = audience.members.get(schema)
        if target:
            for digest in hashes:
                target.pop(digest, None)
        if self.journal is not None:
            self.journal.members_removed(audience.audience_id, schema, hashes)

    def clear_members(self, audience: Audience) -> None:
        """Drop every member of an audience (REPLACE, delete)."""
        audience.members = {}
        if self.journal is not None:
            self.journal.members_cleared(audience.audience_id)

    # -- metadata (de)serialisation ------------------------------------------------------------------
    def meta_dict(self) -> dict[str, Any]:
        """Everything but member hashes, uploads' members and events, as JSON-ready data."""

        def plain(obj: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
            return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.name not in skip}

        return {
            "clock_offset": self.clock.offset,
            "id_seed": self.ids.seed,
            "id_counter": self.ids.counter,
            "config": plain(self.config),
            "apps": [plain(a) for a in self.apps.values()],
            "bcs": [plain(b) for b in self.bcs.values()],
            "advertisers": [plain(a) for a in self.advertisers.values()],
            "users": [plain(u) for u in self.users.values()],
            "tokens": [plain(t) for t in self.tokens.values()],
            "auth_codes": [plain(c) for c in self.auth_codes.values()],
            "audiences": [plain(a, ("members",)) for a in self.audiences.values()],
            "uploads": [plain(u, ("members",)) for u in self.uploads.values()],
            "event_sets": [plain(e) for e in self.event_sets.values()],
            "event_stats": plain(self.event_stats),
            "rate_limits": self.rate_limits,
            "seed_info": self.seed_info,
        }

    def load_meta(self, meta: dict[str, Any]) -> None:
        """Restore metadata written by :meth:`meta_dict`."""
        self.clock.offset = float(meta["clock_offset"])
        self.ids = IdGenerator(meta["id_seed"], int(meta["id_counter"]))
        self.config = Config(**meta["config"])
        self.apps = {a["app_id"]: App(**a) for a in meta["apps"]}
        self.bcs = {b["bc_id"]: BusinessCenter(**b) for b in meta["bcs"]}
        self.advertisers = {a["advertiser_id"]: Advertiser(**a) for a in meta["advertisers"]}
        self.users = {u["user_id"]: User(**u) for u in meta["users"]}
        self.tokens = {t["token"]: Token(**t) for t in meta["tokens"]}
        self.refresh_tokens = {t.refresh_token: t.token for t in self.tokens.values() if t.refresh_token}
        self.auth_codes = {c["code"]: AuthCode(**c) for c in meta["auth_codes"]}
        self.audiences = {a["audience_id"]: Audience(**a) for a in meta["audiences"]}
        self.uploads = {u["file_path"]: Upload(**u) for u in meta["uploads"]}
        self.event_sets = {e["event_set_id"]: EventSet(**e) for e in meta["event_sets"]}
        self.event_stats = EventStats(**meta["event_stats"])
        self.rate_limits = meta["rate_limits"]
        self.seed_info = meta["seed_info"]
