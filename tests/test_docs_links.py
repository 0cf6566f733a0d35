"""The docs cite only files that are in the repository (links and `path/like.md` mentions)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
PATH = re.compile(r"`([\w./-]+/[\w.-]+\.(?:md|py|yaml|json|toml))`")


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_docs_cite_only_files_in_the_repository(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    assert "/work/" not in text
    assert "shared/reference" not in text
    missing = []
    for target in LINK.findall(text):
        if "://" in target or target.startswith("mailto:"):
            continue
        if not (doc.parent / target).exists():
            missing.append(target)
    for target in PATH.findall(text):
        if not any((base / target).exists() for base in (ROOT, doc.parent, ROOT / "src")):
            missing.append(target)
    assert missing == [], f"{doc.name} cites files not in the repository: {missing}"
