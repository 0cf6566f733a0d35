"""Workspace: domain models, the `ttsync.yaml` config file, discovery, init / apply / export.

Only the models are imported here; `ttsync.workspace.{config,layout,init,apply}` are imported on use
(they depend on the store, which itself depends on these models).
"""

from ttsync.workspace.errors import ConfigError, MissingSettingError, NotFoundError, WorkspaceError
from ttsync.workspace.models import (
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
