"""Row keys and event ids that look like personal identifiers are keyed-hashed before they touch disk.

A row key (the orchestration's `key_column`) is written to the run folder (prepared identifiers, rejections,
plan files, event outcomes); an event id is written to the events ledger and sent to TikTok. When such a value
is an e-mail address, a phone number or a mobile advertising id, writing it raw would put personal data on
disk and on the wire. So a value that *looks like* one (`looks_like_identifier`) is replaced by

    "hk:" + the first 32 hex characters of HMAC-SHA256(workspace key, value)

and every other value (a customer id, an order number) is kept as it is, so rejections stay traceable. The
replacement is deterministic per value and per workspace: the same e-mail always gives the same key, so
joins and diffs inside a run, the ledger across runs and TikTok's de-duplication by event id all still work.
The HMAC key is derived from the workspace's secret key (`SecretBox.derive_key`), never stored anywhere else.
Rules and examples: docs/identity.md, "Row keys".

The check and the hashing are vectorized: Arrow regular expressions find the values to replace (integer keys
are checked by value), and HMAC-SHA256 is computed for those only: by the compiled kernel when it is built
(kernels.py, OpenSSL with the key's pad blocks hashed once), else by DuckDB (the standard construction over
`sha256()`, the key passed as a bound parameter so that it never appears in SQL text).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from typing import Final

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from ttsync.identity.kernels import hmac_sha256_hex

PREFIX: Final = "hk:"
HEX_CHARS: Final = 32  # 128 bits: collisions are negligible for billions of keys
_BLOCK: Final = 64  # SHA-256 block size (HMAC pads the key to it)

# The shapes that make a value personal (docs/identity.md, "Row keys"):
# an e-mail address: anything with an "@";
_EMAIL: Final = "@"
# a phone number: 7 to 15 digits with phone punctuation only ("+", "00", spaces, dots, dashes, parentheses,
# slashes) ...
_PHONE: Final = r"^\s*\+?\(?\d(?:[ ().\-/]{0,3}\d){6,14}\)?\s*$"
# ... but not a plain number of 7 to 9 digits (customer ids, order numbers); plain numbers of 10 to 15 digits
# are national phone numbers as often as ids, and count as phones;
_PLAIN_NUMBER: Final = r"^\s*\d{7,9}\s*$"
# a mobile advertising id (IDFA, AAID): a UUID with dashes.
_MAID: Final = r"^\s*[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\s*$"
_PHONE_OR_MAID: Final = f"(?:{_PHONE})|(?:{_MAID})"


def looks_like_identifier(values: pa.Array) -> pa.Array:
    """Boolean mask: which strings look like an e-mail, a phone number or a MAID (nulls: false). Values that
    start with the hashed form's prefix count too, so that no raw key can pass for a hashed one.

    A few anchored regular expressions over the whole array (about 0.1 s per million values)."""
    if len(values) == 0:
        return pa.array([], pa.bool_())
    mask = pc.or_(pc.match_substring(values, _EMAIL), pc.starts_with(values, PREFIX))
    shaped = pc.match_substring_regex(values, _PHONE_OR_MAID)
    if pc.any(shaped).as_py():
        shaped = pc.and_(shaped, pc.invert(pc.match_substring_regex(values, _PLAIN_NUMBER)))
        mask = pc.or_(mask, shaped)
    return pc.fill_null(mask, False)


class KeyHasher:
    """HMAC-SHA256 of values with one secret key; `protect` replaces the identifier-looking ones.

    Build it from the workspace key (`KeyHasher(store.box.derive_key(PURPOSE))`); `KeyHasher.ephemeral()` has
    a random key, for row keys that only need to be consistent within one run. Its repr never shows the key.
    """

    PURPOSE: Final = "row-keys-v1"

    __slots__ = ("_inner", "_key", "_local", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the key must hold at least 16 bytes")
        self._key = key
        padded = (hashlib.sha256(key).digest() if len(key) > _BLOCK else key).ljust(_BLOCK, b"\0")
        self._inner = bytes(b ^ 0x36 for b in padded)
        self._outer = bytes(b ^ 0x5C for b in padded)
        self._local = threading.local()

    @classmethod
    def ephemeral(cls) -> KeyHasher:
        """A hasher with a random key (consistent for its own lifetime only)."""
        return cls(secrets.token_bytes(32))

    def __reduce__(self) -> tuple[type[KeyHasher], tuple[bytes]]:
        # Picklable (its DuckDB connections are per thread and made again): Spark ships it to executors.
        return (KeyHasher, (self._key,))

    def __repr__(self) -> str:
        return "KeyHasher(key=<redacted>)"

    def hash_one(self, value: str) -> str:
        """The stored form of one value (scalar reference of `hash_array`)."""
        digest = hmac.new(self._key, value.encode("utf-8"), hashlib.sha256).hexdigest()
        return PREFIX + digest[:HEX_CHARS]

    def hash_array(self, values: pa.Array) -> pa.Array:
        """The stored form of every value (nulls stay null): the compiled kernel, else DuckDB."""
        if len(values) == 0:
            return pa.array([], pa.string())
        fast = hmac_sha256_hex(values, self._key, PREFIX, HEX_CHARS) if len(self._key) <= _BLOCK else None
        if fast is not None:
            return fast
        con = self._con()
        con.register("ttsync_key_values", pa.table({"v": values}))
        try:
            table = con.sql(
                f"SELECT '{PREFIX}' || left(sha256($outer || unhex(sha256($inner || encode(v)))), {HEX_CHARS}) "
                "AS h FROM ttsync_key_values",
                params={"inner": self._inner, "outer": self._outer},
            ).to_arrow_table()
        finally:
            con.unregister("ttsync_key_values")
        return table.column("h").combine_chunks().cast(pa.string())

    def protect(self, values: pa.Array, original: pa.Array | None = None) -> pa.Array:
        """`values` (strings) with every identifier-looking value replaced by its keyed hash; the others as
        they are. Only the replaced values are hashed. `original`: the integer column `values` was cast
        from, if any (checked by value: only numbers of 10 to 15 digits can be phone numbers)."""
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        if original is not None and pa.types.is_integer(original.type):
            number = pc.cast(original, pa.float64())  # any integer width; 10**15 is exact in a double
            mask = pc.fill_null(pc.and_(pc.greater_equal(number, 10**9), pc.less(number, 10**15)), False)
        else:
            mask = looks_like_identifier(values)
        if not pc.any(mask).as_py():
            return values
        if values.null_count == 0 and pc.all(mask).as_py():
            return self.hash_array(values)  # a whole column of emails (or MAIDs): no gather and scatter
        positions = pc.indices_nonzero(mask)
        hashed = self.hash_array(pc.take(values, positions))
        return pc.replace_with_mask(values, mask, hashed)

    def _con(self) -> duckdb.DuckDBPyConnection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = duckdb.connect(config={"threads": 1})
            self._local.con = con
        return con
