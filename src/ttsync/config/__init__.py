"""Configuration: pure models of the workspace objects (`models`) and of the `ttsync.yaml` file (`file`).

No store, no files: reading the file from disk is `ttsync.app.workspace.layout.load_config`. The errors these raise
(`ConfigError` and friends) live in `ttsync.errors`.
"""

from ttsync.config.models import (
    PRODUCTION_BASE_URL,
    AudienceSettings,
    Credential,
    DataTemplate,
    Destination,
    OfflineEventsSettings,
    Orchestration,
    ResolvedAudienceSettings,
    ResolvedOfflineEventsSettings,
    Source,
    audience_name_warning,
    effective_settings,
)
from ttsync.errors import ConfigError, MissingSettingError, NotFoundError, WorkspaceError

__all__ = [
    "PRODUCTION_BASE_URL",
    "AudienceSettings",
    "ConfigError",
    "Credential",
    "DataTemplate",
    "Destination",
    "MissingSettingError",
    "NotFoundError",
    "OfflineEventsSettings",
    "Orchestration",
    "ResolvedAudienceSettings",
    "ResolvedOfflineEventsSettings",
    "Source",
    "WorkspaceError",
    "audience_name_warning",
    "effective_settings",
]
