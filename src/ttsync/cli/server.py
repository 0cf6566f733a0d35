"""`ttsync serve`, `ttsync users ...` and `ttsync audit`: the team server and its accounts."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from ttsync.app import accounts, audit
from ttsync.app.workspace.layout import Workspace
from ttsync.cli._common import JsonOption, WorkspaceOption, fail, handle_errors, open_store, print_json
from ttsync.server.app import ServerConfig, ServeRefusedError, serve
from ttsync.store.accounts import UserRecord

users_app = typer.Typer(help="Users of the team server (`ttsync serve`).", no_args_is_help=True)
UserName = Annotated[str, typer.Argument(help="The user's login name.")]
LOCAL_ADMIN = "cli"  # the CLI acts as a local admin on its own workspace; the audit log names it so


def register(app: typer.Typer) -> None:
    """Add `serve`, `users` and `audit`."""
    app.command("serve")(serve_command)
    app.add_typer(users_app, name="users")
    app.command("audit")(audit_command)


def serve_command(
    workspace: WorkspaceOption = None,
    host: Annotated[
        str, typer.Option(help="Address to listen on (loopback unless TLS is terminated in front).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8700,
    workers: Annotated[int, typer.Option(min=1, max=32, help="Run worker processes.")] = 2,
    http_workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=16,
            help="HTTP worker processes (API and pages); the scheduler stays one, in the main process.",
        ),
    ] = 1,
    behind_proxy: Annotated[
        bool,
        typer.Option(
            "--behind-proxy",
            help="TLS is terminated by a reverse proxy in front: allow a non-loopback host, mark cookies Secure.",
        ),
    ] = False,
    insecure_public: Annotated[
        bool,
        typer.Option(
            "--insecure-public",
            help="Allow a non-loopback host without TLS (passwords cross the network in clear).",
        ),
    ] = False,
    timezone: Annotated[str, typer.Option(help="Time zone of the cron schedules (IANA name).")] = "UTC",
    catch_up: Annotated[
        str, typer.Option(help="Runs missed while no server ran: skip, or latest (run one).")
    ] = "skip",
    tick: Annotated[float, typer.Option(min=0.2, help="Seconds between scheduler ticks.")] = 10.0,
    as_json: JsonOption = False,
) -> None:
    """Start the team server: REST API (/api/docs), scheduler and run workers."""
    config = ServerConfig(
        host=host, port=port, workers=workers, http_workers=http_workers, behind_proxy=behind_proxy, insecure_public=insecure_public,
        timezone=timezone, catch_up=catch_up, tick_seconds=tick,
    )  # fmt: skip
    with handle_errors():
        try:
            serve(Workspace.discover(workspace), config)
        except ServeRefusedError as exc:
            raise fail(str(exc)) from None


@users_app.command("add")
def users_add(
    name: UserName,
    role: Annotated[str, typer.Option(help="admin, operator or viewer.")],
    restricted_pii: Annotated[
        bool, typer.Option("--restricted-pii", help="Hide destinations that do not allow restricted PII.")
    ] = False,
    password_env: Annotated[
        str | None, typer.Option(help="Read the password from this environment variable (scripts).")
    ] = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add a user (the password is asked for, or read from --password-env)."""
    if password_env:
        password = os.environ.get(password_env)
        if not password:
            raise fail(
                f"${password_env} is not set: export the password in it, or leave --password-env out to be asked"
            )
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    with open_store(workspace) as store:
        user = accounts.add_user(
            store, name, password, role, restricted_pii=restricted_pii, actor=LOCAL_ADMIN
        )
    _print_user(user, as_json)


@users_app.command("list")
def users_list(workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
    """List users."""
    with open_store(workspace) as store:
        users = accounts.list_users(store)
    if as_json:
        print_json([_user_dict(u) for u in users])
        return
    for user in users:
        flags = (" restricted-pii" if user.restricted_pii else "") + (" disabled" if user.disabled else "")
        typer.echo(f"{user.name}\t{user.role}{flags}")


@users_app.command("set-role")
def users_set_role(
    name: UserName,
    role: Annotated[str, typer.Argument(help="admin, operator or viewer.")],
    restricted_pii: Annotated[
        bool | None,
        typer.Option("--restricted-pii/--no-restricted-pii", help="Change the restricted-PII mark."),
    ] = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Change a user's role."""
    with open_store(workspace) as store:
        user = accounts.set_role(store, name, role, actor=LOCAL_ADMIN, restricted_pii=restricted_pii)
    _print_user(user, as_json)


@users_app.command("disable")
def users_disable(
    name: UserName,
    enable: Annotated[bool, typer.Option("--enable", help="Enable the user again instead.")] = False,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Disable a user (their sessions and API tokens stop working)."""
    with open_store(workspace) as store:
        user = accounts.set_disabled(store, name, not enable, actor=LOCAL_ADMIN)
    _print_user(user, as_json)


def audit_command(
    workspace: WorkspaceOption = None,
    limit: Annotated[int, typer.Option(min=1, max=10000, help="How many entries.")] = 50,
    actor: Annotated[str | None, typer.Option(help="Only this user's entries.")] = None,
    action: Annotated[
        str | None, typer.Option(help="Only this action, e.g. run.run or credential.save.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Show the audit log, newest first."""
    with open_store(workspace) as store:
        items = audit.entries(store, limit=limit, actor=actor, action=action)
    if as_json:
        print_json([item.model_dump(mode="json") for item in items])
        return
    for item in items:
        typer.echo(f"{item.at:%Y-%m-%d %H:%M:%S}  {item.actor:<12} {item.action:<22} {item.target}")


def _user_dict(user: UserRecord) -> dict[str, object]:
    data: dict[str, object] = user.model_dump(mode="json", exclude={"password_hash", "failed_logins"})
    return data


def _print_user(user: UserRecord, as_json: bool) -> None:
    if as_json:
        print_json(_user_dict(user))
    else:
        typer.echo(
            f"{user.name}: {user.role}"
            + (" (restricted PII)" if user.restricted_pii else "")
            + (" disabled" if user.disabled else "")
        )
