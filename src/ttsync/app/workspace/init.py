"""`ttsync init DIR`: create a workspace (config file, state folder, key, optional sample warehouse)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ttsync.app.workspace.layout import Workspace, secure_state
from ttsync.errors import WorkspaceError
from ttsync.events.examples import COMPLETE_PAYMENT_QUERY, SEED_EVENT_SET_ID
from ttsync.store import SECRET_KEY_ENV, STORE_URL_ENV, write_key_file

# Placeholders used when the emulator's demo seed is not available; `${VAR:-default}` lets the same
# file serve the emulator (defaults) and a real account (exported variables).
_FALLBACK_SEED: dict[str, Any] = {
    "app_id": "${TTSYNC_APP_ID}",
    "advertiser_ids": ["${TTSYNC_ADVERTISER_ID}"],
    "event_set_id": "${TTSYNC_EVENT_SET_ID}",
}

CONFIG_TEMPLATE = """\
# ttsync workspace configuration. Apply it with `ttsync apply -f ttsync.yaml`; write the store back
# with `ttsync export`. Full reference: docs/configuration.md.
# Secrets are never written here: a credential names the environment variables that hold them.
# `${{VAR}}` and `${{VAR:-default}}` are replaced from the environment when the file is loaded.
version: 1

retention:
  run_folders_days: 30                       # prune run folders of finished workflows after this many days

# Results back in the warehouse (docs/writeback.md): each workflow's outcomes as tables in the schema below
# of each orchestration's source database (or set `path:` / `url_env:`). `ttsync init --writeback` turns it on.
{wb}writeback:
{wb}  schema: ttsync

credentials:
  - name: sandbox
    # The emulator's demo app (`ttsync emulator serve`); for TikTok, your app id from the developer portal.
    app_id: "{app_id}"
    app_secret_env: TTSYNC_APP_SECRET        # export TTSYNC_APP_SECRET=...
    access_token_env: TTSYNC_ACCESS_TOKEN    # or obtain one with `ttsync credentials authorize sandbox`
    advertiser_ids: [{advertiser_list}]
    redirect_uri: http://127.0.0.1:8766/callback
    environment: sandbox                     # sandbox = the emulator; production = TikTok
    # sandbox_base_url: http://127.0.0.1:8765/open_api/v1.3/   # else $TTSYNC_SANDBOX_URL

sources:
  - name: warehouse
    kind: duckdb                             # duckdb | sqlalchemy | csv | parquet
    path: warehouse.duckdb                   # relative to this folder (`ttsync init --sample` creates it)
  # - name: postgres
  #   kind: sqlalchemy
  #   url_env: WAREHOUSE_URL                 # a URL with a password belongs in an environment variable

destinations:
  - name: tiktok-audiences
    kind: audience
    credential: sandbox
    environment: sandbox
    admin_only: false                        # true: only administrators may use it
    allow_restricted_pii: false              # true: users with restricted PII access may use it
    settings:
      advertiser_ids: [{advertiser_list}]    # one or several advertisers of one business center
      user_id_types: [EMAIL, PHONE, IDFA, AAID]   # EMAIL is the default and matches best
      delivery: partner                      # partner (segment API) | customer_file (file upload)
      mode: mirror                           # mirror | append | create | replace (customer_file only)
      remove_guard: 0.5                      # stop a run that would remove more than half the audience
      default_region: US                     # country for phone numbers written without +country code
      # audience_name: set on the orchestration or the data template (required at orchestration)
      # retention_days: 180                  # 1-365, customer_file only
      # strict_audience_name: true           # 10-70 letters, digits, spaces, - and _

  - name: tiktok-offline-events
    kind: offline_events
    credential: sandbox
    environment: sandbox
    settings:
      advertiser_id: "{advertiser_id}"
      event_source: offline                  # offline | web | crm
      timezone: UTC                          # zone of timestamps written without one
      # test_event_code: TEST12345

templates:
  - name: best-profile
    destination: tiktok-audiences
    description: Best profile (Merged_Customers)
    attribute_mapping:                       # source column -> TikTok field
      email: EMAIL
      phone: PHONE
      idfa: IDFA
      aaid: AAID
      country: REGION                        # each phone's country, for numbers in national format
    settings: {{}}                           # overrides of the destination's settings
    audience_name_template: "{{campaign}} - {{group}}"
    available_to_campaigns: true

  - name: store-purchases
    destination: tiktok-offline-events
    settings:
      event_set_id: "{event_set_id}"

orchestrations:
  - name: high-value-customers
    source: warehouse
    destination: tiktok-audiences
    template: best-profile
    key_column: amperity_id
    settings:
      audience_name: High value customers    # required at orchestration (or on the template)
    schedule: "0 6 * * *"                    # cron, stored for your scheduler
    query: |
      SELECT amperity_id, email, phone, country, idfa, aaid
      FROM Merged_Customers
      WHERE lifetime_value >= 500

  - name: store-purchases-last-7-days
    source: warehouse
    destination: tiktok-offline-events
    template: store-purchases
    # no key_column: an order has several item rows, so rows are keyed by position in the result
    # The example query of the offline-events guide ttsync follows (docs/events.md), repaired only where its
    # text was damaged. Its phone expression assumes US numbers; for international customers select
    # `mc.phone AS phone, mc.country AS country` and ttsync normalizes each phone in its own country.
    query: |
{events_query}

# Campaigns (docs/campaigns.md): segments combined, split into sub-audiences and a holdout.
segments:
  - name: high-value
    source: warehouse
    key_column: amperity_id
    query: |
      SELECT amperity_id, email, phone, country, idfa, aaid
      FROM Merged_Customers
      WHERE lifetime_value >= 500

  - name: recent-purchasers                  # bought in the last 30 days of the sample's history
    source: warehouse
    key_column: amperity_id
    query: |
      SELECT DISTINCT amperity_id
      FROM Unified_Itemized_Transactions
      WHERE order_datetime >= (SELECT max(order_datetime) FROM Unified_Itemized_Transactions) - INTERVAL 30 DAY

campaigns:
  - name: spring-offer
    audience: high-value
    exclusions: [recent-purchasers]
    holdout_percent: 10                      # a control group: sent nowhere, counted for measurement
    sub_audiences:                           # each person's group is stable across runs (keyed hash)
      - name: offer-a
        percent: 45
      - name: offer-b
        percent: 45
    destinations:
      - destination: tiktok-audiences
        template: best-profile               # names the audiences "spring-offer - offer-a", ...
    timing: recurring                        # recurring | one_time (a new dated audience per delivery)
    launch_date: 2026-01-01                  # nothing is sent before it
    learning_guard:                          # keep audiences stable while TikTok's delivery learns
      max_change_per_sync: 0.1
      stable_days: 7
"""


def render_config(seed_info: Mapping[str, Any] | None = None, *, writeback: bool = False) -> str:
    """The commented example `ttsync.yaml`, filled with the emulator seed's ids (demo seed by default);
    `writeback`: with the `writeback:` block on (else commented out)."""
    info = dict(seed_info) if seed_info is not None else _demo_seed_info()
    advertisers = [str(a) for a in info.get("advertiser_ids") or _FALLBACK_SEED["advertiser_ids"]]
    return CONFIG_TEMPLATE.format(
        wb="" if writeback else "# ",
        app_id=info.get("app_id", _FALLBACK_SEED["app_id"]),
        advertiser_list=", ".join(f'"{a}"' for a in advertisers),
        advertiser_id=advertisers[0],
        event_set_id=info.get("event_set_id", _FALLBACK_SEED["event_set_id"]),
        events_query=_indent(
            COMPLETE_PAYMENT_QUERY.replace(
                f"'{SEED_EVENT_SET_ID}'", f"'{info.get('event_set_id', _FALLBACK_SEED['event_set_id'])}'"
            ),
            "      ",
        ),
    )


def _indent(text: str, prefix: str) -> str:
    return "".join(prefix + line if line.strip() else line for line in text.splitlines(keepends=True))


def _demo_seed_info() -> dict[str, Any]:
    # The emulator's demo seed is deterministic; use its ids so the example works against it unchanged.
    # Imported lazily: the workspace must not require the emulator package to be importable.
    try:
        from ttsync.emulator.seed import build_state

        info = getattr(build_state("demo"), "seed_info", None)
    except Exception:  # any failure means "no demo ids": fall back to ${VAR} placeholders
        info = None
    return dict(info) if isinstance(info, dict) else dict(_FALLBACK_SEED)


@dataclass
class InitResult:
    """What `init_workspace` created."""

    workspace: Workspace
    created: list[str] = field(default_factory=list)
    sample_counts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {"workspace": str(self.workspace.root), "created": self.created, "sample": self.sample_counts}


def init_workspace(
    directory: Path,
    *,
    sample: bool = False,
    rows: int = 10_000,
    seed: int = 7,
    force: bool = False,
    seed_info: Mapping[str, Any] | None = None,
    writeback: bool = False,
) -> InitResult:
    """Create a workspace in `directory`; refuse a non-empty folder unless `force`. `writeback`: the config
    file turns write-back on (docs/writeback.md)."""
    workspace = Workspace(directory.expanduser().resolve())
    if workspace.root.exists() and not workspace.root.is_dir():
        raise WorkspaceError(f"{workspace.root} is a file, not a folder: choose another path")
    if workspace.root.exists() and any(workspace.root.iterdir()) and not force:
        raise WorkspaceError(
            f"{workspace.root} is not empty: choose an empty folder, or pass --force to write the workspace "
            "files into it (an existing key file and store are kept)"
        )
    result = InitResult(workspace)
    secure_state(workspace.state_dir)
    workspace.config_path.write_text(render_config(seed_info, writeback=writeback), encoding="utf-8")
    result.created.append(str(workspace.config_path))
    if not os.environ.get(SECRET_KEY_ENV) and not workspace.key_file.exists():
        write_key_file(workspace.key_file)
        result.created.append(str(workspace.key_file))
    store = workspace.open_store()
    store.close()
    if os.environ.get(STORE_URL_ENV) is None:
        result.created.append(str(workspace.state_dir / "ttsync.db"))
    if sample:
        from ttsync.sample import generate

        result.sample_counts = generate(workspace.sample_warehouse, rows=rows, seed=seed)
        result.created.append(str(workspace.sample_warehouse))
    return result
