"""Credential commands: `ttsync credentials authorize|reauthorize|revoke|test`, `ttsync destinations test`,
`ttsync doctor`, and `ttsync webhook deliver`. The logic lives in `ttsync.destinations.tiktok.oauth` / `ttsync.notify`."""

from __future__ import annotations

import sys
import webbrowser
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from ttsync.app.workspace.layout import Workspace
from ttsync.cli._common import (
    JsonOption,
    WorkspaceOption,
    error_document,
    fail,
    handle_errors,
    open_store,
    print_json,
)
from ttsync.cli.workspace import credentials_app, destinations_app
from ttsync.destinations.tiktok.oauth import (
    AuthorizeFlow,
    AuthorizeResult,
    CheckReport,
    CredentialFlowError,
    Doctor,
)
from ttsync.destinations.tiktok.oauth import revoke as revoke_token
from ttsync.destinations.tiktok.oauth.receiver import parse_callback
from ttsync.workflows.resolutions import resolution_for

_out = Console(highlight=False)
_err = Console(stderr=True, highlight=False)

webhook_app = typer.Typer(help="Post notifications to a Slack-compatible webhook.", no_args_is_help=True)

TimeoutOption = Annotated[
    float, typer.Option("--timeout", min=1, help="Seconds to wait for TikTok's redirect.")
]
PasteOption = Annotated[
    bool,
    typer.Option("--paste", help="Do not listen: paste the whole address the browser landed on."),
]
NoBrowserOption = Annotated[bool, typer.Option("--no-browser", help="Print the URL; do not open a browser.")]


def _flow_failed(exc: CredentialFlowError, as_json: bool) -> typer.Exit:
    resolution = resolution_for(exc.resolution_key)
    if as_json:
        print_json(error_document(str(exc), resolution=resolution.key, exit_code=1))
    else:
        _err.print(f"[red]error:[/red] {escape(str(exc))}")
        _err.print(f"({resolution.title}: {escape(resolution.why)})")
    return typer.Exit(code=1)


def _authorize(
    name: str, *, paste: bool, no_browser: bool, timeout: float, workspace: Path | None, as_json: bool
) -> None:
    ws = Workspace.discover(workspace)
    with open_store(workspace) as store, handle_errors():
        try:
            flow = AuthorizeFlow(store, ws.state_dir, name, state_ttl=min(max(timeout, 60.0) + 60.0, 3600.0))
            # The URL holds the app id and the signed state, no secret; stderr keeps stdout for --json.
            _err.print("Open this URL in a browser and confirm, as a user with the Operator or Admin role:")
            _err.print(flow.url, soft_wrap=True)
            if not no_browser and not paste:
                webbrowser.open(flow.url)
            if paste:
                _err.print(
                    "Paste the whole address the browser landed on (with auth_code=... and state=...), then Enter:"
                )
                result = flow.complete(parse_callback(sys.stdin.readline()))
            else:
                _err.print(f"Waiting up to {timeout:.0f}s for TikTok to redirect to {flow.redirect_uri} ...")
                result = flow.run_loopback(
                    timeout, on_ignored=lambda note: _err.print(f"[yellow]warning:[/yellow] {escape(note)}")
                )
        except CredentialFlowError as exc:
            raise _flow_failed(exc, as_json) from None
    _show_authorized(result, as_json)


def _show_authorized(result: AuthorizeResult, as_json: bool) -> None:
    if as_json:
        print_json({"ok": True, **result.to_dict()})
        return
    _out.print(f"credential [bold]{result.credential}[/bold] authorized; the token reaches:")
    for advertiser_id in result.advertiser_ids:
        _out.print(f"  {advertiser_id}")
    if not result.advertiser_ids:
        _out.print("  (no advertisers: authorize as a user who has access to the ad accounts)")
    if result.previous_advertiser_ids and result.lost:
        _out.print(f"[yellow]no longer reached:[/yellow] {', '.join(result.lost)}")
    if result.token_expires_at is not None:
        _out.print(
            f"token expires {result.token_expires_at:%Y-%m-%d %H:%M} UTC; ttsync refreshes it before runs"
        )
    _out.print(f"next: ttsync credentials test {result.credential}")


@credentials_app.command("authorize")
def authorize(
    name: Annotated[str, typer.Argument(help="Credential (with app_id, app secret and redirect_uri).")],
    paste: PasteOption = False,
    no_browser: NoBrowserOption = False,
    timeout: TimeoutOption = 300.0,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Get an access token by OAuth and store it encrypted with the advertisers it reaches."""
    _authorize(
        name, paste=paste, no_browser=no_browser, timeout=timeout, workspace=workspace, as_json=as_json
    )


@credentials_app.command("reauthorize")
def reauthorize(
    name: Annotated[str, typer.Argument(help="Credential to authorize again (its settings are kept).")],
    paste: PasteOption = False,
    no_browser: NoBrowserOption = False,
    timeout: TimeoutOption = 300.0,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run the OAuth flow again for an existing credential (new token; advertisers gained/lost shown)."""
    _authorize(
        name, paste=paste, no_browser=no_browser, timeout=timeout, workspace=workspace, as_json=as_json
    )


@credentials_app.command("revoke")
def revoke(
    name: Annotated[str, typer.Argument(help="Credential whose token to revoke.")],
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Revoke the credential's token at TikTok, then forget the stored tokens."""
    with open_store(workspace) as store, handle_errors():
        try:
            lost = revoke_token(store, name)
        except CredentialFlowError as exc:
            raise _flow_failed(exc, as_json) from None
    if as_json:
        print_json({"ok": True, "credential": name, "advertiser_ids_revoked": lost})
        return
    _out.print(f"revoked the token of credential [bold]{name}[/bold]; stored tokens cleared")
    if lost:
        _out.print(f"advertisers that lost access: {', '.join(lost)}")
    _out.print(f"authorize again with: ttsync credentials authorize {name}")


def _show_report(report: CheckReport, as_json: bool) -> None:
    if as_json:
        print_json(report.to_dict())
    else:
        marks = {"ok": ("ok", "green"), "warning": ("warn", "yellow"), "problem": ("FAIL", "red")}
        for check in report.checks:
            label, color = marks.get(check.status, ("skip", "dim"))
            _out.print(
                f"[{color}]{label:<4}[/{color}] {escape(check.subject)} · {check.name}: {escape(check.detail)}"
            )
            if check.resolution is not None:
                resolution = resolution_for(check.resolution)
                _out.print(f"     [bold]{resolution.title}[/bold] ({check.resolution}). To fix:")
                for number, step in enumerate(check.steps, 1):
                    _out.print(f"       {number}. {escape(step)}")
        problems = len(report.problems)
        verdict = "[green]all good[/green]" if report.ok else f"[red]{problems} problem(s)[/red]"
        _out.print(f"{verdict} ({len(report.checks)} checks)")
    if not report.ok:
        raise typer.Exit(code=1)


@credentials_app.command("test")
def credential_check(
    name: Annotated[str, typer.Argument(help="Credential to check.")],
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check the token: present, not expired, accepted by TikTok; list the advertisers it reaches."""
    with open_store(workspace) as store, handle_errors():
        report = Doctor(store).credential(name)
    _show_report(report, as_json)


@destinations_app.command("test")
def destination_check(
    name: Annotated[str, typer.Argument(help="Destination to check.")],
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Test connection: token valid, advertiser(s) reachable, write permission, event set exists."""
    with open_store(workspace) as store, handle_errors():
        report = Doctor(store).destination(name)
    _show_report(report, as_json)


def doctor(workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
    """Check every credential and destination before a run; exit 1 when something needs fixing."""
    with open_store(workspace) as store, handle_errors():
        report = Doctor(store).everything()
    _show_report(report, as_json)


@webhook_app.command("deliver")
def webhook_deliver(
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Also resend failed ones.")] = False,
    attempts: Annotated[
        int,
        typer.Option("--attempts", min=1, max=10, help="Tries per notification before it counts as failed."),
    ] = 4,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Post notifications not yet delivered to $TTSYNC_WEBHOOK_URL."""
    from ttsync.notify import WEBHOOK_URL_ENV, deliver_pending, webhook_url_from_env

    if webhook_url_from_env() is None:
        raise fail(f"{WEBHOOK_URL_ENV} is not set: export the webhook URL first")
    with open_store(workspace) as store, handle_errors():
        counts = deliver_pending(store, attempts=attempts, include_failed=retry_failed)
    if as_json:
        print_json(counts)
    else:
        _out.print(f"delivered {counts['delivered']}, failed {counts['failed']}")
    if counts["failed"]:
        raise typer.Exit(code=1)


def register(app: typer.Typer) -> None:
    """Add `doctor` and `webhook` (the credential/destination subcommands attach on import)."""
    app.command("doctor")(doctor)
    app.add_typer(webhook_app, name="webhook")
