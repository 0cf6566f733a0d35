"""ttsync.workflows."""
