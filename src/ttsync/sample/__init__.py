"""ttsync.sample."""
