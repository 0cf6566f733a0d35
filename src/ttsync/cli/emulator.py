"""`ttsync emulator ...`: run the local TikTok Business API emulator (the `sandbox` environment)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Run the local TikTok Business API emulator (the sandbox environment).", no_args_is_help=True)
