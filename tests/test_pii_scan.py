"""No raw email or phone of the sample warehouse reaches the workspace state or anything ttsync prints.

Three scenarios, each through the real CLI in a subprocess, then every file under each workspace's `state/`
is decoded (SQLite tables row by row and their raw pages, Parquet read with pyarrow, everything else as text)
and searched, with everything the commands printed, for the warehouse's raw emails and phone numbers:

(a) the quickstart (sample warehouse, its own emulator, two audience syncs, one events run);
(b) runs whose query fails on a value (`strptime` of an email, an email cast to JSON): `run --plan`, `run`,
    both also with `--json`, then `workflows show` and `notifications`;
(c) an audience keyed by email (`key_column: email`) and an events run whose key column and `event_id` are
    emails, sent to the emulator (which must not receive raw emails as event ids either).
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from ttsync.app.workspace.apply import apply_config
from ttsync.app.workspace.init import init_workspace
from ttsync.app.workspace.layout import Workspace, load_config
from ttsync.config.models import Orchestration
from ttsync.emulator.embedded import EmulatorServer
from ttsync.store import repos

pytestmark = pytest.mark.slow

_EMAIL = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_PHONE = re.compile(r"(?<![0-9A-Za-z])\+?\(?\d(?:[\s().-]{0,3}\d){6,}(?![0-9A-Za-z])")

# The data template maps email, phone, country, idfa and aaid: every query returns them.
FAILING_QUERIES = {
    "leaky-strptime": "SELECT amperity_id, email, phone, country, idfa, aaid, strptime(email, '%Y-%m-%d') AS "
    "signup FROM Merged_Customers",
    "leaky-json": "SELECT amperity_id, CAST(CAST(email AS JSON) AS VARCHAR) AS email, phone, country, idfa, aaid "
    "FROM Merged_Customers",
}
EMAIL_KEYED_AUDIENCE = "SELECT email, phone, country, idfa, aaid FROM Merged_Customers WHERE email LIKE '%@%' AND email = trim(email)"
EMAIL_EVENTS = """
SELECT mc.email AS customer_email, mc.email AS email, mc.phone AS phone, 'CompletePayment' AS event,
       mc.email AS event_id, CAST(now() - INTERVAL 2 HOUR AS TIMESTAMP) AS timestamp, 'USD' AS currency,
       10.0 AS value
FROM Merged_Customers mc
WHERE mc.email LIKE '%@%'
LIMIT 300
"""


def raw_values(warehouse: Path) -> tuple[set[str], set[str]]:
    """(emails lowercased, phones as digits) of every email- or phone-named column of the warehouse."""
    emails: set[str] = set()
    phones: set[str] = set()
    with duckdb.connect(str(warehouse), read_only=True) as con:
        columns = con.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE column_name ILIKE '%email%' OR column_name ILIKE '%phone%'"
        ).fetchall()
        for table, column in columns:
            values = con.execute(f'SELECT DISTINCT CAST("{column}" AS VARCHAR) FROM "{table}"').fetchall()
            for (value,) in values:
                if not value:
                    continue
                emails.update(m.lower() for m in _EMAIL.findall(value))
                digits = re.sub(r"\D", "", value)
                if "phone" in column.lower() and len(digits) >= 7:
                    phones.add(digits)
    return emails, phones


def decoded_state(state: Path) -> dict[str, str]:
    """Every file under `state`, decoded to text: SQLite tables row by row plus the raw file, Parquet rows and
    footer metadata plus the raw file, everything else as text."""
    texts: dict[str, str] = {}
    for path in sorted(p for p in state.rglob("*") if p.is_file()):
        data = path.read_bytes()
        parts = [data.decode("utf-8", "replace"), data.decode("latin-1")]
        if data.startswith(b"SQLite format 3"):
            con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
                for table in tables:
                    parts.extend(repr(row) for row in con.execute(f'SELECT * FROM "{table}"'))
            finally:
                con.close()
        elif data.startswith(b"PAR1"):
            parts.append(repr(pq.read_table(path).to_pylist()))
            parts.append(repr(pq.read_metadata(path).metadata))
        texts[str(path.relative_to(state))] = "\n".join(parts)
    return texts


def leaks(text: str, emails: set[str], phones: set[str]) -> set[str]:
    """Raw emails and phones of the warehouse found in `text`."""
    found = {m.lower() for m in _EMAIL.findall(text)} & emails
    found |= {re.sub(r"\D", "", m) for m in _PHONE.findall(text)} & phones
    return found


def assert_no_leaks(states: list[Path], outputs: list[str], emails: set[str], phones: set[str]) -> None:
    assert len(emails) > 500
    assert len(phones) > 500
    problems: dict[str, set[str]] = {}
    for state in states:
        files = decoded_state(state)
        assert any(name.endswith(".parquet") for name in files)
        assert "ttsync.db" in files
        for name, text in files.items():
            if found := leaks(text, emails, phones):
                problems[f"{state}/{name}"] = found
    for i, output in enumerate(outputs):
        if found := leaks(output, emails, phones):
            problems[f"output #{i}: {output[:300]!r}"] = found
    assert not problems, {k: sorted(v)[:3] for k, v in problems.items()}


def cli(args: list[str], env: dict[str, str], outputs: list[str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "ttsync", *args], env=env, capture_output=True, text=True, timeout=240
    )
    outputs.append(result.stdout + "\n" + result.stderr)
    return result


def test_quickstart_failing_queries_and_email_keys_leave_no_raw_pii(
    emulator: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outputs: list[str] = []
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("TTSYNC_")}

    # (a) the quickstart, plain output
    quick = cli(["quickstart", "--rows", "1500", "--dir", str(tmp_path / "qs")], base_env, outputs)
    assert quick.returncode == 0, quick.stderr[-2000:]

    # A workspace on the test's emulator for (b) and (c).
    seed = emulator.seed
    env = base_env | {
        "TTSYNC_APP_SECRET": seed.app_secret,
        "TTSYNC_ACCESS_TOKEN": seed.operator_token,
        "TTSYNC_SANDBOX_URL": emulator.base_url,
        "COLUMNS": "200",
    }
    for key, value in env.items():
        if key.startswith("TTSYNC_"):
            monkeypatch.setenv(key, value)
    monkeypatch.delenv("TTSYNC_STORE_URL", raising=False)
    monkeypatch.delenv("TTSYNC_SECRET_KEY", raising=False)
    ws = init_workspace(tmp_path / "ws", sample=True, rows=1_500, seed_info=seed.to_dict()).workspace
    with ws.open_store() as store:
        apply_config(store, load_config(ws.config_path))
        audience = repos.get_orchestration(store, "high-value-customers")
        events = repos.get_orchestration(store, "store-purchases-last-7-days")
        for name, query in FAILING_QUERIES.items():
            repos.save_orchestration(store, audience.model_copy(update={"name": name, "query": query}))
        repos.save_orchestration(
            store,
            audience.model_copy(
                update={"name": "by-email", "query": EMAIL_KEYED_AUDIENCE, "key_column": "email"}
            ),
        )
        repos.save_orchestration(
            store,
            Orchestration.model_validate(
                events.model_dump()
                | {"name": "events-by-email", "query": EMAIL_EVENTS, "key_column": "customer_email"}
            ),
        )
    workspace = ["--workspace", str(ws.root)]

    # (b) queries that fail on a value: every way the error is shown or stored
    for name in FAILING_QUERIES:
        for extra in ([], ["--json"]):
            planned = cli(["run", name, "--plan", *workspace, *extra], env, outputs)
            assert planned.returncode != 0
            assert "query failed" in planned.stdout + planned.stderr
        ran = cli(["run", name, *workspace, *(["--json"] if name == "leaky-json" else [])], env, outputs)
        assert ran.returncode != 0
    with Workspace(ws.root).open_store() as store:
        failed = repos.list_workflows(store, limit=50)
    assert len(failed) == 2
    assert all(w.state == "failed" for w in failed)
    for workflow in failed:
        cli(["workflows", "show", workflow.id, *workspace, "--json"], env, outputs)
    cli(["workflows", "show", failed[0].id, *workspace], env, outputs)
    cli(["notifications", *workspace], env, outputs)
    cli(["workflows", "list", *workspace, "--json"], env, outputs)

    # (c) an audience keyed by email; events keyed by email with emails as event ids, twice
    keyed = cli(["run", "by-email", *workspace], env, outputs)
    assert keyed.returncode == 0, keyed.stdout[-2000:] + keyed.stderr[-2000:]
    delivered = []
    for _ in range(2):
        sent = cli(["run", "events-by-email", *workspace, "--json"], env, outputs)
        assert sent.returncode == 0, sent.stdout[-2000:] + sent.stderr[-2000:]
        delivered.append(json.loads(sent.stdout)["counts"]["deliver"])
    assert delivered[0]["sent"] > 250
    # The keyed hash is stable: the second run's ledger lookup recognises every event.
    assert delivered[1]["sent"] == 0
    assert delivered[1]["duplicate_skipped"] == delivered[0]["sent"]

    emails, phones = raw_values(ws.sample_warehouse)
    qs_emails, qs_phones = raw_values(tmp_path / "qs" / "warehouse.duckdb")
    assert_no_leaks(
        [tmp_path / "qs" / "state", ws.state_dir], outputs, emails | qs_emails, phones | qs_phones
    )
    assert any("hk:" in text for text in decoded_state(ws.state_dir).values())
    # TikTok (the emulator) got keyed hashes as event ids, not emails.
    received = emulator.admin.events(seed.event_set_id)
    assert len(received) == delivered[0]["sent"]
    assert all(e["event_id"].startswith("hk:") and "@" not in e["event_id"] for e in received)
