"""Command-line interface. Thin: parses arguments, calls `ttsync.services`, renders results."""
