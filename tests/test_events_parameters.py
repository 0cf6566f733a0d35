"""The parameter table, reason list and example query in docs/events.md agree with the code."""

from __future__ import annotations

from pathlib import Path

from ttsync.events.examples import COMPLETE_PAYMENT_QUERY, example_query
from ttsync.events.parameters import BY_NAME, PARAMETERS, Required, allowed_event_names, parameter_for
from ttsync.events.reasons import REASON_DESCRIPTIONS, RejectReason

DOC = Path(__file__).resolve().parents[1] / "docs" / "events.md"


def _table(marker: str) -> list[list[str]]:
    text = DOC.read_text()
    block = text.split(f"<!-- {marker}:start -->")[1].split(f"<!-- {marker}:end -->")[0]
    lines = [line for line in block.strip().splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines[2:]]


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def test_doc_parameter_table_matches_the_data() -> None:
    rows = _table("parameter-table")
    expected = [
        [
            p.name,
            ", ".join(p.aliases),
            p.destination,
            p.type.value,
            p.required.value,
            _yes_no(p.web_only),
            _yes_no(p.hashed),
        ]
        for p in PARAMETERS
    ]
    assert rows == expected


def test_seed_parameters_are_all_present_with_renames_and_rules() -> None:
    seed = [
        "agent",
        "brand",
        "content_category",
        "content_id",
        "content_name",
        "content_type",
        "cookie_id",
        "currency",
        "email",
        "event",
        "event_channel",
        "event_id",
        "event_set_id",
        "event_source",
        "ip",
        "order_id",
        "phone",
        "price",
        "quantity",
        "shop_id",
        "tiktok_click_id",
        "timestamp",
        "value",
    ]
    assert sorted(BY_NAME) == sorted(seed)
    assert BY_NAME["agent"].tiktok_name == "user_agent"
    assert BY_NAME["cookie_id"].tiktok_name == "ttp"
    assert BY_NAME["tiktok_click_id"].tiktok_name == "ttclid"
    assert {p.name for p in PARAMETERS if p.web_only} == {"agent", "cookie_id", "ip", "tiktok_click_id"}
    assert {p.name for p in PARAMETERS if p.hashed} == {"email", "phone"}
    assert {p.name for p in PARAMETERS if p.required is Required.YES} == {
        "event",
        "event_id",
        "event_set_id",
        "timestamp",
    }


def test_aliases_and_tiktok_names_resolve() -> None:
    assert parameter_for("phone_numbers") is BY_NAME["phone"]
    assert parameter_for("EMAILS") is BY_NAME["email"]
    assert parameter_for("user_agent") is BY_NAME["agent"]
    assert parameter_for("ttclid") is BY_NAME["tiktok_click_id"]
    assert parameter_for("amperity_id") is None


def test_event_name_lists_per_source() -> None:
    offline = allowed_event_names("offline")
    web = allowed_event_names("web")
    assert offline is not None
    assert {"CompletePayment", "SubmitForm", "Purchase", "Lead"} <= offline
    assert "PageView" not in offline
    assert "LaunchAPP" not in offline  # app-only standard names are not offline names
    # Web and CRM events may use custom names (ref §3.1, §9): any non-empty name.
    assert web is None
    assert allowed_event_names("crm") is None


def test_doc_reason_table_matches_the_enum_in_order() -> None:
    rows = _table("reasons")
    assert [r[0].strip("`") for r in rows] == [r.value for r in RejectReason]
    assert [r[1] for r in rows] == [REASON_DESCRIPTIONS[r] for r in RejectReason]


def test_doc_shows_the_example_query_verbatim() -> None:
    text = DOC.read_text()
    assert "```sql\n" + COMPLETE_PAYMENT_QUERY + "```" in text


def test_example_query_swaps_only_the_event_set_id() -> None:
    query = example_query("123456")
    assert "'123456' AS event_set_id" in query
    assert "7654321098765432109" not in query
    assert query.replace("'123456'", "'7654321098765432109'") == COMPLETE_PAYMENT_QUERY
