"""`python -m ttsync` runs the command-line interface."""

from ttsync.cli.main import run

run()
