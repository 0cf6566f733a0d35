"""Row keys seen in earlier chunks of a query, in bounded memory: `duplicate_row_key` across chunks.

Grouping catches a row key used twice within a chunk (`grouping._flag_duplicate_row_keys`); this set catches
a key that comes back in a later chunk. Each key is reduced to a 64-bit hash (DuckDB's `hash`), never stored
as text; row keys that look like identifiers are keyed-hashed before this point anyway (identity/rowkeys.py).

- A Bloom filter (5 probes per key in one 64-bit word) says "certainly new" for almost every key, without
  touching disk. It grows with the keys (24 bits each, ~3 MiB at a million) up to `BLOOM_BITS` (32 MiB,
  reached at ~11M keys), then stays: memory does not grow beyond it with the number of rows.
- Every hash is also appended to a file in a private temporary directory (deleted on close), in sorted runs
  of up to `RUN_KEYS` (the latest run is held in memory until it is full). Only the keys the filter reports
  as maybe seen (true repeats, and about 1 new key in 1,000 at 10M rows) are looked up there exactly: one
  4 KiB block per run, found through the run's fence (every 512th hash, in memory: 16 KB per million keys).

Exact up to 64-bit hash collisions: a new key is taken for a repeated one with probability about 3e-6 in a
query of 10M rows (the same bound as identity's duplicate counter).
"""

from __future__ import annotations

import mmap
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Final

import duckdb
import numpy as np
import pyarrow as pa

BLOOM_BITS: Final = 2**28  # 32 MiB at most: a false "maybe" for ~1 new key in 1,000 at 11M keys (measured)
BITS_PER_KEY: Final = 24  # the filter doubles when it holds fewer bits than this per key (until the maximum)
MIN_WORDS: Final = 2**14  # 128 KiB to start with
PROBES: Final = 5
RUN_KEYS: Final = 1_000_000  # hashes per sorted run on disk (8 MB)
READ_KEYS: Final = 65_536  # hashes read at a time when the filter is rebuilt
FENCE: Final = 512  # hashes per block of a run read for an exact lookup (4 KiB)


class SeenKeys:
    """Row keys added so far, as 64-bit hashes (`hashes`); `seen` tells which were added before. Close when
    done."""

    def __init__(self, bloom_bits: int = BLOOM_BITS, run_keys: int = RUN_KEYS) -> None:
        if bloom_bits & (bloom_bits - 1) or bloom_bits < 64:
            raise ValueError("bloom_bits must be a power of two of at least 64")
        # A blocked filter: each key's probes fall in one 64-bit word (one memory access per key). It starts
        # small and doubles (rebuilt from the hashes on disk) as keys come, up to `bloom_bits`.
        # The large arrays here are never handed back to malloc while the set is open (the filter is an
        # anonymous mapping, the latest run one buffer reused): freeing a block of megabytes raises glibc's
        # mmap threshold, and later arrays of the grouping thread then stay in its heap (measured: +40 MiB
        # peak RSS at 1M rows with per-run arrays).
        self._max_words = bloom_bits // 64
        self._map, self._words = _zeroed_words(min(self._max_words, MIN_WORDS))
        self._word_mask = np.uint64(len(self._words) - 1)
        self._buffer = np.empty(run_keys, dtype=np.uint64)  # the latest run, not yet on disk
        self._tmp = Path(tempfile.mkdtemp(prefix="ttsync-rowkeys-"))
        self._cleanup = weakref.finalize(self, shutil.rmtree, self._tmp, ignore_errors=True)
        self._file = self._tmp / "runs.u64"
        self._runs: list[tuple[int, int]] = []  # (offset in keys, length) of each sorted run in the file
        self._fences: list[np.ndarray] = []  # each run's every FENCE-th hash
        self._stored = 0
        self._pending: list[tuple[int, int]] = []  # (start, stop) of each sorted part of `_buffer`
        self._pending_keys = 0
        self._con = duckdb.connect(config={"threads": 1})

    def hashes(self, keys: pa.Array) -> np.ndarray:
        """The 64-bit hash of each of `keys` (strings; a null has a hash too: callers flag nulls apart)."""
        self._con.register("batch", pa.table({"k": keys}))
        try:
            result = self._con.sql("SELECT hash(k) AS h FROM batch").to_arrow_table()
        finally:
            self._con.unregister("batch")
        hashes: np.ndarray = result.column("h").to_numpy()
        return hashes

    def seen(self, hashes: np.ndarray) -> np.ndarray:
        """Boolean mask: which of `hashes` were added before."""
        word, bits = self._probes(hashes)
        maybe: np.ndarray = (self._words[word] & bits) == bits
        if maybe.any():
            where = np.flatnonzero(maybe)
            maybe[where] = self._stored_exactly(hashes[where])
        return maybe

    def add(self, hashes: np.ndarray) -> None:
        """Record `hashes`."""
        start = 0
        while start < len(hashes):
            if self._pending_keys == len(self._buffer):
                self._write_run()
            part = hashes[start : start + len(self._buffer) - self._pending_keys]
            stop = self._pending_keys + len(part)
            self._buffer[self._pending_keys : stop] = part
            self._buffer[self._pending_keys : stop].sort()
            self._pending.append((self._pending_keys, stop))
            self._pending_keys = stop
            start += len(part)
            full = (self._stored + self._pending_keys) * BITS_PER_KEY > len(self._words) * 64
            if full and len(self._words) < self._max_words:
                self._grow()
            else:
                self._set(part)

    def _write_run(self) -> None:
        run = self._buffer[: self._pending_keys]
        run.sort()
        with self._file.open("ab") as out:
            run.tofile(out)
        self._runs.append((self._stored, len(run)))
        self._fences.append(run[::FENCE].copy())
        self._stored += len(run)
        self._pending, self._pending_keys = [], 0

    def _set(self, hashes: np.ndarray) -> None:
        word, bits = self._probes(hashes)
        # `.at`, not `words[word] |= bits`: two keys may share a word in one call.
        np.bitwise_or.at(self._words, word, bits)

    def _grow(self) -> None:
        """Double the filter (or more, up to its maximum) and set the bits of every hash added so far."""
        keys = self._stored + self._pending_keys
        words = len(self._words)
        while keys * BITS_PER_KEY > words * 64 and words < self._max_words:
            words *= 2
        old = self._map
        del self._words  # the old mapping can close only once no array refers to it
        self._map, self._words = _zeroed_words(words)
        old.close()
        self._word_mask = np.uint64(words - 1)
        if self._runs:
            with self._file.open("rb") as file:
                for offset in range(0, self._stored, READ_KEYS):
                    self._set(np.fromfile(file, np.uint64, min(READ_KEYS, self._stored - offset)))
        self._set(self._buffer[: self._pending_keys])

    def close(self) -> None:
        """Release DuckDB and delete the temporary directory."""
        self._con.close()
        self._cleanup()
        del self._words
        self._map.close()

    def _probes(self, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(word of each hash, its `PROBES` bits in that word): the high half picks the word, 6-bit fields
        of the low half the bits."""
        word = (hashes >> np.uint64(32)) & self._word_mask
        one = np.uint64(1)
        bits = np.zeros(len(hashes), dtype=np.uint64)
        for i in range(PROBES):
            bits |= one << ((hashes >> np.uint64(6 * i)) & np.uint64(63))
        return word, bits

    def _stored_exactly(self, hashes: np.ndarray) -> np.ndarray:
        """Which of `hashes` (few: the filter's "maybe") were added before. Each run on disk is searched through
        its fence (every `FENCE`-th hash, in memory): one block of the file is read per hash and run."""
        found = np.zeros(len(hashes), dtype=bool)
        for begin, end in self._pending:  # sorted: a binary search each (np.isin would sort them again)
            part = self._buffer[begin:end]
            found |= part[np.minimum(np.searchsorted(part, hashes), len(part) - 1)] == hashes
        if not self._runs:
            return found
        with self._file.open("rb") as file:
            for (offset, length), fence in zip(self._runs, self._fences, strict=True):
                blocks = np.searchsorted(fence, hashes, side="right") - 1
                for block in np.unique(blocks[blocks >= 0]):
                    start = int(block) * FENCE
                    file.seek((offset + start) * 8)
                    values = np.frombuffer(file.read(min(FENCE, length - start) * 8), np.uint64)
                    mine = np.flatnonzero(blocks == block)
                    at = np.minimum(np.searchsorted(values, hashes[mine]), len(values) - 1)
                    found[mine] |= values[at] == hashes[mine]
        return found


def _zeroed_words(words: int) -> tuple[mmap.mmap, np.ndarray]:
    """`words` zeroed 64-bit words in an anonymous mapping (pages are mapped as they are first written)."""
    mapping = mmap.mmap(-1, words * 8)
    return mapping, np.frombuffer(mapping, dtype=np.uint64)
