"""Destination settings validation, settings merging, and the config file (including the docs example)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ttsync.app.workspace.layout import parse_config
from ttsync.config.models import DataTemplate, Destination, Orchestration
from ttsync.destinations.tiktok.settings import (
    ResolvedAudienceSettings,
    audience_name_warning,
    effective_settings,
)
from ttsync.errors import ConfigError, MissingSettingError

DOCS = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def _dest(**settings: object) -> Destination:
    return Destination.model_validate(
        {"name": "aud", "kind": "audience", "credential": "c", "settings": settings}
    )


def _orch(**settings: object) -> Orchestration:
    return Orchestration(
        name="o", source="s", destination="aud", query="SELECT 1", key_column="k", settings=settings
    )


def test_merge_order_and_defaults() -> None:
    tpl = DataTemplate(
        name="t", destination="aud", settings={"user_id_types": ["email", "PHONE"], "mode": "append"}
    )
    merged = effective_settings(
        _dest(advertiser_id="123", mode="mirror"), tpl, _orch(audience_name="Big spenders")
    )
    assert isinstance(merged, ResolvedAudienceSettings)
    assert (merged.advertiser_ids, merged.user_id_types, merged.mode) == (
        ["123"],
        ["EMAIL", "PHONE"],
        "append",
    )
    assert (merged.delivery, merged.remove_guard) == ("partner", 0.5)


def test_missing_settings_say_where_to_set_them() -> None:
    tpl = DataTemplate(name="t", destination="aud")
    with pytest.raises(
        MissingSettingError, match="set `audience_name` on orchestration 'o' or on its data template 't'"
    ):
        effective_settings(_dest(advertiser_ids=["1"]), tpl, _orch())
    with pytest.raises(MissingSettingError, match="advertiser_ids"):
        effective_settings(_dest(), tpl, _orch(audience_name="Name"))
    events = Destination.model_validate(
        {"name": "ev", "kind": "offline_events", "credential": "c", "settings": {"advertiser_id": "5"}}
    )
    orch = _orch().model_copy(update={"destination": "ev"})
    with pytest.raises(MissingSettingError, match="event_set_id"):
        effective_settings(events, None, orch)
    assert effective_settings(
        events, None, _orch(event_set_id=77).model_copy(update={"destination": "ev"})
    ).kind == ("offline_events")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"mode": "replace"}, "set delivery to 'customer_file'"),
        ({"retention_days": 30}, "customer-file audiences only"),
        ({"strict_audience_name": True, "audience_name": "short"}, "10 to 70"),
    ],
)
def test_cross_field_rules(settings: dict[str, object], message: str) -> None:
    name = settings.pop("audience_name", "A perfectly fine name")
    with pytest.raises(ConfigError, match=message):
        effective_settings(_dest(advertiser_ids=["1"], **settings), None, _orch(audience_name=name))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"advertiser_ids": ["12ab"]}, "strings of digits"),
        ({"retention_days": 400}, "less than or equal to 365"),
        ({"remove_guard": 1.5}, "less than or equal to 1"),
        ({"user_id_types": ["FAX"]}, "use one of"),
        ({"default_region": "XX"}, "ISO 3166"),
        ({"colour": "red"}, "unknown setting"),
    ],
)
def test_invalid_settings_explain_the_fix(settings: dict[str, object], message: str) -> None:
    text = "\n".join(
        [
            "credentials: [{name: c, app_id: '1'}]",
            "destinations:",
            "  - {name: aud, kind: audience, credential: c, settings: "
            + repr(settings).replace("'", '"')
            + "}",
        ]
    )
    with pytest.raises(ConfigError, match=message):
        parse_config(text)


def test_truncation_warning_and_campaign_templates() -> None:
    assert audience_name_warning("x" * 70) is None
    warning = audience_name_warning("y" * 75)
    assert warning is not None
    assert "'" + "y" * 67 + "...'" in warning
    with pytest.raises(ValueError, match=r"\{campaign\} and \{group\}"):
        DataTemplate(
            name="t", destination="aud", available_to_campaigns=True, audience_name_template="{campaign}"
        )
    tpl = DataTemplate(name="t", destination="aud", audience_name_template="{campaign} - {group}")
    merged = effective_settings(_dest(advertiser_ids=["1"]), tpl, _orch(), campaign="Spring", group="VIP")
    assert isinstance(merged, ResolvedAudienceSettings)
    assert merged.audience_name == "Spring - VIP"


def test_literal_secrets_are_refused() -> None:
    with pytest.raises(ConfigError, match="environment variable"):
        parse_config("credentials: [{name: c, app_id: '1', access_token: abc}]")
    with pytest.raises(ConfigError, match="password"):
        parse_config("sources: [{name: pg, kind: sqlalchemy, url: 'postgresql://u:pw@h/db'}]")


@pytest.mark.parametrize("doc", [DOCS, DOCS.parents[1] / "README.md"], ids=["configuration.md", "README.md"])
def test_docs_example_loads_and_resolves(doc: Path) -> None:
    block = re.search(r"```yaml\n(.*?)```", doc.read_text(), re.S)
    assert block is not None
    env = {"TTSYNC_APP_ID": "42", "TTSYNC_ADVERTISER_ID": "7000000000000000001", "TTSYNC_EVENT_SET_ID": "88"}
    config = parse_config(block.group(1), environ=env)
    assert {o.name for o in config.orchestrations} == {"high-value-customers", "store-purchases-last-7-days"}
    by_name = {d.name: d for d in config.destinations}
    templates = {t.name: t for t in config.templates}
    for orch in config.orchestrations:
        template = templates[orch.template] if orch.template else None
        resolved = effective_settings(by_name[orch.destination], template, orch)
        assert resolved.warnings() == []


@pytest.mark.parametrize("doc", [DOCS, DOCS.parents[1] / "README.md"], ids=["configuration.md", "README.md"])
def test_docs_example_is_what_init_writes(doc: Path) -> None:
    from ttsync.app.workspace.init import _FALLBACK_SEED, render_config

    block = re.search(r"```yaml\n(.*?)```", doc.read_text(), re.S)
    assert block is not None
    assert block.group(1) == render_config(dict(_FALLBACK_SEED)), "copy render_config() output into the doc"
