"""The applied `writeback:` block, kept in the state folder by `ttsync apply` (read by runs and `ttsync export`)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ttsync.config.common import format_validation_error
from ttsync.config.writeback import WritebackConfig
from ttsync.errors import ConfigError

WRITEBACK_FILE = "writeback.json"


def save_writeback(state_dir: Path, config: WritebackConfig | None) -> None:
    """Keep the applied `writeback:` block in the state folder (read by runs and `ttsync export`)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / WRITEBACK_FILE
    if config is None:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_suffix(".tmp")
    data = config.model_dump(mode="json", by_alias=True, exclude_none=True)
    tmp.write_text(json.dumps({"writeback": data}, indent=2) + "\n", encoding="utf-8")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def load_writeback(state_dir: Path) -> WritebackConfig | None:
    """The applied `writeback:` block, or None when write-back was never configured."""
    path = state_dir / WRITEBACK_FILE
    if not path.is_file():
        return None
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
        return WritebackConfig.model_validate(data["writeback"])
    except (ValueError, KeyError, TypeError) as exc:
        detail = format_validation_error(exc, str(path)) if isinstance(exc, ValidationError) else str(exc)
        raise ConfigError(
            f"{path} is damaged ({detail}): run `ttsync apply -f ttsync.yaml` to write it again"
        ) from None
