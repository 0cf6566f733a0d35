"""ttsync.events."""
