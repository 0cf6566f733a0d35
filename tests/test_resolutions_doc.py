"""docs/resolutions.md must list every catalog entry, with its key, title, action and steps."""

from __future__ import annotations

from pathlib import Path

from ttsync.workflows.resolutions import CATALOG, Action, render_markdown, resolution_for

DOC = Path(__file__).resolve().parents[1] / "docs" / "resolutions.md"


def test_every_entry_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    for entry in CATALOG.values():
        assert f"## {entry.title}" in text, entry.key
        assert f"Key: `{entry.key}` · action: `{entry.action.value}`" in text, entry.key
        for step in entry.steps:
            assert step in text, (entry.key, step)


def test_seed_resolutions_exist_with_resolve_action() -> None:
    for key in ("advertiser_not_found", "invalid_credentials", "missing_advertiser_permissions"):
        assert CATALOG[key].action is Action.RESOLVE


def test_unknown_key_falls_back_to_invalid_request() -> None:
    assert resolution_for("no_such_key").key == "invalid_request"
    assert resolution_for(None).key == "invalid_request"


def test_doc_is_generated_from_the_catalog() -> None:
    assert DOC.read_text(encoding="utf-8") == render_markdown(), (
        "regenerate: python -m ttsync.workflows.resolutions > docs/resolutions.md"
    )
