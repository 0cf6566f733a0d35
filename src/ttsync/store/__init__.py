"""ttsync.store."""
