"""ttsync.audiences."""
