"""ttsync.tiktok."""
