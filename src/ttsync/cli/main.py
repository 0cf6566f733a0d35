"""The `ttsync` command: one Typer app, one sub-module per command group."""

from __future__ import annotations

import typer

from ttsync import __version__
from ttsync.cli import credentials as credentials_cli
from ttsync.cli import emulator as emulator_cli
from ttsync.cli import identity as identity_cli
from ttsync.cli import runs as runs_cli
from ttsync.cli import workspace as workspace_cli

app = typer.Typer(
    name="ttsync",
    help="Send first-party warehouse data to TikTok Ads Manager: custom audiences and offline events.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(emulator_cli.app, name="emulator")
app.add_typer(identity_cli.app, name="identity")
workspace_cli.register(app)
runs_cli.register(app)
credentials_cli.register(app)


@app.command()
def version() -> None:
    """Print the ttsync version."""
    typer.echo(__version__)


def run() -> None:
    """Entry point of the console script."""
    app()
