"""`ttsync init / apply / export` and the object groups, run as real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml


def _ttsync(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TTSYNC_")} | (env or {})
    return subprocess.run(
        [sys.executable, "-m", "ttsync", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_init_apply_export_round_trip(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    done = _ttsync("init", str(ws), "--sample", "--rows", "200", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["sample"]["Merged_Customers"] == 200
    assert (ws / "state" / "secret.key").stat().st_mode & 0o777 == 0o600
    refused = _ttsync("init", str(ws), cwd=tmp_path)
    assert refused.returncode == 2
    assert "--force" in refused.stderr

    secrets = {"TTSYNC_ACCESS_TOKEN": "tok-super-secret", "TTSYNC_APP_SECRET": "app-super-secret"}
    first = _ttsync("apply", "-f", "ttsync.yaml", "--json", cwd=ws, env=secrets)
    assert first.returncode == 0, first.stderr
    changes = {o["name"]: o["change"] for o in json.loads(first.stdout)["objects"]}
    assert set(changes.values()) == {"created"}
    assert len(changes) == 11  # 8 objects, plus 2 segments and 1 campaign (docs/campaigns.md)
    again = _ttsync("apply", "--json", "--workspace", str(ws), cwd=tmp_path, env=secrets)
    assert {o["change"] for o in json.loads(again.stdout)["objects"]} == {"unchanged"}

    exported = _ttsync("export", "-o", str(tmp_path / "out.yaml"), cwd=ws, env={"TTSYNC_WORKSPACE": str(ws)})
    assert exported.returncode == 0, exported.stderr
    text = (tmp_path / "out.yaml").read_text()
    assert "super-secret" not in text
    assert not list((ws / "state").glob("*super-secret*"))
    assert "super-secret" not in (ws / "state" / "ttsync.db").read_bytes().decode("latin-1")
    data = yaml.safe_load(text)
    assert data["credentials"][0]["access_token_env"] == "TTSYNC_ACCESS_TOKEN"
    # Re-applying the exported file changes nothing.
    reapplied = _ttsync("apply", "-f", str(tmp_path / "out.yaml"), "--json", cwd=ws, env=secrets)
    assert {o["change"] for o in json.loads(reapplied.stdout)["objects"]} == {"unchanged"}, reapplied.stdout

    shown = _ttsync("credentials", "show", "sandbox", "--json", cwd=ws)
    assert json.loads(shown.stdout)["access_token"] == "**********"
    listed = _ttsync("orchestrations", "list", "--json", cwd=ws)
    assert {o["name"] for o in json.loads(listed.stdout)} == {
        "high-value-customers",
        "store-purchases-last-7-days",
    }


def test_object_groups_add_and_remove(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    assert _ttsync("init", str(ws), cwd=tmp_path).returncode == 0
    (tmp_path / "src.yaml").write_text("name: events\nkind: parquet\npath: events.parquet\n")
    # A file source whose file does not exist is refused, saying how to fix it.
    refused = _ttsync("sources", "add", "-f", str(tmp_path / "src.yaml"), cwd=ws)
    assert refused.returncode == 2
    assert "'events.parquet' does not exist" in refused.stderr
    assert "fix `path`" in refused.stderr
    listed = _ttsync("sources", "list", "--json", cwd=ws)
    assert "events" not in {s["name"] for s in json.loads(listed.stdout)}
    (ws / "events.parquet").write_bytes(b"PAR1")
    added = _ttsync("sources", "add", "-f", str(tmp_path / "src.yaml"), cwd=ws)
    assert added.returncode == 0, added.stderr
    assert "created" in added.stdout
    (tmp_path / "bad.yaml").write_text("name: broken\nkind: sqlalchemy\n")
    bad = _ttsync("sources", "add", "-f", str(tmp_path / "bad.yaml"), cwd=ws)
    assert bad.returncode == 2
    assert "url_env" in bad.stderr
    assert _ttsync("sources", "remove", "events", cwd=ws).returncode == 0
    missing = _ttsync("sources", "show", "events", cwd=ws)
    assert missing.returncode == 2
    assert "ttsync sources list" in missing.stderr
    literal = tmp_path / "lit.yaml"
    literal.write_text("credentials: [{name: c, app_id: '1', app_secret: hunter2}]\n")
    refused = _ttsync("apply", "-f", str(literal), cwd=ws)
    assert refused.returncode == 2
    assert "app_secret_env" in refused.stderr
    assert "hunter2" not in refused.stderr


def _key_orders(data: dict[str, object]) -> dict[str, list[list[str]]]:
    orders: dict[str, list[list[str]]] = {}
    for section, items in data.items():
        if isinstance(items, list):
            orders[section] = [list(item) for item in items if isinstance(item, dict)]
            orders[section + ".settings"] = [
                list(item["settings"]) for item in items if isinstance(item, dict) and item.get("settings")
            ]
    return orders


def _subsequence(keys: list[str], reference: list[str]) -> bool:
    """`keys` appear in the same relative order as in `reference` (keys missing from it ignored)."""
    known = [k for k in keys if k in reference]
    return known == sorted(known, key=reference.index)


def test_export_writes_block_queries_in_init_key_order(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    assert _ttsync("init", str(ws), cwd=tmp_path).returncode == 0
    secrets = {"TTSYNC_ACCESS_TOKEN": "tok", "TTSYNC_APP_SECRET": "app"}
    assert _ttsync("apply", cwd=ws, env=secrets).returncode == 0
    exported = _ttsync("export", cwd=ws)
    assert exported.returncode == 0, exported.stderr
    text = exported.stdout
    # Queries are block scalars, as written by hand: no quoted strings with \n escapes.
    assert "query: |" in text
    assert "\\n" not in text
    assert "  WHERE lifetime_value >= 500\n" in text
    # Same key order as init's file, object by object, settings included.
    init_orders = _key_orders(yaml.safe_load((ws / "ttsync.yaml").read_text()))
    export_orders = _key_orders(yaml.safe_load(text))
    for section, objects in export_orders.items():
        for keys, reference in zip(objects, init_orders[section], strict=False):
            assert _subsequence(keys, reference), (section, keys, reference)
    # Exporting into ttsync.yaml and applying it changes nothing; exporting again gives the same text.
    (ws / "ttsync.yaml").write_text(text)
    again = _ttsync("apply", "--json", cwd=ws, env=secrets)
    assert {o["change"] for o in json.loads(again.stdout)["objects"]} == {"unchanged"}, again.stdout
    assert _ttsync("export", cwd=ws).stdout == text
