"""Errors raised while reading, validating or applying workspace configuration.

Every message says what to do next; none carries a secret or a row value.
"""

from __future__ import annotations

from typing import ClassVar


class WorkspaceError(Exception):
    """A workspace problem the user can fix (missing file, bad setting, unknown object)."""


class ConfigError(WorkspaceError):
    """The configuration file or an object's settings are invalid."""


class MissingSettingError(ConfigError):
    """A setting needed to run is set nowhere (destination, data template or orchestration)."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(message)
        self.setting = setting


class NotFoundError(WorkspaceError):
    """A named object (credential, source, destination, ...) does not exist in the store."""

    _CLI_GROUPS: ClassVar[dict[str, str]] = {
        "credential": "credentials",
        "source": "sources",
        "destination": "destinations",
        "data template": "templates",
        "orchestration": "orchestrations",
    }

    def __init__(self, kind: str, name: str) -> None:
        group = self._CLI_GROUPS.get(kind, kind + "s")
        if kind in self._CLI_GROUPS:
            hint = f"see `ttsync {group} list`, or add it to ttsync.yaml and run `ttsync apply`"
        else:
            # Workflows, runs and notifications are made by ttsync, never declared in ttsync.yaml.
            hint = f"see `ttsync {group} list`"
        super().__init__(f"{kind} {name!r} does not exist: {hint}")
        self.kind = kind
        self.name = name


class AmbiguousIdError(WorkspaceError):
    """A short id prefix matches several objects."""

    def __init__(self, kind: str, prefix: str, matches: list[str]) -> None:
        shown = ", ".join(matches[:10]) + (f" and {len(matches) - 10} more" if len(matches) > 10 else "")
        super().__init__(
            f"{kind} id {prefix!r} is ambiguous: it starts {len(matches)} ids ({shown}); type more characters"
        )
        self.kind = kind
        self.prefix = prefix
        self.matches = matches
