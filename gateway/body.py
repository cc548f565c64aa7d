"""Request bodies of PUT object and UploadPart: framing (plain or aws-chunked) and verification.

`RequestBody.chunks()` yields the decoded bytes in pieces of at most 1 MiB and raises when the body
does not match what the client promised (length, x-amz-content-sha256, x-amz-checksum-*), after
the last piece and before the iterator ends, so a consumer that commits only at the end never
commits a bad object. Content-MD5 is only parsed here: whoever computes the ETag compares it.
Hashing runs in a worker thread (hashlib, zlib and awscrt release the GIL; see `gateway.checksums`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from dfstore.errors import BadDigest, EntityTooLarge, InvalidArgument, MissingContentLength
from gateway import auth as sigv4
from gateway.checksums import ALGORITHMS, Checksum, new_checksum
from gateway.chunked import PIECE_BYTES, ChunkedResult, decode_aws_chunked
from gateway.errors import ChecksumMismatch, IncompleteBody, InvalidDigest, XAmzContentSHA256Mismatch

_THREAD_HASH_MIN = 64 * 1024


@dataclass
class RequestBody:
    request: web.Request
    auth: sigv4.AuthContext | None
    checksums: dict[str, str] = field(default_factory=dict)  # verified x-amz-checksum-*, for the reply

    @property
    def payload_mode(self) -> str:
        if self.auth is not None:
            return self.auth.payload_hash
        return self.request.headers.get("x-amz-content-sha256", sigv4.UNSIGNED_PAYLOAD)

    def is_aws_chunked(self) -> bool:
        mode = self.payload_mode
        encoding = self.request.headers.get("Content-Encoding", "")
        return mode.startswith("STREAMING-") or "aws-chunked" in encoding

    def declared_length(self) -> int:
        """The decoded size the client announced; MissingContentLength when there is none."""
        headers = self.request.headers
        raw = headers.get("x-amz-decoded-content-length") if self.is_aws_chunked() else None
        if raw is None:
            raw = headers.get("Content-Length") if not self.is_aws_chunked() else None
        if raw is None:
            raise MissingContentLength("You must provide the Content-Length HTTP header.")
        if not raw.strip().isdigit():
            raise InvalidArgument("Content-Length must be a non-negative integer")
        return int(raw)

    def content_md5(self) -> str | None:
        """Content-MD5 as hex, for the service to verify; InvalidDigest if it is not base64 of 16 bytes."""
        raw = self.request.headers.get("Content-MD5")
        if raw is None:
            return None
        try:
            digest = base64.b64decode(raw.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise InvalidDigest("The Content-MD5 you specified is not valid.") from None
        if len(digest) != 16:
            raise InvalidDigest("The Content-MD5 you specified is not valid.")
        return digest.hex()

    async def chunks(self) -> AsyncIterator[bytes]:
        expected_size = self.declared_length()
        mode = self.payload_mode
        sha256 = hashlib.sha256() if _is_hex_sha256(mode) else None
        header_sums = _header_checksums(self.request.headers)
        trailer_names = _declared_trailers(self.request.headers)
        sums: dict[str, Checksum] = {name: new_checksum(name) for name in header_sums}
        for name in trailer_names:
            sums.setdefault(name, new_checksum(name))
        hashers = [sha256] if sha256 is not None else []

        result = ChunkedResult()
        if self.is_aws_chunked():
            signed = mode in (sigv4.STREAMING_SIGNED, sigv4.STREAMING_SIGNED_TRAILER)
            source = decode_aws_chunked(
                self.request.content,
                result,
                auth=self.auth if signed else None,
                signed_trailer=mode == sigv4.STREAMING_SIGNED_TRAILER,
            )
        else:
            source = _plain(self.request, expected_size)
        received = 0
        try:
            async for piece in source:
                received += len(piece)
                if received > expected_size:
                    raise IncompleteBody("the body is longer than its declared length")
                if hashers or sums:
                    if len(piece) >= _THREAD_HASH_MIN:
                        await asyncio.to_thread(_update_all, piece, hashers, sums)
                    else:
                        _update_all(piece, hashers, sums)
                yield piece
        except ConnectionError:
            raise IncompleteBody("the client closed the connection before the body was complete") from None
        except HttpProcessingError as exc:  # broken HTTP framing (chunked transfer encoding)
            raise IncompleteBody(f"the request body is malformed: {exc.message}") from None
        if received != expected_size:
            raise IncompleteBody(
                f"You did not provide the number of bytes specified by the Content-Length ({expected_size})"
            )
        if sha256 is not None and sha256.hexdigest() != mode.lower():
            raise XAmzContentSHA256Mismatch("The provided 'x-amz-content-sha256' header does not match")
        promised_sums = dict(header_sums)
        for name in trailer_names:
            value = result.trailers.get(f"x-amz-checksum-{name}")
            if value is None:
                raise ChecksumMismatch(f"the declared trailer x-amz-checksum-{name} was not sent")
            promised_sums[name] = value
        for name, value in promised_sums.items():
            actual = sums[name].b64()
            if not hmac.compare_digest(actual, value):
                raise ChecksumMismatch(f"Value for x-amz-checksum-{name} header is invalid.")
            self.checksums[name] = actual


def _is_hex_sha256(mode: str) -> bool:
    return len(mode) == 64 and all(c in "0123456789abcdefABCDEF" for c in mode)


def _header_checksums(headers: Mapping[str, str]) -> dict[str, str]:
    found = {}
    for name in ALGORITHMS:
        value = headers.get(f"x-amz-checksum-{name}")
        if value is not None:
            found[name] = value.strip()
    return found


def _declared_trailers(headers: Mapping[str, str]) -> list[str]:
    names = []
    for item in headers.get("x-amz-trailer", "").split(","):
        item = item.strip().lower()
        if item.startswith("x-amz-checksum-") and item[len("x-amz-checksum-"):] in ALGORITHMS:
            names.append(item[len("x-amz-checksum-"):])
        elif item:
            raise InvalidArgument(f"unsupported trailer {item!r}")
    return names


def _update_all(piece: bytes, hashers: list[hashlib._Hash], sums: dict[str, Checksum]) -> None:
    for h in hashers:
        h.update(piece)
    for s in sums.values():
        s.update(piece)


async def _plain(request: web.Request, size: int) -> AsyncIterator[bytes]:
    remaining = size
    while remaining:
        try:
            piece = await request.content.readexactly(min(remaining, PIECE_BYTES))
        except asyncio.IncompleteReadError:
            raise IncompleteBody("the request body ended early") from None
        remaining -= len(piece)
        yield piece


async def read_document(request: web.Request, auth: sigv4.AuthContext | None, *, limit: int) -> bytes:
    """A small request body (an XML document), verified like any other; b"" when there is none."""
    if not request.body_exists:
        return b""
    body = RequestBody(request, auth)
    if "Content-Length" not in request.headers and not body.is_aws_chunked():
        raise MissingContentLength("You must provide the Content-Length HTTP header.")
    if body.declared_length() > limit:
        raise EntityTooLarge("the request document is too large")
    data = b"".join([piece async for piece in body.chunks()])
    promised = body.content_md5()
    if promised is not None and hashlib.md5(data).hexdigest() != promised:
        raise BadDigest("The Content-MD5 you specified did not match what we received.")
    return data
