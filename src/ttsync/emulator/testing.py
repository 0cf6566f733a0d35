"""Test harness: start an emulator on a free loopback port, and drive its admin API.

with EmulatorServer(seed="demo") as emu:
    emu.base_url   # what the TikTok client takes as base URL
    emu.seed       # SeedInfo (same keys as --seed-out)
    emu.admin      # EmulatorAdmin over /_emulator/ (sends the emulator's admin token)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx2

from ttsync.emulator.api import API_PREFIX
from ttsync.emulator.app import Emulator
from ttsync.emulator.persistence import Persistence
from ttsync.emulator.seed import build_state
from ttsync.emulator.server import BackgroundServer

SEED_KEYS = (
    "base_url",
    "app_id",
    "app_secret",
    "business_center_id",
    "advertiser_ids",
    "operator_token",
    "analyst_token",
    "event_set_id",
    "admin_token",
)


@dataclass(frozen=True)
class SeedInfo:
    """What a seed created; the keys of the ``--seed-out`` file. Secrets are hidden from repr."""

    base_url: str
    app_id: str
    app_secret: str = field(repr=False)
    business_center_id: str
    advertiser_ids: list[str]
    operator_token: str = field(repr=False)
    analyst_token: str = field(repr=False)
    event_set_id: str
    admin_token: str = field(repr=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SeedInfo:
        """Build from the JSON document (ignores unknown keys)."""
        return cls(**{k: data[k] for k in SEED_KEYS})

    def to_dict(self) -> dict[str, Any]:
        """The JSON document, exactly the ``--seed-out`` keys."""
        return {k: getattr(self, k) for k in SEED_KEYS}


class EmulatorAdmin:
    """Synchronous client of the admin API under ``/_emulator/``."""

    def __init__(self, root_url: str, admin_token: str, *, timeout: float = 30.0) -> None:
        self._http = httpx2.Client(
            base_url=root_url.rstrip("/") + "/_emulator/",
            headers={"Authorization": f"Bearer {admin_token}"},
            timeout=timeout,
        )

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()

    def _call(self, method: str, path: str, json: Any = None, params: dict[str, str] | None = None) -> Any:
        response = self._http.request(method, path, json=json, params=params)
        if response.status_code != 200:
            raise RuntimeError(f"emulator admin {method} {path}: HTTP {response.status_code} {response.text}")
        return response.json()

    def reset(
        self, seed: str = "demo", variants: list[str] | None = None, *, deterministic_ids: bool | None = None
    ) -> SeedInfo:
        """Replace the whole state with a fresh seed ("demo" or "empty"); clears faults and limit counters.

        ``variants`` selects behaviour variants (see ``ttsync.emulator.variants``); None keeps the server's own.
        ``deterministic_ids`` makes ids created after seeding repeat from run to run (default: unique).
        """
        body: dict[str, Any] = {"seed": seed}
        if variants is not None:
            body["variants"] = variants
        if deterministic_ids is not None:
            body["deterministic_ids"] = deterministic_ids
        data = self._call("POST", "reset", body)
        return SeedInfo.from_dict(data) if seed == "demo" else SeedInfo.from_dict(_empty_seed(data))

    def seed_info(self) -> dict[str, Any]:
        """The current seed document."""
        return dict(self._call("GET", "seed"))

    def state(self, *, members: bool = False) -> dict[str, Any]:
        """Everything the emulator holds (tokens and secrets redacted); member hashes only if asked."""
        return dict(self._call("GET", "state", params={"members": "true"} if members else None))

    def set_rate_limit(
        self,
        group: str,
        qps: int | None,
        qpm: int | None = None,
        qpd: int | None = None,
        app_id: str | None = None,
    ) -> dict[str, Any]:
        """Override a group's limits (``default``, ``segment``, ``events``) for one app or all apps."""
        body = {"group": group, "qps": qps, "qpm": qpm, "qpd": qpd, "app_id": app_id}
        return dict(self._call("POST", "rate_limits", body))

    def set_faults(
        self,
        rate: float,
        codes: list[int],
        latency_ms: int = 0,
        drop_rate: float = 0.0,
        seed: int = 0,
        paths: list[str] | None = None,
        drop_response_rate: float = 0.0,
    ) -> dict[str, Any]:
        """Answer a share of requests with one of ``codes``, add latency, drop connections (before the request
        is applied: ``drop_rate``; after: ``drop_response_rate``, the answer is lost)."""
        body = {
            "rate": rate,
            "codes": codes,
            "latency_ms": latency_ms,
            "drop_rate": drop_rate,
            "drop_response_rate": drop_response_rate,
            "seed": seed,
            "paths": paths,
        }
        return dict(self._call("POST", "faults", body))

    def clear_faults(self) -> None:
        """No more injected faults."""
        self._call("DELETE", "faults")

    def advance_clock(self, seconds: float) -> float:
        """Move the emulator clock forward; returns the new emulator time."""
        return float(self._call("POST", "clock/advance", {"seconds": seconds})["now"])

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Set ``processing_delay``, ``mapping_limit``, ``audience_cap``, ``max_stored_events``, ``dedupe_window``."""
        return dict(self._call("POST", "config", settings))

    def set_variants(self, variants: list[str], *, partner_names: list[str] | None = None) -> list[str]:
        """Select behaviour variants (and, for ``partner-name-registered``, the registered partner names)."""
        body: dict[str, Any] = {"variants": variants}
        if partner_names is not None:
            body["partner_names"] = partner_names
        return list(self._call("POST", "variants", body)["variants"])

    def variants(self) -> list[str]:
        """The variants in effect."""
        return list(self._call("GET", "variants")["variants"])

    def set_processing_delay(self, seconds: float) -> None:
        """Seconds a new or updated audience stays ``is_valid=false`` and refuses mappings."""
        self.configure(processing_delay=seconds)

    def set_mapping_limit(self, max_rows: int) -> None:
        """Rows allowed per segment/mapping/ request (above: 40011)."""
        self.configure(mapping_limit=max_rows)

    def audience(self, audience_id: str) -> dict[str, Any]:
        """An audience's details, history, sharing and member counts per schema."""
        return dict(self._call("GET", f"audiences/{audience_id}"))

    def audience_members(self, audience_id: str) -> dict[str, set[str]]:
        """Member hashes (lowercase hex) per id schema."""
        data = self._call("GET", f"audiences/{audience_id}/members")
        return {schema: set(hashes) for schema, hashes in data.items()}

    def expire_audience(self, audience_id: str) -> None:
        """Make an audience expire now."""
        self._call("POST", f"audiences/{audience_id}/expire")

    def delete_audience(self, audience_id: str) -> None:
        """Delete an audience as if someone did it in Ads Manager."""
        self._call("POST", f"audiences/{audience_id}/delete")

    def events(self, event_set_id: str, *, test: bool = False) -> list[dict[str, Any]]:
        """Events accepted for a source (duplicates excluded); ``test=True`` for test_event_code events."""
        params = {"test": "true"} if test else None
        return list(self._call("GET", f"events/{event_set_id}", params=params)["events"])

    def delete_advertiser(self, advertiser_id: str) -> None:
        """Delete an advertiser (calls on it then get 40001)."""
        self._call("POST", f"advertisers/{advertiser_id}/delete")

    def unapprove_advertiser(self, advertiser_id: str) -> None:
        """Mark an advertiser unapproved (writes on it get 40001)."""
        self._call("POST", f"advertisers/{advertiser_id}/unapprove")

    def approve_advertiser(self, advertiser_id: str) -> None:
        """Mark an advertiser approved again."""
        self._call("POST", f"advertisers/{advertiser_id}/approve")

    def revoke_token(self, token: str) -> None:
        """Revoke an access token (later calls get 40105)."""
        self._call("POST", "tokens/revoke", {"token": token})

    def create_token(
        self,
        user: str,
        advertiser_ids: list[str],
        role: str,
        expires_in: int | None = None,
        with_refresh: bool = False,
        app_id: str | None = None,
    ) -> dict[str, Any]:
        """Create (or reuse) a user with ``role`` on the advertisers and issue a token.

        Returns ``access_token``, ``refresh_token`` (None unless expiring), ``user_id``, ``advertiser_ids``,
        ``expires_in``.
        """
        body = {
            "user": user,
            "advertiser_ids": advertiser_ids,
            "role": role,
            "expires_in": expires_in,
            "with_refresh": with_refresh,
            "app_id": app_id,
        }
        return dict(self._call("POST", "tokens", body))

    def create_auth_code(
        self, user: str, advertiser_ids: list[str], role: str = "Operator", app_id: str | None = None
    ) -> str:
        """An OAuth auth code as if the user confirmed the consent page."""
        body = {"user": user, "advertiser_ids": advertiser_ids, "role": role, "app_id": app_id}
        return str(self._call("POST", "auth_codes", body)["auth_code"])

    def set_app_tier(self, app_id: str, tier: str) -> None:
        """Change an app's rate-limit tier (basic, advanced, premium, ultimate; ref §5.2)."""
        self._call("POST", f"apps/{app_id}", {"tier": tier})

    def set_token_expiry(self, app_id: str, expires_in: int | None) -> None:
        """Make the app's OAuth tokens expire after ``expires_in`` seconds, with refresh tokens (None: long-lived)."""
        self._call("POST", f"apps/{app_id}", {"token_expires_in": expires_in})

    def fill_audiences(self, advertiser_id: str, count: int) -> int:
        """Create filler audiences (up to the cap); returns the advertiser's audience count."""
        return int(
            self._call("POST", f"advertisers/{advertiser_id}/fill_audiences", {"count": count})["total"]
        )

    def create_event_set(self, advertiser_id: str, kind: str = "offline", name: str | None = None) -> str:
        """An event source of a kind (offline, crm, web pixel, app); returns its id."""
        body = {"advertiser_id": advertiser_id, "kind": kind, "name": name or f"{kind} source"}
        return str(self._call("POST", "event_sets", body)["event_set_id"])


def _empty_seed(data: dict[str, Any]) -> dict[str, Any]:
    blank: dict[str, Any] = dict.fromkeys(SEED_KEYS, "")
    blank["advertiser_ids"] = []
    blank.update(data)
    return blank


class RawApi:
    """Plain httpx2 calls to /open_api/v1.3/ with one token (emulator tests must not use the ttsync client)."""

    def __init__(self, emu: EmulatorServer, token: str | None) -> None:
        headers = {"Access-Token": token} if token else {}
        self.http = httpx2.Client(base_url=emu.base_url, headers=headers, timeout=30)

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST a JSON body; returns the envelope (asserts HTTP 200)."""
        response = self.http.post(
            path, content=json.dumps(body), headers={"content-type": "application/json"}
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()

    def __enter__(self) -> RawApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        """GET with list parameters JSON-encoded (ref §1); returns the envelope."""
        query = {k: json.dumps(v) if isinstance(v, list) else v for k, v in params.items()}
        response = self.http.get(path, params=query)
        assert response.status_code == 200, response.text
        return dict(response.json())


class EmulatorServer:
    """An emulator on 127.0.0.1 (free port unless given), served from a background thread."""

    def __init__(
        self,
        seed: str = "demo",
        *,
        port: int = 0,
        state_file: str | Path | None = None,
        host: str = "127.0.0.1",
        variants: list[str] | None = None,
        deterministic_ids: bool = False,
    ) -> None:
        persistence = Persistence(state_file) if state_file is not None else None
        state = persistence.load() if persistence is not None else None
        self.emulator = Emulator(
            state if state is not None else build_state(seed, deterministic_ids=deterministic_ids),
            persistence=persistence,
            variants=variants,
            deterministic_ids=deterministic_ids,
        )
        self._server = BackgroundServer(self.emulator, host, port)
        self.port: int = self._server.port
        self.root_url = f"http://{host}:{self.port}"
        self.base_url = self.root_url + API_PREFIX
        self._admin: EmulatorAdmin | None = None

    @property
    def admin(self) -> EmulatorAdmin:
        """The admin client (created on first use)."""
        if self._admin is None:
            self._admin = EmulatorAdmin(self.root_url, self.emulator.admin_token)
        return self._admin

    @property
    def seed(self) -> SeedInfo:
        """The current seed info (read from the running emulator, so it follows resets)."""
        return SeedInfo.from_dict(_empty_seed(self.emulator.seed_info(self.root_url)))

    def start(self) -> EmulatorServer:
        """Start serving."""
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the admin client (and flush ``state_file``)."""
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        self._server.stop()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
