from typing_extensions import Buffer

def buckets(
    offsets: Buffer, data: Buffer, start: int, n: int, key: Buffer, prefix: Buffer, modulus: int, /
) -> bytes: ...
def hex_words(offsets: Buffer, data: Buffer, start: int, n: int, /) -> bytes | None: ...

# The digest-set functions take any buffer exporter (numpy arrays included, which typeshed's Buffer misses).
def radix_scatter(
    k1: object,
    k2: object,
    k3: object,
    k4: object,
    n: int,
    first_index: int,
    shift: int,
    next: object,
    records: object,
    /,
) -> None: ...
def sort_buckets(records: object, starts: object, buckets: int, /) -> None: ...
def merge_sorted(
    records: object,
    n: int,
    state: object,
    s1: object,
    s2: object,
    s3: object,
    s4: object,
    m: int,
    final: bool,
    /,
) -> tuple[bytes, bytes] | None: ...
def distinct_sorted(records: object, n: int, /) -> int: ...
