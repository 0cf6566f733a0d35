"""DuplicateCounter: exact counts per identifier type through sorted runs on disk, and nothing left behind."""

from __future__ import annotations

import threading

import numpy as np
import pyarrow as pa
import pytest

from ttsync.identity.duplicates import DuplicateCounter


def test_counts_are_exact_across_runs_slices_and_threads() -> None:
    rng = np.random.default_rng(7)
    emails = rng.integers(0, 2**64 - 1, 30_000, dtype=np.uint64, endpoint=True)
    emails = np.concatenate([emails, emails[:4_000], emails[:50]])  # 4,050 repeats, some keys 3 times
    rng.shuffle(emails)
    phones = np.array([0, 2**64 - 1, 2**63, 2**63, 0], dtype=np.uint64)  # the ends of the key space
    counter = DuplicateCounter(run_keys=1_000)  # dozens of runs: every slice is read from several
    tmp = counter._tmp

    def add(part: np.ndarray) -> None:
        for start in range(0, len(part), 700):
            counter.add("email", pa.array(part[start : start + 700]))

    threads = [threading.Thread(target=add, args=(half,)) for half in np.array_split(emails, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counter.add("phone", pa.array(phones))
    counter.add("maid", pa.array([], pa.uint64()))
    assert counter.counts() == {"email": 4_050, "phone": 2}
    counter.add("phone", pa.array([5, 5], pa.uint64()))  # counting mid-run, then adding more, is fine
    counter.close()
    assert counter.counts() == {"email": 4_050, "phone": 3}
    assert not tmp.exists()
    with pytest.raises(RuntimeError, match="closed"):
        counter.add("email", pa.array([1], pa.uint64()))
