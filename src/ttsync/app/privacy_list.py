"""The workspace's list of people no audience may hold (docs/campaigns.md#suppression-and-forget-requests):
forget requests and uploaded suppression lists, kept as hashes in `STATE/privacy/`.

- `hashes.parquet`: id schema and SHA-256 digest words (as snapshots keep them), the origin (`forget` or
  `suppression`), the request or list name, when it was added;
- `keys.parquet`: warehouse keys in their stored form (see `ttsync rowkey`), with their request.

Values are hashed the moment they arrive; nothing raw is kept. Every change is a read-modify-write of a small
Parquet file under an exclusive lock (`STATE/privacy/.lock`): two `ttsync forget` processes, or a forget and a
run adding the identifiers it found through a forgotten key, never lose each other's entries.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ttsync.app.audit import record
from ttsync.errors import ConfigError
from ttsync.identity import InvalidIdentifier, hash_identifier
from ttsync.identity.digests import DIGEST_FIELDS, digest_keys
from ttsync.identity.scalar import SHA256_HEX_RE
from ttsync.store.db import Store
from ttsync.writeback.rowkey import stored_row_keys, workspace_hasher

HASHES_SCHEMA = pa.schema(
    [("id_schema", pa.string()), *DIGEST_FIELDS, ("origin", pa.string()), ("request", pa.string()),
     ("added_at", pa.timestamp("us", tz="UTC"))]
)  # fmt: skip
KEYS_SCHEMA = pa.schema(
    [("row_key", pa.string()), ("request", pa.string()), ("added_at", pa.timestamp("us", tz="UTC"))]
)
FORGET, SUPPRESSION = "forget", "suppression"
# What each kind of value is hashed as (the mapping API's SHA-256 names; MAIDs may be either platform's).
_SCHEMAS = {"email": ("EMAIL_SHA256",), "phone": ("PHONE_SHA256",), "maid": ("IDFA_SHA256", "AAID_SHA256")}


def privacy_dir(state_dir: Path) -> Path:
    """Where the workspace's forget requests and suppression lists live."""
    return state_dir / "privacy"


def hashes_file(state_dir: Path) -> Path:
    """The listed identifiers (forget requests and suppression lists)."""
    return privacy_dir(state_dir) / "hashes.parquet"


def keys_file(state_dir: Path) -> Path:
    """The forgotten warehouse keys (stored form)."""
    return privacy_dir(state_dir) / "keys.parquet"


@dataclass
class Added:
    """What one forget request or suppression upload added (counts only)."""

    request: str
    identifiers: int = 0
    keys: int = 0
    rejected: dict[str, int] = field(default_factory=dict)  # reason code -> values refused

    def to_dict(self) -> dict[str, Any]:
        """JSON for `--json`."""
        return {"request": self.request, "identifiers": self.identifiers, "keys": self.keys,
                "rejected": self.rejected}  # fmt: skip


def forget(
    state_dir: Path,
    store: Store,
    *,
    emails: Sequence[str] = (),
    phones: Sequence[str] = (),
    maids: Sequence[str] = (),
    keys: Sequence[str] = (),
    region: str | None = None,
    actor: str = "cli",
) -> Added:
    """Record a forget request: the values are hashed here (and dropped), the hashes join the workspace's
    list, and an audit entry records the request with its hashes (never a value). The next run of every
    audience removes them (see `app.privacy`), or `app.privacy_now.forget_now` at once."""
    added = Added(request=uuid.uuid4().hex[:12])
    rows: list[tuple[str, str]] = []
    for kind, values in (("email", emails), ("phone", phones), ("maid", maids)):
        for value in values:
            try:
                normalized_kind = "idfa" if kind == "maid" else kind
                digest = hash_identifier(normalized_kind, value, region=region)
            except InvalidIdentifier as bad:
                added.rejected[bad.reason] = added.rejected.get(bad.reason, 0) + 1
                continue
            rows += [(schema, digest) for schema in _SCHEMAS[kind]]
    stored_keys = stored_row_keys(workspace_hasher(store), list(keys)) if keys else []
    if not rows and not stored_keys:
        raise ConfigError(
            "nothing to forget: every value was refused ("
            + ", ".join(f"{reason} {n}" for reason, n in sorted(added.rejected.items()))
            + "); give e-mails, phone numbers in international form (+1...) or with --region, advertising "
            "ids, or warehouse keys"
            if added.rejected
            else "nothing to forget: give --email, --phone, --maid, --key or --file"
        )
    append_hashes(state_dir, rows, FORGET, added.request)
    _append_keys(state_dir, stored_keys, added.request)
    added.identifiers, added.keys = len({d for _, d in rows}), len(stored_keys)
    record(store, actor, "privacy.forget", f"request:{added.request}",
           {"hashes": sorted({d for _, d in rows}), "keys": len(stored_keys), "rejected": added.rejected})  # fmt: skip
    return added


def add_suppression_hashes(
    state_dir: Path, store: Store, name: str, user_id_type: str, lines: Iterable[str], *, actor: str = "cli"
) -> Added:
    """Add an uploaded list of SHA-256 hex digests (one a line, already hashed by the sender) of one user id
    type to the suppression list `name`; lines that are not a SHA-256 hex digest are counted, not kept."""
    schema = {
        "EMAIL": "EMAIL_SHA256",
        "PHONE": "PHONE_SHA256",
        "IDFA": "IDFA_SHA256",
        "AAID": "AAID_SHA256",
    }.get(user_id_type.upper())
    if schema is None:
        raise ConfigError(f"--type {user_id_type!r}: use EMAIL, PHONE, IDFA or AAID")
    added = Added(request=name)
    rows = []
    for line in lines:
        text = line.strip().lower()
        if not text:
            continue
        if not SHA256_HEX_RE.match(text):
            added.rejected["not_sha256_hex"] = added.rejected.get("not_sha256_hex", 0) + 1
            continue
        rows.append((schema, text))
    append_hashes(state_dir, rows, SUPPRESSION, name)
    added.identifiers = len({d for _, d in rows})
    record(store, actor, "privacy.suppression", f"list:{name}",
           {"type": schema, "hashes": added.identifiers, "rejected": added.rejected})  # fmt: skip
    return added


def listed(state_dir: Path) -> dict[str, int]:
    """How many identifiers and keys the workspace's list holds, by origin."""
    out = {FORGET: 0, SUPPRESSION: 0, "keys": 0}
    if hashes_file(state_dir).is_file():
        table = pq.read_table(hashes_file(state_dir), columns=["origin"])
        for origin in table.column("origin").to_pylist():
            out[origin] = out.get(origin, 0) + 1
    if keys_file(state_dir).is_file():
        out["keys"] = pq.read_metadata(keys_file(state_dir)).num_rows
    return out


@contextlib.contextmanager
def locked(state_dir: Path) -> Iterator[None]:
    """Hold the workspace's privacy lock (an exclusive `flock`, released when the process dies) while
    changing the list: without it, two processes appending at once would each rewrite the file without the
    other's rows."""
    folder = privacy_dir(state_dir)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _append(state_dir: Path, path: Path, table: pa.Table) -> None:
    """Add rows to a small Parquet file of the list: under the lock, read, concatenate, write a new file and
    rename it over the old one (readers without the lock see the old file or the new one, never half)."""
    if table.num_rows == 0:
        return
    with locked(state_dir):
        if path.is_file():
            table = pa.concat_tables([pq.read_table(path), table])
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, path)


def hashes_table(rows: list[tuple[str, str]], origin: str, request: str) -> pa.Table:
    """(id schema, SHA-256 hex) pairs in the list's layout (`HASHES_SCHEMA`)."""
    words = digest_keys(pa.array([d for _, d in rows], pa.string()))
    now = datetime.now(UTC)
    return pa.Table.from_arrays(
        [pa.array([s for s, _ in rows], pa.string()), *words, pa.array([origin] * len(rows)),
         pa.array([request] * len(rows)), pa.array([now] * len(rows), pa.timestamp("us", tz="UTC"))],
        schema=HASHES_SCHEMA,
    )  # fmt: skip


def append_hashes(state_dir: Path, rows: list[tuple[str, str]], origin: str, request: str) -> None:
    """Add (id schema, SHA-256 hex) pairs to the list with their origin and request."""
    if rows:
        _append(state_dir, hashes_file(state_dir), hashes_table(rows, origin, request))


def _append_keys(state_dir: Path, keys: list[str], request: str) -> None:
    now = datetime.now(UTC)
    table = pa.Table.from_arrays(
        [pa.array(keys, pa.string()), pa.array([request] * len(keys), pa.string()),
         pa.array([now] * len(keys), pa.timestamp("us", tz="UTC"))],
        schema=KEYS_SCHEMA,
    )  # fmt: skip
    _append(state_dir, keys_file(state_dir), table)
