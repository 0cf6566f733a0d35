"""SeenKeys: exact answers whatever the Bloom filter says, with runs on disk, and nothing left behind."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ttsync.events.seen_keys import SeenKeys


def test_seen_is_exact_through_a_saturated_filter_and_runs_on_disk() -> None:
    # A 64-bit filter says "maybe" for nearly every key, and runs of 1,000 keys (two blocks each) put most
    # hashes on disk: every answer then comes from the exact lookup.
    seen = SeenKeys(bloom_bits=64, run_keys=1_000)
    tmp = seen._tmp
    added = [f"key-{i}" for i in range(0, 5_000, 2)]
    for start in range(0, len(added), 300):
        seen.add(seen.hashes(pa.array(added[start : start + 300])))
    assert (tmp / "runs.u64").stat().st_size > 0
    asked = [f"key-{i}" for i in range(5_000)]
    assert seen.seen(seen.hashes(pa.array(asked))).tolist() == [i % 2 == 0 for i in range(5_000)]
    seen.close()
    assert not tmp.exists()


def test_a_fresh_set_has_seen_nothing() -> None:
    seen = SeenKeys()
    hashes = seen.hashes(pa.array(["a", "b", None]))
    assert not np.any(seen.seen(hashes))
    seen.add(hashes[:1])
    assert seen.seen(hashes).tolist() == [True, False, False]
    seen.close()


def test_the_filter_grows_and_keeps_every_key() -> None:
    # From 128 KiB the filter doubles as keys come; every key added before a growth is still seen after it.
    seen = SeenKeys(run_keys=50_000)
    start = len(seen._words)
    keys = pa.array([f"row-{i}" for i in range(200_000)])
    hashes = seen.hashes(keys)
    for part in range(0, 200_000, 25_000):
        seen.add(hashes[part : part + 25_000])
    assert len(seen._words) > start
    assert seen.seen(hashes).all()
    assert not seen.seen(seen.hashes(pa.array([f"other-{i}" for i in range(10_000)]))).any()
    seen.close()
