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
        super().__init__(
            f"{kind} {name!r} does not exist: see `ttsync {group} list`, "
            "or add it to ttsync.yaml and run `ttsync apply`"
        )
        self.kind = kind
        self.name = name
