"""Credential and destination checks: `ttsync credentials test`, `ttsync destinations test`, `ttsync doctor`.

Each check reads TikTok and changes nothing:
- token present, and not expired (where tokens expire, ref §4.4);
- token valid: `oauth2/advertiser/get/` answers (ref §4.5) and lists the advertisers the token reaches;
- each advertiser of a destination is among them, and answers a read (`dmp/custom_audience/list/` or
  `offline/get/`);
- write permission: the probe below;
- offline destinations: the event set exists on the advertiser (`offline/get/` filtered by id, ref §3.5).

The results (`Check`, `CheckReport`) are `oauth.report`; the write-permission probe is `oauth.probe`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from ttsync.config.models import Credential, Destination
from ttsync.destinations.tiktok.client import TikTokClient, TikTokError
from ttsync.destinations.tiktok.oauth.clients import CHECK_RETRY, client_for
from ttsync.destinations.tiktok.oauth.probe import PROBE_AUDIENCE_ID, probe_write_permission
from ttsync.destinations.tiktok.oauth.report import Check, CheckReport, Status, error_key, problem, summarize
from ttsync.destinations.tiktok.settings import (
    OfflineEventsSettings,
    credential_base_url,
    destination_base_url,
    settings_of,
)
from ttsync.errors import WorkspaceError
from ttsync.store import Store, repos

EXPIRY_WARNING: Final = timedelta(days=7)


@dataclass
class _TokenState:
    reachable: dict[str, str] | None  # advertiser id -> name; None when the token could not be checked
    base_url: str | None


class Doctor:
    """Runs checks, caching what a credential's token reaches so several destinations share one call."""

    def __init__(
        self, store: Store, *, now: datetime | None = None, environ: Mapping[str, str] | None = None
    ) -> None:
        self.store = store
        self.now = now or datetime.now(UTC)
        # For a sandbox credential without its own URL, `$TTSYNC_SANDBOX_URL` (default: the process's).
        self.environ = os.environ if environ is None else environ
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
            resolved = base_url or credential_base_url(credential, self.environ)
        except WorkspaceError as exc:
            report.checks.append(
                problem(subject, "token_valid", str(exc), "configuration_error", credential.name)
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
                problem(subject, "app_secret", "no app secret stored: set app_secret_env and `ttsync apply`",
                         "configuration_error", credential.name)
            )  # fmt: skip
            return state
        if credential.access_token is None:
            report.checks.append(
                problem(subject, "token_present",
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
                problem(
                    subject,
                    "token_valid",
                    f"TikTok refused the token: {exc}",
                    error_key(exc),
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
                return problem(subject, "token_expiry", f"the refresh token expired at {refresh_expires:%Y-%m-%d %H:%M} UTC",
                                "token_expired", credential.name)  # fmt: skip
            return Check(subject, "token_expiry", "ok",
                         f"token expires at {expires:%Y-%m-%d %H:%M} UTC; ttsync refreshes it before runs")  # fmt: skip
        if left <= timedelta(0):
            return problem(subject, "token_expiry", f"the token expired at {expires:%Y-%m-%d %H:%M} UTC and has no refresh token",
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
            base_url = destination_base_url(destination, credential, self.environ)
        except WorkspaceError as exc:
            report.checks.append(
                problem(subject, "base_url", str(exc), "configuration_error", credential.name)
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
                problem(subject, "advertiser_reachable",
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
                problem(subject, "advertiser_reachable", f"advertiser {advertiser_id}: {exc}", error_key(exc),
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
        settings = settings_of(destination)
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
            report.checks.append(problem(subject, "event_set", str(exc), error_key(exc), credential.name))
            return
        match = [s for s in found.event_set_list if s.event_set_id == settings.event_set_id]
        if not match:
            report.checks.append(
                problem(subject, "event_set",
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
                    credential_base_url(credential, self.environ)
                except WorkspaceError:
                    # A sandbox credential may rely on its destinations' URLs: check it through them.
                    continue
            report.checks.extend(self.credential(credential.name).checks)
        for destination in repos.list_destinations(self.store):
            report.checks.extend(self.destination(destination.name).checks)
        return report


def _destination_advertisers(destination: Destination) -> list[str]:
    settings = settings_of(destination)
    if isinstance(settings, OfflineEventsSettings):
        return [settings.advertiser_id] if settings.advertiser_id else []
    return list(settings.advertiser_ids or [])


__all__ = [
    "PROBE_AUDIENCE_ID",
    "Check",
    "CheckReport",
    "Doctor",
    "Status",
    "probe_write_permission",
    "summarize",
]
