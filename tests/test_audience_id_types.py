"""A destination's user_id_types lists what is allowed; an orchestration sends the types it has columns for and
fails only when it has none."""

from __future__ import annotations

import pytest

from audience_env import ORCH, Env
from ttsync.errors import ConfigError
from ttsync.store import repos
from ttsync.sync.columns import audience_column_specs

MAPPING = {"email": "EMAIL", "phone": "PHONE", "idfa": "IDFA", "aaid": "AAID", "country": "REGION"}
ALL_TYPES = ["EMAIL", "PHONE", "IDFA", "AAID"]


def test_missing_mapped_columns_are_skipped() -> None:
    specs = audience_column_specs(
        user_id_types=ALL_TYPES, mapping=MAPPING, columns=["id", "email", "country"], default_region="US"
    )
    assert [(s.column, s.kind) for s in specs] == [("email", "email")]
    by_name = audience_column_specs(
        user_id_types=ALL_TYPES, mapping={}, columns=["id", "AAID"], default_region=None
    )
    assert [(s.column, s.kind) for s in by_name] == [("AAID", "aaid")]


def test_no_identifier_column_at_all_is_an_error_naming_the_types() -> None:
    with pytest.raises(ConfigError, match="EMAIL, PHONE, IDFA, AAID") as err:
        audience_column_specs(
            user_id_types=ALL_TYPES, mapping=MAPPING, columns=["id", "country"], default_region=None
        )
    assert "returns: id, country" in str(err.value)
    with pytest.raises(ConfigError, match="EMAIL"):
        # A column of a type the destination does not allow does not count.
        audience_column_specs(
            user_id_types=["EMAIL"], mapping={}, columns=["id", "phone"], default_region=None
        )


def test_bad_mapping_target_is_still_an_error() -> None:
    with pytest.raises(ConfigError, match="audience fields are"):
        audience_column_specs(
            user_id_types=ALL_TYPES, mapping={"email": "MAIL"}, columns=["email"], default_region=None
        )


def _set_query(env: Env, query: str) -> None:
    orchestration = repos.get_orchestration(env.store, ORCH)
    repos.save_orchestration(env.store, orchestration.model_copy(update={"query": query}))


def test_orchestration_without_maid_columns_syncs_email_and_phone(env: Env) -> None:
    _set_query(
        env, "SELECT amperity_id, email, phone, country FROM Merged_Customers WHERE lifetime_value >= 500"
    )
    outcome = env.run()
    assert outcome.ok, outcome.workflow.error
    assert outcome.workflow.counts["query"]["identifier_columns"] == ["email", "phone"]
    assert env.members() == env.expected()
    assert {schema for schema, _ in env.members()} == {"EMAIL_SHA256", "PHONE_SHA256"}


def test_orchestration_with_no_identifier_column_fails_with_configuration_error(env: Env) -> None:
    _set_query(env, "SELECT amperity_id, country FROM Merged_Customers")
    outcome = env.run()
    assert not outcome.ok
    assert outcome.workflow.error is not None
    assert outcome.workflow.error["resolution"] == "configuration_error"
    assert outcome.workflow.error["task"] == "query"
