"""What a check found: one `Check` per fact, a `CheckReport` per command, their fix-it steps."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from ttsync.destinations.tiktok.client import TikTokError
from ttsync.workflows.resolutions import resolution_for

Status = Literal["ok", "problem", "warning", "skipped"]


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


def problem(subject: str, name: str, detail: str, key: str, credential: str) -> Check:
    """A failed check with the resolution's steps, written for this credential."""
    return Check(subject, name, "problem", detail, key, _steps(key, credential))


def error_key(exc: TikTokError) -> str:
    """The resolution of a TikTok error met by a check."""
    # ref §5.1: TikTok reuses 40001 for an unapproved account; the fix is the "advertiser not found" one.
    if exc.code == 40001 and "not approved" in exc.message.lower():
        return "advertiser_not_found"
    return exc.resolution_key


def summarize(checks: Iterable[Check]) -> dict[str, int]:
    """Counts per status, for the last line of the output."""
    counts = {"ok": 0, "warning": 0, "problem": 0, "skipped": 0}
    for check in checks:
        counts[check.status] += 1
    return counts
