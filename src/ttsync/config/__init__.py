"""Configuration: pure models of the workspace objects (`models`) and of the `ttsync.yaml` file (`file`).

No store, no files, no environment reads (the environment is an argument), no destination's rules: a
destination's settings are a plain mapping here, validated by its wing (`ttsync.destinations.tiktok.settings`).
Reading the file from disk is `ttsync.app.workspace.layout.load_config`. The errors these raise (`ConfigError`
and friends) live in `ttsync.errors`.
"""

from ttsync.config.models import Credential, DataTemplate, Destination, Orchestration, Source
from ttsync.errors import ConfigError, MissingSettingError, NotFoundError, WorkspaceError

__all__ = [
    "ConfigError",
    "Credential",
    "DataTemplate",
    "Destination",
    "MissingSettingError",
    "NotFoundError",
    "Orchestration",
    "Source",
    "WorkspaceError",
]
