"""Every column type a query can return has a defined behaviour (docs/identity.md, "Column types"): read as text
where that is exact, otherwise a configuration error naming the column and its type, before anything is sent."""

from __future__ import annotations

import os
import subprocess
import sys

import pyarrow as pa
import pytest

from audience_env import ORCH, Env
from ttsync.app.runs import build_run, start_run
from ttsync.identity import ColumnSpec, Preparer, prepare_value
from ttsync.identity.coltypes import ColumnTypeError
from ttsync.store import repos

EVENTS_ORCH = "store-purchases-last-7-days"
COLUMNS = "amperity_id, email, phone, country, idfa, aaid"


def set_query(env: Env, query: str, orchestration: str = ORCH) -> None:
    current = repos.get_orchestration(env.store, orchestration)
    repos.save_orchestration(env.store, current.model_copy(update={"query": query}))


def run_query(env: Env, select: str) -> dict[str, object]:
    set_query(env, f"SELECT {select} FROM Merged_Customers WHERE lifetime_value >= 500")
    outcome = start_run(build_run(env.workspace, env.store, ORCH))
    return {"ok": outcome.ok, "error": outcome.workflow.error or {}, "workflow": outcome.workflow}


def test_null_phone_column_means_no_phones(env: Env) -> None:
    result = run_query(env, "amperity_id, email, NULL AS phone, country, idfa, aaid")
    assert result["ok"], result["error"]
    members = env.members()
    assert members
    assert not any(schema == "PHONE_SHA256" for schema, _ in members)
    assert {m for m in env.expected() if m[0] != "PHONE_SHA256"} == members


@pytest.mark.parametrize(
    ("phone", "type_name"),
    [
        ("1.5::DOUBLE", "DOUBLE"),
        ("DATE '2020-01-01'", "DATE"),
        ("TIMESTAMP '2020-01-01 10:00:00'", "TIMESTAMP"),
        ("{'a': 1}", "STRUCT"),
        ("MAP {'a': 1}", "MAP"),
        ("'x'::BLOB", "BLOB"),
        ("true", "BOOLEAN"),
        ("[[phone]]", "nested lists"),
        ("1.5::DECIMAL(10, 2)", "decimal128(10, 2)"),
    ],
)
def test_unreadable_identifier_types_stop_the_query_task(env: Env, phone: str, type_name: str) -> None:
    result = run_query(env, f"amperity_id, email, {phone} AS phone, country, idfa, aaid")
    error = result["error"]
    assert not result["ok"]
    assert isinstance(error, dict)
    assert error["resolution"] == "configuration_error", error
    assert error["task"] == "query"
    assert "'phone'" in error["message"]
    assert type_name in error["message"], error["message"]
    assert env.emulator.admin.state()["audiences"] == []  # nothing was created or sent


@pytest.mark.parametrize(
    ("key", "said"),
    [("[amperity_id]", "lists"), ("random()", "DOUBLE"), ("NULL", "NULL"), ("{'k': amperity_id}", "STRUCT")],
)
def test_unreadable_key_types_stop_the_query_task(env: Env, key: str, said: str) -> None:
    result = run_query(env, f"{key} AS amperity_id, email, phone, country, idfa, aaid")
    error = result["error"]
    assert isinstance(error, dict)
    assert error["resolution"] == "configuration_error", error
    assert "key column 'amperity_id'" in error["message"]
    assert said in error["message"], error["message"]


def test_list_identifiers_are_read(env: Env) -> None:
    result = run_query(env, "amperity_id, [email] AS email, phone, country, idfa, aaid")
    assert result["ok"], result["error"]
    set_query(env, f"SELECT {COLUMNS} FROM Merged_Customers WHERE lifetime_value >= 500")
    assert env.members() == env.expected()  # the same identifiers as the plain query


def test_missing_key_column_is_a_configuration_error(env: Env) -> None:
    result = run_query(env, "email, phone, country, idfa, aaid")
    error = result["error"]
    assert isinstance(error, dict)
    assert error["resolution"] == "configuration_error", error
    assert "no key column 'amperity_id'" in error["message"]


def test_integer_phones_are_their_digits() -> None:
    # A phone stored as BIGINT (no "+"): read as its decimal digits, then the phone rules with the region.
    spec = ColumnSpec("phone", "phone", region="US")
    batch = pa.record_batch({"k": pa.array(["a", "b"]), "phone": pa.array([14155552671, None], pa.int64())})
    with Preparer([spec], key_column="k", workers=1) as preparer:
        ids = preparer.process(batch).ids.to_pylist()
    assert ids == [{"row_key": "a", "id_schema": "PHONE_SHA256", "hash": prepare_value(spec, "14155552671")}]


@pytest.mark.parametrize(
    "column",
    [
        pa.array([{"a": 1}]),
        pa.array([[["x"]]]),
        pa.array([1.5]),
        pa.array([b"x"]),
        pa.array([True]),
    ],
)
def test_batch_level_types_raise_column_type_error(column: pa.Array) -> None:
    # Sources that learn types from rows (SQLAlchemy) reach prepare without a schema check.
    batch = pa.record_batch({"k": pa.array(["a"]), "email": column})
    with (
        Preparer([ColumnSpec("email", "email")], key_column="k", workers=1) as preparer,
        pytest.raises(ColumnTypeError, match="identifier column 'email' has type"),
    ):
        preparer.process(batch)


def test_list_key_raises_column_type_error_not_arrow() -> None:
    batch = pa.record_batch({"k": pa.array([["a"]]), "email": pa.array(["a@example.com"])})
    with (
        Preparer([ColumnSpec("email", "email")], key_column="k", workers=1) as preparer,
        pytest.raises(ColumnTypeError, match="key column 'k' has type"),
    ):
        preparer.process(batch)


def test_plan_with_a_double_phone_is_an_error_not_a_traceback(env: Env) -> None:
    set_query(env, f"SELECT {COLUMNS.replace('phone', '1.5::DOUBLE AS phone')} FROM Merged_Customers")
    done = subprocess.run(
        [sys.executable, "-m", "ttsync", "run", ORCH, "--plan", "-w", str(env.workspace.root)],
        env=os.environ | env.environ, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "identifier column 'phone' has type DOUBLE" in " ".join(done.stderr.split())


def test_events_struct_email_stops_before_sending(env: Env) -> None:
    query = repos.get_orchestration(env.store, EVENTS_ORCH).query
    set_query(env, f"SELECT * REPLACE ({{'e': emails}} AS emails) FROM ({query})", orchestration=EVENTS_ORCH)
    outcome = start_run(build_run(env.workspace, env.store, EVENTS_ORCH))
    error = outcome.workflow.error or {}
    assert error["resolution"] == "configuration_error", error
    assert error["task"] == "query"
    assert "'emails'" in error["message"]
    assert "STRUCT" in error["message"]
    assert env.emulator.admin.events(env.emulator.seed.event_set_id) == []
