"""ttsync.services."""
