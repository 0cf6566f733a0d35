"""The `ttsync` command: one Typer app, one sub-module per command group."""

from __future__ import annotations

import json
import logging
import sys
from typing import Annotated

import typer
from typer._click import exceptions as click_errors  # typer >= 0.29 vendors click as typer._click
from typer.core import TyperOption

from ttsync import __version__
from ttsync.app.runs import install_retry_logging
from ttsync.cli import campaigns as campaigns_cli
from ttsync.cli import credentials as credentials_cli
from ttsync.cli import emulator as emulator_cli
from ttsync.cli import identity as identity_cli
from ttsync.cli import runs as runs_cli
from ttsync.cli import server as server_cli
from ttsync.cli import workspace as workspace_cli
from ttsync.cli import writeback as writeback_cli
from ttsync.cli._common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, error_document, set_json_mode


def _flag_type(self: TyperOption, ctx: typer.Context) -> str | None:
    """No `<bool>` after a flag in help: `--plan`, not `--plan <bool>` (typer shows the type of every option)."""
    if self.is_flag:
        return None
    return _typer_display_type(self, ctx)


_typer_display_type = TyperOption.display_type_rich
setattr(TyperOption, "display_type_rich", _flag_type)  # noqa: B010 (patching a method of the class)

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
server_cli.register(app)
writeback_cli.register(app)
campaigns_cli.register(app)


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
def version(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Print the ttsync version."""
    if as_json:
        typer.echo(json.dumps({"version": __version__}))
    else:
        typer.echo(__version__)


def _wants_json(argv: list[str]) -> bool:
    words = argv[: argv.index("--")] if "--" in argv else argv
    return "--json" in words


def run(argv: list[str] | None = None) -> None:
    """Entry point of the console script. In `--json` mode every error, usage errors included, is one JSON
    document on stdout (see `error_document`); exit codes are listed in the README."""
    args = list(sys.argv[1:] if argv is None else argv)
    as_json = _wants_json(args)
    set_json_mode(as_json)
    try:
        code = app(args=args, prog_name="ttsync", standalone_mode=False)
    except click_errors.NoArgsIsHelpError as exc:
        exc.show()  # help, also with --json
        sys.exit(EXIT_USAGE)
    except click_errors.ClickException as exc:
        if not as_json:
            exc.show()
            sys.exit(exc.exit_code)
        message = exc.format_message()
        context = getattr(exc, "ctx", None)
        if context is not None:
            message += f" (see `{context.command_path} --help`)"
        typer.echo(json.dumps(error_document(message, resolution=None, exit_code=EXIT_USAGE)))
        sys.exit(EXIT_USAGE)
    except (typer.Abort, KeyboardInterrupt):
        if as_json:
            typer.echo(json.dumps(error_document("interrupted", resolution=None, exit_code=EXIT_INTERRUPTED)))
        else:
            typer.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:
        if not as_json:
            raise
        # A bug or an unclassified failure: keep stdout parseable. The type only (its text may quote data);
        # the full traceback is one run without --json away.
        message = (
            f"unexpected {type(exc).__name__}: run the command again without --json to see the traceback"
        )
        typer.echo(json.dumps(error_document(message, resolution="internal_error", exit_code=EXIT_FAILED)))
        sys.exit(EXIT_FAILED)
    sys.exit(code if isinstance(code, int) else 0)
