"""How an audience follows its query (the `mode` setting; docs/audiences.md)."""

from __future__ import annotations

import enum


class SyncMode(enum.StrEnum):
    """How an audience follows its query. See docs/audiences.md."""

    MIRROR = "mirror"  # membership equals the query: adds and removes
    APPEND = "append"  # add only; nobody is removed
    CREATE = "create"  # a new one-time audience per delivery (full upload)
    REPLACE = "replace"  # customer-file REPLACE of the whole audience (full upload)
