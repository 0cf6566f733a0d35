from typing_extensions import Buffer

def buckets(
    offsets: Buffer, data: Buffer, start: int, n: int, key: Buffer, prefix: Buffer, modulus: int, /
) -> bytes: ...
