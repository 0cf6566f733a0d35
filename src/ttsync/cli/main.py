"""The `ttsync` command: one Typer app, one sub-module per command group."""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from ttsync import __version__
from ttsync.cli import credentials as credentials_cli
from ttsync.cli import emulator as emulator_cli
from ttsync.cli import identity as identity_cli
from ttsync.cli import runs as runs_cli
from ttsync.cli import workspace as workspace_cli
from ttsync.tiktok.retrylog import install_retry_logging

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


class _StderrHandler(logging.Handler):
    """Writes records to the *current* sys.stderr, so lines land above rich's progress bars (which redirect
    stderr while they run) instead of through them."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:  # logging must never break a run
            self.handleError(record)


def setup_logging(verbose: bool) -> None:
    """Readable warnings by default (one line per retry episode, no raw library records); everything with
    its logger name and the full retry detail at `-v`."""
    install_retry_logging()
    handler = _StderrHandler()
    if verbose:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("ttsync").setLevel(logging.DEBUG if verbose else logging.WARNING)
    if verbose:
        logging.getLogger("httpx2").setLevel(logging.INFO)  # request lines (secret query values redacted)


@app.callback()
def main(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show every log record, with full retry details.")
    ] = False,
) -> None:
    """Send first-party warehouse data to TikTok Ads Manager: custom audiences and offline events."""
    setup_logging(verbose)


@app.command()
def version() -> None:
    """Print the ttsync version."""
    typer.echo(__version__)


def run() -> None:
    """Entry point of the console script."""
    app()
