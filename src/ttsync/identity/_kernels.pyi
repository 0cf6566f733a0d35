from typing_extensions import Buffer

def sha256_hex(offsets: Buffer, data: Buffer, start: int, n: int, /) -> tuple[bytes, bytes, bytes]: ...
def phone_scan(offsets: Buffer, data: Buffer, start: int, n: int, /) -> tuple[bytes, bytes, bytes]: ...
def email_fast(
    offsets: Buffer, data: Buffer, start: int, n: int, max_length: int, refused_tlds: Buffer, /
) -> bytes: ...
def hmac_sha256_hex(
    offsets: Buffer, data: Buffer, start: int, n: int, key: Buffer, prefix: Buffer, hex_chars: int, /
) -> tuple[bytes, bytes]: ...
def sha256_hex_into(
    offsets: Buffer,
    data: Buffer,
    start: int,
    n: int,
    prefix: bytes,
    out_hex: Buffer,
    out_keys: Buffer,
    pos: int,
) -> None: ...
def email_sha256_into(
    offsets: Buffer,
    data: Buffer,
    start: int,
    n: int,
    max_length: int,
    refused_tlds: bytes,
    out_hex: Buffer,
    out_keys: Buffer,
    pos: int,
) -> tuple[bytes, int]: ...
def phone_e164(
    offsets: Buffer,
    data: Buffer,
    start: int,
    n: int,
    home: bytes | None,
    codes: tuple[bytes | None, ...],
    params: Buffer,
    /,
) -> tuple[bytes, bytes, bytes, int, bytes]: ...
