"""Benchmark of ttsync.identity.Preparer: rows/s and peak RSS for emails, mobile ids and phones.

Generates deterministic data in batches beforehand (generation is not timed), prepares it with
`Preparer.process_stream` as the product does (timing the preparer's construction too), and prints one
JSON line per kind. Each kind runs in its own subprocess so that its peak RSS is its own. Besides wall
rows/s it reports the CPU time of those calls (all threads) and the 1-minute load average, since
this machine's 2 cores are shared: cpu_ns_per_row is the cost, rows_per_s what the cores gave us.

Every line also carries the anchors, measured in the same run (before the kinds): OpenSSL's SHA-256 of
32-byte inputs per core (`openssl speed -evp sha256 -bytes 32`), a Python hashlib loop over 32-byte inputs,
DuckDB's sha256() over 32-character strings (all its threads), and phonenumbers parse + E.164 format of this
bench's phone values (one core). `fraction_of_sha256_limit` is rows_per_s over the SHA-256 limit of all
cores: OpenSSL's per-core rate (the hashlib loop's when the openssl binary is missing) times the CPU count;
`rows_per_s_all_cores_at_cpu_cost` and `fraction_of_sha256_limit_at_cpu_cost` are the same at this run's CPU
cost per row on every core (what the code costs, when the machine is shared).

`main_thread_cpu_ns_per_row` / `worker_cpu_ns_per_row` split it by thread: the calling thread's share
(`serial_fraction`) is work the workers cannot overlap, so it bounds the wall rate of 2 workers on 2 cores.
`first_batch_cpu_ns_per_row` and `later_batches_cpu_ns_per_row` split that cost: the first batch also pays
once-per-process setup (phone metadata, first touch of memory); `first_batch_seconds` is the wall time to the
first prepared batch. `report_seconds` times the final duplicate count (close() and report()), which
`rows_per_s` leaves out; `peak_rss_mib` includes the generated input (`input_mib`). `--workers 1` against the default (2 on
2 CPUs) shows whether the worker threads scale, on a quiet machine.

    python bench/prepare.py --rows 10000000 [--batch-rows 500000] [--kinds email,maid,phone] [--workers N]
"""

from __future__ import annotations

# First, as in a `ttsync` command: importing ttsync sets Arrow's allocator options before pyarrow loads.
import ttsync  # noqa: F401

# isort: split
import argparse
import gc
import hashlib
import json
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import duckdb
import phonenumbers
import pyarrow as pa

from ttsync.identity import ColumnSpec, Preparer, kernels
from ttsync.identity.spec import Kind

US_AREA_CODES = [
    201,
    202,
    206,
    212,
    213,
    305,
    310,
    312,
    404,
    415,
    469,
    512,
    602,
    617,
    646,
    702,
    713,
    718,
    805,
    917,
]
FOREIGN = [  # (format, digits to randomise) written the way warehouses hold them
    "+44 20 7946 {4}",
    "+44 7700 900{3}",
    "011 44 20 7946 {4}",
    "+49 30 1234{4}",
    "+33 1 42 68 {2} {2}",
    "+91 98{3} {5}",
    "+61 4 12{2} {4}",
    "+81 90-1234-{4}",
    "+55 11 9{4}-{4}",
    "+52 55 {4} {4}",
]


def _digits(rng: random.Random, n: int) -> str:
    return "".join(str(rng.randrange(10)) for _ in range(n))


def _phone(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.80:
        a, b, c = rng.choice(US_AREA_CODES), rng.randrange(200, 1000), _digits(rng, 4)
        form = rng.randrange(5)
        return [f"({a}) {b}-{c}", f"{a}-{b}-{c}", f"+1 {a} {b} {c}", f"1{a}{b}{c}", f"{a}.{b}.{c}"][form]
    if roll < 0.95:
        fmt = rng.choice(FOREIGN)
        for width in (2, 3, 4, 5):
            while f"{{{width}}}" in fmt:
                fmt = fmt.replace(f"{{{width}}}", _digits(rng, width), 1)
        return fmt
    if roll < 0.996:  # invalid but well-formed: wrong lengths, unassigned ranges
        return rng.choice(
            [_digits(rng, 3), f"555-{_digits(rng, 4)}", f"(000) {_digits(rng, 3)}-0000", _digits(rng, 12)]
        )
    # Shapes only the scalar reference decides (about 0.4%): extensions, unknown country codes,
    # letters, other scripts; each value distinct.
    return rng.choice(
        [
            f"213 373 {_digits(rng, 4)} ext {_digits(rng, 2)}",
            f"+999 {_digits(rng, 3)} {_digits(rng, 4)}",
            f"1-800-FLOWERS-{_digits(rng, 2)}",
            f"２１３ ３７３ {_digits(rng, 4)}",
        ]
    )


def _email(rng: random.Random, i: int) -> str:
    roll = rng.random()
    if roll < 0.97:
        name = f"{rng.choice(['Ann', 'bob', 'CHEN', 'd.k', 'eve_x'])}{i % 5_000_000}"
        return f" {name}@{rng.choice(['gmail.com', 'Example.org', 'mail.co.uk', 'yahoo.com'])} "
    if roll < 0.99:
        return f"user{i}.example.com"  # no @
    if roll < 0.9995:
        return rng.choice(
            [f"a..b{i}@x.com", f"o'neil{i}@x.com", f"x{i}@localhost", f"x{i}@mail.test", f"a b{i}@x.com"]
        )
    # Only the scalar reference decides these (about 0.05%): IDNA domains, non-ASCII.
    return rng.choice([f"u{i}@xn--bcher-kva.example", f"jörg{i}@bücher.example"])


def _maid(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.97:
        text = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        return text.upper() if rng.random() < 0.5 else text
    if roll < 0.985:
        return "00000000-0000-0000-0000-000000000000"
    return _digits(rng, 20)


def batches(kind: str, rows: int, batch_rows: int, seed: int = 7) -> Iterator[pa.RecordBatch]:
    """Deterministic batches of `kind` values with a row_key column."""
    rng = random.Random(seed)
    start = 0
    while start < rows:
        n = min(batch_rows, rows - start)
        keys = [str(i) for i in range(start, start + n)]
        if kind == "email":
            values = [_email(rng, i) for i in range(start, start + n)]
        elif kind == "maid":
            values = [_maid(rng) for _ in range(n)]
        else:
            values = [_phone(rng) for _ in range(n)]
        yield pa.record_batch({"row_key": keys, "value": values})
        start += n


def run_kind(kind: str, rows: int, batch_rows: int, workers: int | None = None) -> dict[str, object]:
    """Prepare `rows` rows of one kind the way the product does (`Preparer.process_stream`: the next batch's
    chunks run while this one's results are joined), over batches generated beforehand: only preparing
    is timed, never generating. The final report (the duplicate count) is timed apart."""
    spec_kind: Kind = {"email": "email", "maid": "aaid", "phone": "phone"}[kind]  # type: ignore[assignment]
    data = list(batches(kind, rows, batch_rows))
    input_mib = sum(b.nbytes for b in data) / 2**20
    gc.collect()  # the generator's garbage, before the timed region
    first_rows = data[0].num_rows if data else 0
    first_cpu_seconds = first_seconds = 0.0
    produced = 0
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    c0 = time.process_time()
    m0 = time.thread_time()
    preparer = Preparer(
        [ColumnSpec("value", spec_kind, region="US" if kind == "phone" else None)], workers=workers
    )
    for i, out in enumerate(preparer.process_stream(data)):
        if i == 0:
            # The first batch also pays once-per-process costs (libphonenumber's metadata and the rules
            # built from it, idna's tables, the first touch of the memory later batches reuse); its
            # CPU here also holds what the workers did of the second batch by then (at most a chunk).
            first_cpu_seconds, first_seconds = time.process_time() - c0, time.perf_counter() - t0
        produced += out.ids.num_rows
    main_cpu_seconds = time.thread_time() - m0  # the calling thread's own CPU: work no worker can overlap
    cpu_seconds = time.process_time() - c0
    seconds = time.perf_counter() - t0
    r0, rc0 = time.perf_counter(), time.process_time()
    preparer.close()
    report = preparer.report()  # after close: the duplicate counts are final (as the product reads them)
    report_seconds, report_cpu_seconds = time.perf_counter() - r0, time.process_time() - rc0
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "kind": kind,
        "rows": rows,
        "batch_rows": batch_rows,
        "seconds": round(seconds, 3),
        "first_batch_seconds": round(first_seconds, 3),
        "rows_per_s": round(rows / seconds) if seconds else None,
        "cpu_ns_per_row": round(cpu_seconds * 1e9 / rows) if rows else None,
        "first_batch_cpu_ns_per_row": round(first_cpu_seconds * 1e9 / first_rows) if first_rows else None,
        "later_batches_cpu_ns_per_row": round((cpu_seconds - first_cpu_seconds) * 1e9 / (rows - first_rows))
        if rows > first_rows
        else None,
        "cores_used": round(cpu_seconds / seconds, 2) if seconds else None,
        # With workers: CPU on the calling thread (splitting a batch, joining the chunks' results) against
        # CPU on the worker threads; serial_fraction is the calling thread's share of the process CPU.
        "main_thread_cpu_ns_per_row": round(main_cpu_seconds * 1e9 / rows) if rows else None,
        "worker_cpu_ns_per_row": round((cpu_seconds - main_cpu_seconds) * 1e9 / rows) if rows else None,
        "serial_fraction": round(main_cpu_seconds / cpu_seconds, 3)
        if cpu_seconds and preparer.workers > 1
        else None,
        "ids": produced,
        "rejected": {k: v for t in report.types for k, v in t.rejected.items()},
        "duplicates": sum(t.duplicates for t in report.types),
        # Counting duplicates at the end (close() and report()): once per run, not in rows_per_s.
        "report_seconds": round(report_seconds, 3),
        "report_cpu_seconds": round(report_cpu_seconds, 3),
        "peak_rss_mib": round(peak_kib / 1024, 1),
        "input_mib": round(input_mib, 1),  # the generated batches, all in memory (part of peak_rss_mib)
        "workers": preparer.workers,
        "compiled_kernels": kernels.kernel_available(),
        "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def _openssl_sha256_32b_per_s() -> float | None:
    """Hashes/s of one core from `openssl speed -evp sha256 -bytes 32` (None without the binary)."""
    binary = shutil.which("openssl")
    if binary is None:
        return None
    cmd = [binary, "speed", "-seconds", "1", "-evp", "sha256", "-bytes", "32"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False).stdout
    match = re.search(r"^sha256\s+([0-9.]+)k", out, re.MULTILINE)  # "The 'numbers' are in 1000s of bytes"
    return float(match.group(1)) * 1000 / 32 if match else None


def anchors(hashes: int) -> dict[str, float | int | None]:
    """The reference rates this run is compared with, measured now on this machine."""
    inputs = [i.to_bytes(32, "little") for i in range(hashes)]
    sha256 = hashlib.sha256
    c0 = time.process_time()
    for data in inputs:
        sha256(data).digest()
    hashlib_rate = hashes / max(time.process_time() - c0, 1e-9)
    con = duckdb.connect()
    t0 = time.perf_counter()
    con.execute(f"SELECT count(sha256(lpad(i::VARCHAR, 32, 'x'))) FROM range({hashes}) t(i)").fetchall()
    duckdb_rate = hashes / max(time.perf_counter() - t0, 1e-9)
    duckdb_threads = con.execute("SELECT current_setting('threads')").fetchone()
    con.close()
    rng = random.Random(11)
    phones = [_phone(rng) for _ in range(max(hashes // 10, 100))]
    c0 = time.process_time()
    for text in phones:
        try:
            number = phonenumbers.parse(text, "US")
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    phonenumbers_rate = len(phones) / max(time.process_time() - c0, 1e-9)
    return {
        "openssl_sha256_32b_per_s_per_core": round(openssl)
        if (openssl := _openssl_sha256_32b_per_s())
        else None,
        "hashlib_sha256_32b_per_s": round(hashlib_rate),
        "duckdb_sha256_per_s": round(duckdb_rate),
        "duckdb_threads": int(duckdb_threads[0]) if duckdb_threads else None,
        "phonenumbers_per_s": round(phonenumbers_rate),
        "cpus": os.cpu_count() or 1,
    }


def main() -> None:
    """Parse arguments; run each kind in a subprocess and print its JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--batch-rows", type=int, default=500_000)
    parser.add_argument("--kinds", default="email,maid,phone")
    parser.add_argument(
        "--workers", type=int, help="the preparer's worker threads (default: its own, min(2, CPUs))"
    )
    parser.add_argument(
        "--anchor-hashes", type=int, default=2_000_000, help="inputs of the hashlib and DuckDB anchor loops"
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_kind(args.one, args.rows, args.batch_rows, args.workers)), flush=True)
        return
    reference = anchors(args.anchor_hashes)
    per_core = reference["openssl_sha256_32b_per_s_per_core"] or reference["hashlib_sha256_32b_per_s"]
    limit = float(per_core or 0) * float(reference["cpus"] or 1)
    for kind in args.kinds.split(","):
        cmd = [
            sys.executable,
            __file__,
            "--one",
            kind,
            "--rows",
            str(args.rows),
            "--batch-rows",
            str(args.batch_rows),
            *(["--workers", str(args.workers)] if args.workers else []),
        ]
        out = subprocess.run(cmd, check=True, timeout=1800, capture_output=True, text=True).stdout
        line = json.loads(out)
        line["anchors"] = reference
        line["sha256_limit_per_s"] = round(limit)
        line["fraction_of_sha256_limit"] = (
            round(line["rows_per_s"] / limit, 4) if line["rows_per_s"] else None
        )
        # What all cores would give at this run's CPU cost per row: on a shared machine the wall rate says how
        # much CPU the run got; this says what the code costs.
        cpu_ns = line["cpu_ns_per_row"]
        cpu_rate = float(reference["cpus"] or 1) * 1e9 / cpu_ns if cpu_ns else 0.0
        line["rows_per_s_all_cores_at_cpu_cost"] = round(cpu_rate)
        line["fraction_of_sha256_limit_at_cpu_cost"] = round(cpu_rate / limit, 4) if limit else None
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
