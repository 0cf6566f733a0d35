"""The control-plane store against real SQLite files and a real PostgreSQL server started by the test."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from pg import missing_reason, postgres_server
from ttsync.config.models import Credential, DataTemplate, Destination, Orchestration, Source
from ttsync.errors import ConfigError, NotFoundError
from ttsync.store import SecretBox, SecretKeyError, Store, load_key, repos, schema, write_key_file
from ttsync.store.crypto import generate_key
from ttsync.store.migrations import LATEST_VERSION, current_version
from ttsync.store.records import AudienceStateRecord


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    box = SecretBox(generate_key())
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'state' / 'ttsync.db'}"
    else:
        url = request.getfixturevalue("pg_url")
        engine = sa.create_engine(url)
        with engine.begin() as conn:  # each test starts from an empty database
            conn.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        engine.dispose()
    with Store.open(url, box) as opened:
        yield opened


def _credential(**overrides: object) -> Credential:
    values: dict[str, object] = {
        "name": "main",
        "app_id": "7000",
        "app_secret": SecretStr("app-secret-value"),
        "access_token": SecretStr("access-token-value"),
        "advertiser_ids": ["111", "222"],
        "token_expires_at": datetime(2030, 1, 1, tzinfo=UTC),
    }
    values.update(overrides)
    return Credential.model_validate(values)


def _setup_objects(store: Store) -> None:
    repos.save_credential(store, _credential())
    repos.save_source(store, Source(name="wh", path="warehouse.duckdb"))
    repos.save_destination(
        store,
        Destination.model_validate(
            {"name": "aud", "kind": "audience", "credential": "main", "settings": {"advertiser_ids": ["111"]}}
        ),
    )
    repos.save_template(
        store, DataTemplate(name="tpl", destination="aud", attribute_mapping={"email": "EMAIL"})
    )
    repos.save_orchestration(
        store,
        Orchestration(
            name="orch", source="wh", destination="aud", template="tpl", query="SELECT 1", key_column="k"
        ),
    )


def test_migrations_are_recorded_and_schema_matches(store: Store) -> None:
    with store.engine.connect() as conn:
        assert current_version(conn) == LATEST_VERSION
        tables = set(sa.inspect(conn).get_table_names())
    assert set(schema.metadata.tables) <= tables
    # Re-opening applies nothing and keeps the version.
    reopened = Store.open(store.engine.url.render_as_string(hide_password=False), store.box)
    with reopened.engine.connect() as conn:
        assert current_version(conn) == LATEST_VERSION
    reopened.close()


def test_secrets_are_encrypted_at_rest_and_redacted(store: Store) -> None:
    assert repos.save_credential(store, _credential()) == "created"
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(schema.credentials)).mappings().one()
    stored = " ".join(str(v) for v in row.values())
    assert "access-token-value" not in stored
    assert "app-secret-value" not in stored
    loaded = repos.get_credential(store, "main")
    assert "access-token-value" not in repr(loaded)
    assert "access-token-value" not in loaded.model_dump_json()
    assert loaded.access_token is not None
    assert loaded.access_token.get_secret_value() == "access-token-value"
    assert loaded.token_expires_at == datetime(2030, 1, 1, tzinfo=UTC)
    # A different key cannot read them, and says what to do.
    other = Store(store.engine, SecretBox(generate_key()))
    sealed = repos.get_credential(other, "main").access_token
    assert sealed is not None
    with pytest.raises(SecretKeyError, match="original key"):
        sealed.get_secret_value()


def test_save_reports_created_updated_unchanged(store: Store) -> None:
    assert repos.save_credential(store, _credential()) == "created"
    assert repos.save_credential(store, _credential()) == "unchanged"
    # A missing secret keeps the stored one (re-applying a file must not wipe an OAuth token).
    assert repos.save_credential(store, _credential(access_token=None)) == "unchanged"
    assert repos.save_credential(store, _credential(access_token=SecretStr("new"))) == "updated"
    assert repos.get_credential(store, "main").access_token.get_secret_value() == "new"  # type: ignore[union-attr]
    source = Source(name="wh", path="a.duckdb")
    assert [repos.save_source(store, source) for _ in range(2)] == ["created", "unchanged"]
    assert repos.save_source(store, Source(name="wh", path="b.duckdb")) == "updated"
    assert repos.get_source(store, "wh").path == "b.duckdb"


def test_references_are_checked_and_deletes_refused_while_used(store: Store) -> None:
    with pytest.raises(NotFoundError, match="ttsync credentials list"):
        repos.save_destination(
            store,
            Destination.model_validate(
                {"name": "aud", "kind": "audience", "credential": "nope", "settings": {}}
            ),
        )
    _setup_objects(store)
    assert repos.get_orchestration(store, "orch").template == "tpl"
    assert repos.get_destination(store, "aud").settings == {"advertiser_ids": ["111"]}
    with pytest.raises(ConfigError, match="used by"):
        repos.delete_credential(store, "main")
    assert repos.delete_orchestration(store, "orch") is True
    assert repos.delete_template(store, "tpl") is True
    assert repos.delete_destination(store, "aud") is True
    assert repos.delete_credential(store, "main") is True
    assert repos.delete_credential(store, "main") is False
    assert repos.list_credentials(store) == []


def test_token_updates(store: Store) -> None:
    repos.save_credential(store, _credential())
    expiry = datetime(2031, 5, 1, 12, 0, tzinfo=UTC)
    repos.update_credential_tokens(
        store,
        "main",
        access_token="tok-2",
        refresh_token="ref-2",
        token_expires_at=expiry,
        advertiser_ids=["333"],
    )
    cred = repos.get_credential(store, "main")
    assert cred.access_token is not None
    assert cred.access_token.get_secret_value() == "tok-2"
    assert cred.refresh_token is not None
    assert cred.refresh_token.get_secret_value() == "ref-2"
    assert (cred.token_expires_at, cred.advertiser_ids) == (expiry, ["333"])
    repos.clear_credential_tokens(store, "main")
    assert repos.get_credential(store, "main").access_token is None
    with pytest.raises(NotFoundError):
        repos.update_credential_tokens(store, "ghost", access_token="x")


def test_workflows_tasks_notifications_and_audience_state(store: Store) -> None:
    wf = repos.create_workflow(store, "orch", "audience", ["query", "prepare", "upload"])
    assert [t.name for t in wf.tasks] == ["query", "prepare", "upload"]
    assert wf.state == "pending"
    started = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    repos.update_workflow(store, wf.id, state="running", started_at=started)
    repos.update_task(store, wf.id, "upload", state="failed", checkpoint={"batches_done": 7},
                      error={"code": 50002}, add_attempt=True)  # fmt: skip
    repos.update_task(store, wf.id, "upload", add_attempt=True)
    loaded = repos.get_workflow(store, wf.id)
    upload = loaded.tasks[2]
    assert (loaded.state, loaded.started_at) == ("running", started)
    assert (upload.state, upload.attempts, upload.checkpoint, upload.error) == (
        "failed", 2, {"batches_done": 7}, {"code": 50002},
    )  # fmt: skip
    repos.update_task(store, wf.id, "upload", error=None)
    assert repos.get_workflow(store, wf.id).tasks[2].error is None
    assert [w.id for w in repos.list_workflows(store, orchestration="orch")] == [wf.id]

    note = repos.add_notification(
        store, workflow_id=wf.id, severity="error", title="Upload failed", message="m"
    )
    repos.update_notification(store, note.id, read=True, webhook_state="delivered", add_webhook_attempt=True)
    assert repos.list_notifications(store, unread_only=True) == []
    [again] = repos.list_notifications(store)
    assert (again.read, again.webhook_state, again.webhook_attempts) == (True, "delivered", 1)

    record = AudienceStateRecord(destination="aud", orchestration="orch", advertiser_id="111",
                                 audience_id="9001", audience_name="High value")  # fmt: skip
    repos.put_audience_state(store, record)
    repos.put_audience_state(store, record.model_copy(update={"last_size": 1234, "is_valid": True}))
    [state] = repos.get_audience_states(store, "aud", "orch")
    assert (state.audience_id, state.last_size, state.is_valid) == ("9001", 1234, True)
    assert repos.delete_audience_state(store, "aud", "orch", "111") is True
    assert repos.get_audience_states(store, "aud", "orch") == []


def test_key_file_must_be_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TTSYNC_SECRET_KEY", raising=False)
    key_file = tmp_path / "secret.key"
    write_key_file(key_file)
    assert key_file.stat().st_mode & 0o777 == 0o600
    box = load_key(key_file)
    assert box.decrypt(box.encrypt("x")) == "x"
    assert "redacted" in repr(box)
    key_file.chmod(0o644)
    with pytest.raises(SecretKeyError, match="chmod 600"):
        load_key(key_file)
    monkeypatch.setenv("TTSYNC_SECRET_KEY", generate_key())
    assert load_key(None).decrypt(load_key(None).encrypt("y")) == "y"
    with pytest.raises(FileExistsError):
        write_key_file(key_file)


def test_workflow_state_holds_succeeded_with_warnings(store: Store) -> None:
    # 23 characters: the state column must be wide enough on PostgreSQL too (migration 2).
    wf = repos.create_workflow(store, "orch", "audience", ["query"])
    repos.update_workflow(store, wf.id, state="succeeded_with_warnings")
    assert repos.get_workflow(store, wf.id).state == "succeeded_with_warnings"


@pytest.mark.parametrize(
    ("repo", "name", "users"),
    [
        (repos.CREDENTIALS, "main", "destination 'aud'"),
        (repos.SOURCES, "wh", "orchestration 'orch'"),
        (repos.DESTINATIONS, "aud", "data template 'tpl'"),
        (repos.TEMPLATES, "tpl", "orchestration 'orch'"),
        (repos.ORCHESTRATIONS, "orch", None),
    ],
)
def test_one_generic_repo_gets_lists_and_deletes_every_kind(
    store: Store, repo: repos.ConfigRepo[Any], name: str, users: str | None
) -> None:
    _setup_objects(store)
    assert repo.get(store, name).name == name
    assert [obj.name for obj in repo.list(store)] == [name]
    with pytest.raises(NotFoundError, match=repo.kind):
        repo.get(store, "missing")
    if users is not None:
        with pytest.raises(ConfigError, match=f"{repo.kind} '{name}' is used by {users}"):
            repo.delete(store, name)
    else:
        assert repo.delete(store, name) is True
        assert repo.list(store) == []
        assert repo.delete(store, name) is False
