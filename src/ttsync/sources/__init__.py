"""ttsync.sources."""
