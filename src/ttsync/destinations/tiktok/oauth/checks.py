"""Credential and destination checks: `ttsync credentials test`, `ttsync destinations test`, `ttsync doctor`.

Each check reads TikTok and changes nothing:
- token present, and not expired (where tokens expire, ref §4.4);
- token valid: `oauth2/advertiser/get/` answers (ref §4.5) and lists the advertisers the token reaches;
- each advertiser of a destination is among them, and answers a read (`dmp/custom_audience/list/` or
  `offline/get/`);
- write permission: the probe below;
- offline destinations: the event set exists on the advertiser (`offline/get/` filtered by id, ref §3.5).

The write-permission probe. Reads succeed for Analysts, so only a write tells whether the user may change
audiences (scope 31, ref §2.3). The probe sends `segment/mapping/` with `action: "delete"`, one
`EMAIL_SHA256` value that is the SHA-256 of 32 fresh random bytes (it matches no person and carries no PII),
for audience id `"0"`, which no audience has. It cannot change anything: a delete never adds, the hash is
nobody, and the audience does not exist. TikTok checks the advertiser permission (40001 for an Analyst or an
unapproved account) before it looks at the audience, then refuses the unknown audience (40002): so 40001 means
"no write permission", and 40002/40007 mean "allowed to write". If TikTok ever validated the audience first,
an Analyst would also get 40002 and the probe would report "not denied" rather than a false failure; the
check's detail says which answer it saw.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

from ttsync.config.models import Credential, Destination, OfflineEventsSettings
from ttsync.destinations.tiktok.client import (
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    TikTokClient,
    TikTokError,
)
from ttsync.destinations.tiktok.oauth.clients import CHECK_RETRY, client_for
from ttsync.errors import WorkspaceError
from ttsync.store import Store, repos
from ttsync.workflows.resolutions import resolution_for

Status = Literal["ok", "problem", "warning", "skipped"]
PROBE_AUDIENCE_ID: Final = "0"
EXPIRY_WARNING: Final = timedelta(days=7)


@dataclass
class Check:
    """One checked fact about a credential or destination."""

    subject: str  # "credential NAME" or "destination NAME"
    name: str  # token_present, token_expiry, token_valid, advertiser_reachable, write_permission, event_set
    status: Status
    detail: str
    resolution: str | None = None
    steps: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (resolution expanded with its title and steps)."""
        data: dict[str, object] = {
            "subject": self.subject,
            "check": self.name,
            "status": self.status,
            "detail": self.detail,
        }
        if self.resolution is not None:
            data["resolution"] = {
                "key": self.resolution,
                "title": resolution_for(self.resolution).title,
                "steps": self.steps,
            }
        return data


@dataclass
class CheckReport:
    """The checks of one command; `ok` when none found a problem."""

    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no check is a problem (warnings do not fail)."""
        return all(check.status != "problem" for check in self.checks)

    @property
    def problems(self) -> list[Check]:
        """The failing checks."""
        return [check for check in self.checks if check.status == "problem"]

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {"ok": self.ok, "checks": [check.to_dict() for check in self.checks]}


def _steps(key: str, credential: str) -> list[str]:
    # Catalog steps are written for failed workflows; outside one, "resolve ID" has nothing to continue.
    steps = [
        s.replace("credentials test NAME", f"credentials test {credential}")
        for s in resolution_for(key).steps
    ]
    steps = [s.replace("reauthorize NAME", f"reauthorize {credential}") for s in steps]
    kept = [s for s in steps if "ttsync workflows" not in s]
    return kept or ["Wait a few minutes, then run the same check again."]


def _problem(subject: str, name: str, detail: str, key: str, credential: str) -> Check:
    return Check(subject, name, "problem", detail, key, _steps(key, credential))


def _error_key(exc: TikTokError) -> str:
    # ref §5.1: TikTok reuses 40001 for an unapproved account; the fix is the "advertiser not found" one.
    if exc.code == 40001 and "not approved" in exc.message.lower():
        return "advertiser_not_found"
    return exc.resolution_key


@dataclass
class _TokenState:
    reachable: dict[str, str] | None  # advertiser id -> name; None when the token could not be checked
    base_url: str | None


class Doctor:
    """Runs checks, caching what a credential's token reaches so several destinations share one call."""

    def __init__(self, store: Store, *, now: datetime | None = None) -> None:
        self.store = store
        self.now = now or datetime.now(UTC)
        self._tokens: dict[tuple[str, str | None], _TokenState] = {}
        self._writes: dict[tuple[str, str], Check] = {}

    # -- credentials -------------------------------------------------------------------------------------

    def credential(self, name: str, *, base_url: str | None = None) -> CheckReport:
        """Token present, not expired, valid; which advertisers it reaches."""
        report = CheckReport()
        credential = repos.get_credential(self.store, name)
        state = self._token(credential, base_url, report)
        if state.reachable is not None:
            stale = [a for a in credential.advertiser_ids if a not in state.reachable]
            if stale:
                report.checks.append(
                    Check(
                        f"credential {name}",
                        "advertiser_reachable",
                        "warning",
                        f"the token no longer reaches {', '.join(stale)} (recorded at authorization): "
                        "the advertiser was removed or the user lost access",
                    )
                )
        return report

    def _token(self, credential: Credential, base_url: str | None, report: CheckReport) -> _TokenState:
        subject = f"credential {credential.name}"
        try:
            resolved = base_url or credential.base_url()
        except WorkspaceError as exc:
            report.checks.append(
                _problem(subject, "token_valid", str(exc), "configuration_error", credential.name)
            )
            return _TokenState(None, None)
        key = (credential.name, resolved)
        cached = self._tokens.get(key)
        if cached is not None:
            return cached
        state = _TokenState(None, resolved)
        self._tokens[key] = state
        if credential.app_secret is None:
            report.checks.append(
                _problem(subject, "app_secret", "no app secret stored: set app_secret_env and `ttsync apply`",
                         "configuration_error", credential.name)
            )  # fmt: skip
            return state
        if credential.access_token is None:
            report.checks.append(
                _problem(subject, "token_present",
                         f"no access token: run `ttsync credentials authorize {credential.name}`",
                         "invalid_credentials", credential.name)
            )  # fmt: skip
            return state
        report.checks.append(self._expiry(credential))
        try:
            with client_for(credential, base_url=state.base_url, retry=CHECK_RETRY) as client:
                advertisers = client.get_authorized_advertisers().advertisers
        except TikTokError as exc:
            report.checks.append(
                _problem(
                    subject,
                    "token_valid",
                    f"TikTok refused the token: {exc}",
                    _error_key(exc),
                    credential.name,
                )
            )
            return state
        state.reachable = {a.advertiser_id: a.advertiser_name for a in advertisers}
        listed = ", ".join(f"{a.advertiser_id} ({a.advertiser_name})" for a in advertisers) or "none"
        status: Status = "ok" if advertisers else "warning"
        report.checks.append(Check(subject, "token_valid", status, f"token valid; reaches {listed}"))
        return state

    def _expiry(self, credential: Credential) -> Check:
        subject = f"credential {credential.name}"
        expires = credential.token_expires_at
        if expires is None:
            return Check(
                subject, "token_expiry", "ok", "long-lived token (Marketing API tokens do not expire)"
            )
        left = expires - self.now
        if credential.refresh_token is not None:
            refresh_expires = credential.refresh_token_expires_at
            if refresh_expires is not None and refresh_expires <= self.now:
                return _problem(subject, "token_expiry", f"the refresh token expired at {refresh_expires:%Y-%m-%d %H:%M} UTC",
                                "token_expired", credential.name)  # fmt: skip
            return Check(subject, "token_expiry", "ok",
                         f"token expires at {expires:%Y-%m-%d %H:%M} UTC; ttsync refreshes it before runs")  # fmt: skip
        if left <= timedelta(0):
            return _problem(subject, "token_expiry", f"the token expired at {expires:%Y-%m-%d %H:%M} UTC and has no refresh token",
                            "token_expired", credential.name)  # fmt: skip
        status: Status = "warning" if left < EXPIRY_WARNING else "ok"
        return Check(subject, "token_expiry", status,
                     f"token expires at {expires:%Y-%m-%d %H:%M} UTC and cannot be refreshed")  # fmt: skip

    # -- destinations ------------------------------------------------------------------------------------

    def destination(self, name: str) -> CheckReport:
        """The "test connection" of one destination."""
        report = CheckReport()
        destination = repos.get_destination(self.store, name)
        credential = repos.get_credential(self.store, destination.credential)
        subject = f"destination {name}"
        try:
            base_url = destination.base_url(credential)
        except WorkspaceError as exc:
            report.checks.append(
                _problem(subject, "base_url", str(exc), "configuration_error", credential.name)
            )
            return report
        before = len(report.checks)
        state = self._token(credential, base_url, report)
        if len(report.checks) == before and state.reachable is None:
            report.checks.append(
                Check(subject, "token_valid", "skipped", f"see credential {credential.name} above")
            )
        if state.reachable is None:
            return report
        advertisers = _destination_advertisers(destination)
        if not advertisers:
            report.checks.append(
                Check(subject, "advertiser_reachable", "skipped",
                      "no advertiser id on the destination (set on the data template or orchestration)")
            )  # fmt: skip
            return report
        with client_for(credential, base_url=base_url, retry=CHECK_RETRY) as client:
            for advertiser_id in advertisers:
                if not self._reachable(
                    client, destination, credential, advertiser_id, state.reachable, report
                ):
                    continue
                report.checks.append(self._write_permission(client, destination, credential, advertiser_id))
            self._event_set(client, destination, credential, report)
        return report

    def _reachable(
        self,
        client: TikTokClient,
        destination: Destination,
        credential: Credential,
        advertiser_id: str,
        reachable: dict[str, str],
        report: CheckReport,
    ) -> bool:
        subject = f"destination {destination.name}"
        if advertiser_id not in reachable:
            report.checks.append(
                _problem(subject, "advertiser_reachable",
                         f"advertiser {advertiser_id} is not among the advertisers the token of credential "
                         f"{credential.name!r} reaches: the id is wrong, the account was deleted, or the user "
                         "who authorized did not grant it", "advertiser_not_found", credential.name)
            )  # fmt: skip
            return False
        try:
            if destination.kind == "audience":
                client.list_custom_audiences(advertiser_id, page_size=1)
            else:
                client.get_offline_event_sets(advertiser_id)
        except TikTokError as exc:
            report.checks.append(
                _problem(subject, "advertiser_reachable", f"advertiser {advertiser_id}: {exc}", _error_key(exc),
                         credential.name)
            )  # fmt: skip
            return False
        report.checks.append(
            Check(subject, "advertiser_reachable", "ok", f"advertiser {advertiser_id} ({reachable[advertiser_id]}) answers")
        )  # fmt: skip
        return True

    def _write_permission(
        self, client: TikTokClient, destination: Destination, credential: Credential, advertiser_id: str
    ) -> Check:
        cached = self._writes.get((credential.name, advertiser_id))
        subject = f"destination {destination.name}"
        if cached is None:
            cached = probe_write_permission(client, advertiser_id, credential_name=credential.name)
            self._writes[(credential.name, advertiser_id)] = cached
        return Check(
            subject, cached.name, cached.status, cached.detail, cached.resolution, list(cached.steps)
        )

    def _event_set(
        self, client: TikTokClient, destination: Destination, credential: Credential, report: CheckReport
    ) -> None:
        settings = destination.settings
        if not isinstance(settings, OfflineEventsSettings):
            return
        subject = f"destination {destination.name}"
        if settings.event_set_id is None or settings.advertiser_id is None:
            report.checks.append(
                Check(
                    subject,
                    "event_set",
                    "skipped",
                    "no event_set_id on the destination (set at orchestration)",
                )
            )
            return
        try:
            found = client.get_offline_event_sets(
                settings.advertiser_id, event_set_ids=[settings.event_set_id]
            )
        except TikTokError as exc:
            report.checks.append(_problem(subject, "event_set", str(exc), _error_key(exc), credential.name))
            return
        match = [s for s in found.event_set_list if s.event_set_id == settings.event_set_id]
        if not match:
            report.checks.append(
                _problem(subject, "event_set",
                         f"event set {settings.event_set_id} does not exist on advertiser {settings.advertiser_id}",
                         "event_set_not_found", credential.name)
            )  # fmt: skip
            return
        report.checks.append(
            Check(subject, "event_set", "ok", f"event set {settings.event_set_id} ({match[0].name}) exists")
        )

    # -- everything --------------------------------------------------------------------------------------

    def everything(self) -> CheckReport:
        """`ttsync doctor`: every credential, then every destination."""
        report = CheckReport()
        for credential in repos.list_credentials(self.store):
            if credential.environment == "sandbox":
                try:
                    credential.base_url()
                except WorkspaceError:
                    # A sandbox credential may rely on its destinations' URLs: check it through them.
                    continue
            report.checks.extend(self.credential(credential.name).checks)
        for destination in repos.list_destinations(self.store):
            report.checks.extend(self.destination(destination.name).checks)
        return report


def _destination_advertisers(destination: Destination) -> list[str]:
    settings = destination.settings
    if isinstance(settings, OfflineEventsSettings):
        return [settings.advertiser_id] if settings.advertiser_id else []
    return list(settings.advertiser_ids or [])


def probe_write_permission(client: TikTokClient, advertiser_id: str, *, credential_name: str) -> Check:
    """Ask TikTok whether this token may change audiences of `advertiser_id`, changing nothing (see module doc)."""
    subject = f"advertiser {advertiser_id}"
    nobody = hashlib.sha256(secrets.token_bytes(32)).hexdigest()  # matches no person; not PII
    try:
        client.remove_segment_members([advertiser_id], [PROBE_AUDIENCE_ID], ["EMAIL_SHA256"], [[nobody]])
    except PermissionDeniedError as exc:
        key = _error_key(exc)
        return _problem(
            subject, "write_permission",
            f"advertiser {advertiser_id}: the user behind the token may not change audiences or send events "
            f"(TikTok answered {exc.code}: {exc.message})", key, credential_name,
        )  # fmt: skip
    except (InvalidRequestError, NotFoundError) as exc:
        # Past the permission gate, refused only because audience "0" does not exist: writing is allowed.
        return Check(subject, "write_permission", "ok",
                     f"advertiser {advertiser_id}: write allowed (probe refused as expected with {exc.code})")  # fmt: skip
    except TikTokError as exc:
        return Check(subject, "write_permission", "warning",
                     f"advertiser {advertiser_id}: write permission could not be checked: {exc}")  # fmt: skip
    return Check(subject, "write_permission", "ok", f"advertiser {advertiser_id}: write allowed")


def summarize(checks: Iterable[Check]) -> dict[str, int]:
    """Counts per status, for the last line of the output."""
    counts = {"ok": 0, "warning": 0, "problem": 0, "skipped": 0}
    for check in checks:
        counts[check.status] += 1
    return counts
