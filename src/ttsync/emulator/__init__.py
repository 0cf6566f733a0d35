"""ttsync.emulator."""
