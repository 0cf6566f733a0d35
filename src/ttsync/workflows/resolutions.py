"""The resolution catalog: for every failure a user can meet, what happened, why, how to fix it, and the action
that continues the workflow. Data in one place; `docs/resolutions.md` is checked against it by a test.

The first three entries follow the product pages ttsync is modelled on (seeds: "Advertiser not found",
"Invalid credentials", "Missing advertiser permissions"), in our own words.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Action(enum.StrEnum):
    """What continues a failed workflow once the cause is fixed."""

    RETRY_TASK = "retry"  # `ttsync workflows retry ID [--task T]`: run the failed task again
    RESTART_WORKFLOW = "restart"  # `ttsync workflows restart ID`: start over from the first task
    RESOLVE = "resolve"  # `ttsync workflows resolve ID`: re-check the fixed configuration, continue


@dataclass(frozen=True)
class Resolution:
    """One catalog entry."""

    key: str
    title: str
    what: str
    why: str
    steps: tuple[str, ...]
    action: Action
    retried_automatically: bool = False

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly form (for `--json` output and notifications)."""
        return {
            "key": self.key,
            "title": self.title,
            "what": self.what,
            "why": self.why,
            "steps": list(self.steps),
            "action": self.action.value,
            "retried_automatically": self.retried_automatically,
        }


_CATALOG: tuple[Resolution, ...] = (
    Resolution(
        key="advertiser_not_found",
        title="Advertiser not found",
        what="TikTok does not know the advertiser account this destination sends to, or it is not approved.",
        why=(
            "The advertiser id in the destination, data template or orchestration is wrong, or the account "
            "was deleted or is not approved in TikTok Business Center."
        ),
        steps=(
            "Check the advertiser id(s): `ttsync destinations show NAME`.",
            "In TikTok Business Center, check that the ad account exists, is approved, and has that id.",
            "Fix the id in ttsync.yaml and run `ttsync apply -f ttsync.yaml`.",
            "Run `ttsync workflows resolve ID`.",
        ),
        action=Action.RESOLVE,
    ),
    Resolution(
        key="invalid_credentials",
        title="Invalid credentials",
        what="TikTok refused the credential's access token (missing, unknown, revoked, or for another app).",
        why="The authorization was revoked or cancelled in TikTok, or the token or app id was mistyped.",
        steps=(
            "Check the credential: `ttsync credentials test NAME`.",
            "Authorize again: `ttsync credentials reauthorize NAME` (or update the token's environment "
            "variable and `ttsync apply`).",
            "Run `ttsync workflows resolve ID`.",
        ),
        action=Action.RESOLVE,
    ),
    Resolution(
        key="missing_advertiser_permissions",
        title="Missing advertiser permissions",
        what="The TikTok user behind the credential may read the ad account but not change its audiences or "
        "events.",
        why=(
            "Managing audiences and sending events needs the Admin or Operator role on the ad account; "
            "the Analyst role is read-only."
        ),
        steps=(
            "In TikTok Business Center, give the user who authorized ttsync the Operator role (recommended) "
            "or Admin on every advertiser of the destination.",
            "Or authorize again as a user who has it: `ttsync credentials reauthorize NAME`.",
            "Run `ttsync workflows resolve ID`.",
        ),
        action=Action.RESOLVE,
    ),
    Resolution(
        key="token_expired",
        title="Access token expired",
        what="The credential's access token has expired and could not be refreshed.",
        why="Tokens that expire come with a refresh token; it was missing, expired or refused.",
        steps=(
            "Authorize again: `ttsync credentials reauthorize NAME`.",
            "Run `ttsync workflows resolve ID`.",
        ),
        action=Action.RESOLVE,
    ),
    Resolution(
        key="audience_limit_reached",
        title="Audience limit reached",
        what="The advertiser already has 400 custom audiences, TikTok's limit, so ttsync cannot create one.",
        why="Old or one-time audiences accumulate (mode `create` makes a new audience per delivery).",
        steps=(
            "In TikTok Ads Manager (Assets > Audiences), delete audiences that are no longer used. ttsync "
            "never deletes audiences itself.",
            "Consider mode `mirror` instead of `create` so one audience is kept up to date.",
            "Run `ttsync workflows resolve ID`.",
        ),
        action=Action.RESOLVE,
    ),
    Resolution(
        key="audience_not_editable",
        title="Audience too small or not editable",
        what="TikTok refused to change the audience: it is below 1,000 people, still processing, or expired.",
        why=(
            "Customer-file audiences cannot be updated while they would hold fewer than 1,000 people, and "
            "an audience that is being updated refuses further changes until it is done."
        ),
        steps=(
            "Check the audience size with `ttsync run ORCHESTRATION --plan`; widen the segment if it is "
            "under 1,000 people.",
            "If the audience is still processing, wait and retry: `ttsync workflows retry ID`.",
        ),
        action=Action.RETRY_TASK,
    ),
    Resolution(
        key="audience_too_small",
        title="Audience too small or no matches",
        what=(
            "TikTok shows the customer-file audience at size 0 and gives no reason (its error message is "
            "empty): fewer than 1,000 of the people sent were matched."
        ),
        why=(
            "TikTok keeps a customer-file audience that ends with fewer than 1,000 matched people at size 0 and "
            "refuses every later update. Either the segment is small, or its identifiers did not match TikTok "
            "users (for example phones without a country code)."
        ),
        steps=(
            "Check the segment's size and match report with `ttsync run ORCHESTRATION --plan`.",
            "Widen the segment to at least 1,000 people, or fix the identifier columns the match report flags.",
            "Then set the destination's mode to `create` for a new audience, or switch it to `delivery: partner`, "
            "which has no minimum, and run `ttsync workflows restart ID`.",
        ),
        action=Action.RESTART_WORKFLOW,
    ),
    Resolution(
        key="audience_disappeared",
        title="Audience gone during the run",
        what="The audience this workflow verified no longer exists in TikTok (or has expired), so its changes "
        "cannot be sent.",
        why=(
            "It was deleted in TikTok Ads Manager or expired while the workflow ran, or the sandbox emulator "
            "was restarted without `--state` and forgot it. Retrying the upload cannot bring it back."
        ),
        steps=(
            "Run `ttsync workflows restart ID`: the workflow verifies the audience again, creates a new one "
            "and uploads everyone to it.",
        ),
        action=Action.RESTART_WORKFLOW,
    ),
    Resolution(
        key="audience_not_ready",
        title="Audience not ready yet",
        what="The new audience is still being processed by TikTok and does not accept members yet.",
        why="TikTok processes a newly created audience for a while before it accepts mappings.",
        steps=("Wait a few minutes, then `ttsync workflows retry ID`.",),
        action=Action.RETRY_TASK,
        retried_automatically=True,
    ),
    Resolution(
        key="event_set_not_found",
        title="Event set not found",
        what="The offline event set id does not exist on the advertiser.",
        why="The event set id in the destination, template or orchestration is wrong, or the set was deleted.",
        steps=(
            "In TikTok Events Manager, open Offline > Manage and copy the event set id under its name.",
            "Fix `event_set_id` in ttsync.yaml and run `ttsync apply -f ttsync.yaml`.",
            "Run `ttsync workflows resolve ID`.",
        ),
        action=Action.RESOLVE,
    ),
    Resolution(
        key="invalid_event_columns",
        title="Event query columns do not fit",
        what="The offline-event query lacks a required column (email or phone, event, event_id) or returns a "
        "column ttsync cannot send.",
        why="Columns are matched by name to TikTok's offline-event parameters (see docs/events.md), or through "
        "the data template's attribute_mapping.",
        steps=(
            "Compare the query's columns with the parameter table in docs/events.md.",
            "Rename the columns in the query, or map them in the data template's attribute_mapping; set "
            "`derive_event_id: true` if the warehouse has no event id.",
            "`ttsync apply -f ttsync.yaml`, then `ttsync workflows resolve ID`.",
        ),
        action=Action.RESOLVE,
    ),
    Resolution(
        key="large_removal_blocked",
        title="Large removal blocked",
        what="This run would remove a larger share of the audience than the destination's remove guard allows.",
        why=(
            "A broken query or an empty source table looks like everyone left the segment; the guard stops "
            "the run before TikTok loses the audience."
        ),
        steps=(
            "Check the plan: `ttsync run ORCHESTRATION --plan` shows the adds and removes.",
            "If the query is wrong, fix it and run `ttsync workflows restart ID`.",
            "If the removal is intended, raise `remove_guard` on the destination (or run once with "
            "`--allow-large-removal`) and run `ttsync workflows resolve ID`.",
        ),
        action=Action.RESOLVE,
    ),
    Resolution(
        key="replace_in_progress",
        title="Replace already in progress",
        what="TikTok is still applying an earlier update to this customer-file audience.",
        why="A customer-file audience accepts one update at a time.",
        steps=("Wait until the audience shows as ready in TikTok, then `ttsync workflows retry ID`.",),
        action=Action.RETRY_TASK,
        retried_automatically=True,
    ),
    Resolution(
        key="rate_limited",
        title="Rate limited",
        what="TikTok answered that the app sends too many requests (code 40100).",
        why="Another job shares the app's request budget, or the configured rate is above the app's tier.",
        steps=(
            "ttsync already slowed down and retried; the run stopped because the limit persisted.",
            "Lower `qps` for the credential, or run fewer jobs on the same app at once.",
            "Run `ttsync workflows retry ID`.",
        ),
        action=Action.RETRY_TASK,
        retried_automatically=True,
    ),
    Resolution(
        key="tiktok_unavailable",
        title="TikTok unavailable",
        what="TikTok answered with system errors or did not answer, and retries ran out.",
        why="A TikTok outage, maintenance, or a network problem between ttsync and TikTok.",
        steps=("Nothing TikTok confirmed will be sent twice; wait and run `ttsync workflows retry ID`.",),
        action=Action.RETRY_TASK,
        retried_automatically=True,
    ),
    Resolution(
        key="object_not_found",
        title="TikTok object not found",
        what="TikTok answered that an object ttsync referred to (an audience, an event set, an upload) does not "
        "exist.",
        why="It was deleted in TikTok Ads Manager, or an id in the configuration is wrong.",
        steps=(
            "Check the ids in `ttsync destinations show NAME` against TikTok Ads Manager.",
            "Fix the configuration and `ttsync apply -f ttsync.yaml`; an audience ttsync created is recreated "
            "by `ttsync workflows restart ID`.",
        ),
        action=Action.RESOLVE,
    ),
    Resolution(
        key="invalid_rows",
        title="Invalid rows",
        what="Some rows were rejected (bad identifiers, events outside the time window, fields TikTok refused).",
        why="The warehouse holds values TikTok cannot use; the good rows were sent.",
        steps=(
            "See the rejected rows by reason: `ttsync workflows show ID` (row keys and reason codes only).",
            "Fix the data or the query; the next run sends the corrected rows.",
        ),
        action=Action.RESOLVE,
    ),
    Resolution(
        key="invalid_request",
        title="Request refused by TikTok",
        what="TikTok refused a request as invalid; its message is shown with the workflow.",
        why="A setting does not fit TikTok's rules (for example a name or an id in the wrong form).",
        steps=(
            "Read TikTok's message in `ttsync workflows show ID`.",
            "Fix the setting in ttsync.yaml, `ttsync apply -f ttsync.yaml`, then `ttsync workflows resolve ID`.",
        ),
        action=Action.RESOLVE,
    ),
    Resolution(
        key="source_query_failed",
        title="Source query failed",
        what="The warehouse refused the orchestration's query; the database's message is shown with the "
        "workflow.",
        why="A syntax error, a column or function the warehouse does not know, or a value the query cannot "
        "convert (the message names it; quoted values are hidden).",
        steps=(
            "Read the database's message in `ttsync workflows show ID`.",
            "Try the query without sending anything: `ttsync run ORCHESTRATION --plan` shows the same message.",
            "Fix `query` of the orchestration in ttsync.yaml and run `ttsync apply -f ttsync.yaml`.",
            "Run `ttsync workflows restart ID`.",
        ),
        action=Action.RESTART_WORKFLOW,
    ),
    Resolution(
        key="source_not_found",
        title="Source table or file not found",
        what="The source's file, or a table or file the query reads, does not exist.",
        why="The source's `path` is wrong (relative paths start at the workspace folder), the file was "
        "moved, or the query names a table the warehouse does not have.",
        steps=(
            "Check the source: `ttsync sources show NAME` and the file or table the message names.",
            "Fix `path` of the source or the table in the query, then `ttsync apply -f ttsync.yaml`.",
            "Run `ttsync workflows resolve ID`.",
        ),
        action=Action.RESOLVE,
    ),
    Resolution(
        key="source_unreachable",
        title="Source unreachable",
        what="ttsync could not connect to the warehouse, or the warehouse refused its login.",
        why="The database server is down or unreachable from here, the host or port is wrong, the password "
        "or user in the URL's environment variable is wrong, or another process holds the DuckDB file.",
        steps=(
            "Read the database's message in `ttsync workflows show ID`.",
            "Check the source's URL and its environment variables (`ttsync sources show NAME`), and that the "
            "server accepts connections from this machine.",
            "Run `ttsync workflows retry ID`.",
        ),
        action=Action.RETRY_TASK,
    ),
    Resolution(
        key="workflow_running",
        title="Another workflow is running",
        what="A workflow of this orchestration (or of its TikTok audience) is running in another process; "
        "ttsync ran nothing (exit code 3).",
        why="Only one workflow may write to an audience at a time: two would each send the whole plan and "
        "undo each other's removes. The running one holds a lease in the store, renewed while it runs.",
        steps=(
            "Wait for the running workflow named in the message (`ttsync workflows show ID`), then run again.",
            "If its process is gone, nothing is needed: a lease whose holder died on this machine, or whose "
            "heartbeat is older than $TTSYNC_LEASE_TIMEOUT_SECONDS (120 s), is taken over by the next run.",
        ),
        action=Action.RETRY_TASK,
    ),
    Resolution(
        key="writeback_failed",
        title="Write-back failed",
        what="The sync succeeded, but its results could not be written to the write-back target "
        "(docs/writeback.md); the workflow ended `succeeded_with_warnings`.",
        why="The target database is unreachable, locked by another process (a DuckDB file open elsewhere), "
        "its user may not create or write tables in the schema, or `writeback` in ttsync.yaml names a "
        "target that does not work.",
        steps=(
            "Read the warning in `ttsync workflows show ID`: it names the target's error.",
            "Fix the target (close the other DuckDB process, grant CREATE and INSERT on the schema, or fix "
            "`writeback` in ttsync.yaml and `ttsync apply -f ttsync.yaml`).",
            "Run `ttsync workflows retry ID`: only the write-back runs again; nothing is sent to TikTok.",
        ),
        action=Action.RETRY_TASK,
    ),
    Resolution(
        key="workflow_superseded",
        title="Workflow superseded",
        what="This workflow did not finish, and a newer run of its orchestration replaced it: it cannot be "
        "retried, resolved or restarted (exit code 4).",
        why="Its plan was made against an older state of the audience; sending it now could re-add people the "
        "newer run removed. Whatever it may have sent is reconciled by the next run of the orchestration.",
        steps=("Run the orchestration again: `ttsync run ORCHESTRATION`.",),
        action=Action.RESTART_WORKFLOW,
    ),
    Resolution(
        key="run_cancelled",
        title="Run cancelled",
        what="Someone cancelled this run (in the server's API or web pages); it stopped at the next batch "
        "boundary, after the last batch TikTok confirmed.",
        why="Cancelling never cuts a batch in half: what was sent is checkpointed, so the workflow can go on "
        "later from where it stopped.",
        steps=("Retry it when you want it to finish: `ttsync workflows retry ID` (or Retry in the server).",),
        action=Action.RETRY_TASK,
    ),
    Resolution(
        key="internal_error",
        title="Unexpected error",
        what="ttsync failed in a way it does not recognise; the error type is stored with the workflow.",
        why="A bug in ttsync, or an environment problem such as a full disk.",
        steps=(
            "Check free disk space in the workspace's state folder.",
            "Run `ttsync workflows retry ID`; if it fails again, report it with `ttsync workflows show ID --json`.",
        ),
        action=Action.RETRY_TASK,
    ),
    Resolution(
        key="configuration_error",
        title="Configuration incomplete",
        what="A required setting is missing or invalid; the message names it.",
        why="Settings may be given on the destination, the data template or the orchestration.",
        steps=(
            "Set the named setting in ttsync.yaml and run `ttsync apply -f ttsync.yaml`.",
            "Run `ttsync workflows resolve ID`.",
        ),
        action=Action.RESOLVE,
    ),
)

CATALOG: dict[str, Resolution] = {entry.key: entry for entry in _CATALOG}


def resolution_for(key: str | None) -> Resolution:
    """The catalog entry for a resolution key; unknown keys fall back to `invalid_request`."""
    if key and key in CATALOG:
        return CATALOG[key]
    return CATALOG["invalid_request"]


_DOC_HEAD = """# Resolutions

Every failure ttsync can meet in a workflow is classified into one entry of this catalog. `ttsync workflows show ID`
prints the entry of a failed workflow; notifications carry it too. This page is generated from the catalog
(`src/ttsync/workflows/resolutions.py`, `python -m ttsync.workflows.resolutions > docs/resolutions.md`), and a test
checks that it is current.

Actions that continue a workflow:

- `retry` — `ttsync workflows retry ID [--task T]` runs the failed task again (or from an earlier task `T`; a
  task past the failed one is refused, exit 2, since it would skip the failed task).
- `restart` — `ttsync workflows restart ID` starts the workflow over from its first task.
- `resolve` — `ttsync workflows resolve ID` re-checks the (fixed) configuration, then continues from the last checkpoint.

A resumed workflow never re-sends what TikTok already confirmed: audience batches are checkpointed as TikTok
confirms them, and offline events TikTok accepted are kept in the ledger.
"""


def render_markdown() -> str:
    """docs/resolutions.md: a table of every entry, then one section per entry."""
    lines = [_DOC_HEAD, "| key | title | action | retried automatically first |", "|---|---|---|---|"]
    for entry in CATALOG.values():
        automatic = "yes" if entry.retried_automatically else "no"
        lines.append(f"| `{entry.key}` | {entry.title} | `{entry.action.value}` | {automatic} |")
    lines.append("")
    for entry in CATALOG.values():
        lines += [f"## {entry.title}", "", f"Key: `{entry.key}` · action: `{entry.action.value}`", ""]
        lines += [f"**What happened.** {entry.what}", "", f"**Why.** {entry.why}", "", "**To fix it:**", ""]
        lines += [f"{i}. {step}" for i, step in enumerate(entry.steps, 1)]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render_markdown(), end="")
