"""The scalar reference: rules, reasons and what error texts may contain."""

from __future__ import annotations

import pytest

from ttsync.identity import InvalidIdentifier, Reason, hash_identifier, normalize


@pytest.mark.parametrize(
    ("value", "region", "expected"),
    [
        ("(213) 373-4253", "US", "+12133734253"),
        ("213.373.4253", "us", "+12133734253"),  # region codes are case-insensitive
        ("1-213-373-4253", "US", "+12133734253"),
        ("011 44 20 7946 0018", "US", "+442079460018"),  # US international prefix
        ("00 44 20 7946 0018", "FR", "+442079460018"),
        ("+44 (0) 20 7946 0018", "US", "+442079460018"),  # national prefix inside +44
        ("0151 1234 5678", "DE", "+4915112345678"),
        ("+49 151 12345678", None, "+4915112345678"),
    ],
)
def test_phone_normalization(value: str, region: str | None, expected: str) -> None:
    assert normalize("phone", value, region=region) == expected


def test_phone_digits_format_drops_only_the_plus() -> None:
    assert normalize("phone", "(213) 373-4253", region="US", phone_format="digits") == "12133734253"


@pytest.mark.parametrize(
    ("kind", "value", "region", "reason"),
    [
        ("phone", "2133734253", None, Reason.PHONE_REGION_UNKNOWN),
        ("phone", "2133734253", "ZZ", Reason.PHONE_REGION_UNKNOWN),
        ("phone", "555-0100", "US", Reason.INVALID_PHONE),
        ("phone", "+999 1234567", "US", Reason.INVALID_PHONE),
        ("phone", "", "US", Reason.EMPTY),
        ("email", "a@b", None, Reason.INVALID_EMAIL),
        ("email", " \t", None, Reason.EMPTY),
        ("idfa", "6d92078a82464ba4ae5b76104861e7dc", None, Reason.INVALID_MAID),
        ("aaid", "00000000-0000-0000-0000-000000000000", None, Reason.MAID_ALL_ZERO),
        ("external_id", "   ", None, Reason.EMPTY),
    ],
)
def test_rejections_carry_a_reason_and_no_value(
    kind: str, value: str, region: str | None, reason: Reason
) -> None:
    with pytest.raises(InvalidIdentifier) as info:
        normalize(kind, value, region=region)
    assert info.value.reason is reason
    if value.strip():
        assert value not in str(info.value)
    assert reason.value in str(info.value)


def test_idfa_and_aaid_are_distinct_but_normalize_alike() -> None:
    maid = "6D92078A-8246-4BA4-AE5B-76104861E7DC"
    assert normalize("idfa", maid) == normalize("aaid", maid) == maid.lower()


def test_external_id_keeps_case() -> None:
    assert normalize("external_id", " User_123 ") == "User_123"
    assert hash_identifier("external_id", "User_123") != hash_identifier("external_id", "user_123")


def test_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown identifier kind"):
        normalize("fax", "1")


def test_reason_list_is_closed_and_documented() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "identity.md").read_text(encoding="utf-8")
    section = doc.split("## Reason codes", 1)[1].split("##", 1)[0]
    documented = {line.split("`")[1] for line in section.splitlines() if line.startswith("| `")}
    assert documented == {r.value for r in Reason}
