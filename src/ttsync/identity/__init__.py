"""ttsync.identity."""
