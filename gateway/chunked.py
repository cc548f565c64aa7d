"""aws-chunked request bodies: `<hex-size>[;chunk-signature=<sig>]\\r\\n<data>\\r\\n ... 0...\\r\\n`
followed by optional trailer lines (`x-amz-checksum-crc32:<b64>`, `x-amz-trailer-signature:<sig>`)
and an empty line.

Signed chunks are verified as they arrive, each against the previous signature (seeded by the
request's own signature). Data is yielded in at most 1 MiB pieces, so a huge chunk size announced
by a client never makes us allocate it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

from aiohttp.http_exceptions import LineTooLong

from dfstore.errors import SignatureDoesNotMatch
from gateway.auth import AuthContext, chunk_string_to_sign, sign, trailer_string_to_sign
from gateway.errors import IncompleteBody, InvalidChunkSizeError

PIECE_BYTES = 1024 * 1024
MAX_LINE_BYTES = 4096
MAX_TRAILER_LINES = 16


class ByteStream(Protocol):
    """The subset of aiohttp's StreamReader the decoder needs."""

    async def readline(self) -> bytes: ...

    async def readexactly(self, n: int) -> bytes: ...


@dataclass
class ChunkedResult:
    """Filled in while decoding: the trailers once the body is done."""

    trailers: dict[str, str] = field(default_factory=dict)
    decoded_bytes: int = 0


async def _line(stream: ByteStream) -> bytes:
    try:
        line = await stream.readline()
    except (ValueError, LineTooLong):  # a "line" longer than the read buffer
        raise InvalidChunkSizeError("an aws-chunked header line is too long") from None
    if not line.endswith(b"\n"):
        raise IncompleteBody("the aws-chunked body ended early")
    if len(line) > MAX_LINE_BYTES:
        raise InvalidChunkSizeError("an aws-chunked header line is too long")
    return line.rstrip(b"\r\n")


def _parse_header(line: bytes) -> tuple[int, str]:
    size_s, _, ext = line.partition(b";")
    try:
        size = int(size_s.strip(), 16)
    except ValueError:
        raise InvalidChunkSizeError(f"bad aws-chunked size {size_s[:32]!r}") from None
    if size < 0:
        raise InvalidChunkSizeError("negative aws-chunked size")
    signature = ""
    name, _, value = ext.partition(b"=")
    if name.strip() == b"chunk-signature":
        signature = value.strip().decode("ascii", "replace")
    return size, signature


async def decode_aws_chunked(
    stream: ByteStream,
    result: ChunkedResult,
    *,
    auth: AuthContext | None,
    signed_trailer: bool = False,
) -> AsyncIterator[bytes]:
    """Yield the decoded body. With `auth`, every chunk signature (and a trailer signature when
    `signed_trailer`) is checked; a wrong one raises SignatureDoesNotMatch before the next chunk."""
    previous = auth.seed_signature if auth else ""
    while True:
        size, signature = _parse_header(await _line(stream))
        if auth is not None and not signature:
            raise SignatureDoesNotMatch("an aws-chunked chunk lacks its chunk-signature")
        digest = hashlib.sha256() if auth is not None else None
        remaining = size
        while remaining:
            try:
                piece = await stream.readexactly(min(remaining, PIECE_BYTES))
            except EOFError:
                raise IncompleteBody("the aws-chunked body ended inside a chunk") from None
            if digest is not None:
                digest.update(piece)
            remaining -= len(piece)
            result.decoded_bytes += len(piece)
            yield piece
        if auth is not None and digest is not None:
            expected = sign(auth.signing_key, chunk_string_to_sign(auth, previous, digest.hexdigest()))
            if not hmac.compare_digest(expected, signature):
                raise SignatureDoesNotMatch("an aws-chunked chunk signature does not match")
            previous = signature
        if size == 0:
            break
        if await _line(stream) != b"":
            raise InvalidChunkSizeError("aws-chunked data is longer than its announced size")
    await _read_trailers(stream, result, auth if signed_trailer else None, previous)


async def _read_trailers(
    stream: ByteStream, result: ChunkedResult, auth: AuthContext | None, previous: str
) -> None:
    signed_block = b""
    trailer_signature = ""
    for _ in range(MAX_TRAILER_LINES + 1):
        try:
            line = await _line(stream)
        except IncompleteBody:
            break  # some clients close right after the last trailer line
        if not line:
            break
        name, sep, value = line.decode("utf-8", "replace").partition(":")
        if not sep:
            raise InvalidChunkSizeError("malformed aws-chunked trailer line")
        name, value = name.strip().lower(), value.strip()
        if name == "x-amz-trailer-signature":
            trailer_signature = value
            continue
        result.trailers[name] = value
        signed_block += f"{name}:{value}\n".encode()
    else:
        raise InvalidChunkSizeError("too many aws-chunked trailer lines")
    if auth is not None:
        expected = sign(auth.signing_key, trailer_string_to_sign(auth, previous, signed_block))
        if not hmac.compare_digest(expected, trailer_signature):
            raise SignatureDoesNotMatch("the aws-chunked trailer signature does not match")
