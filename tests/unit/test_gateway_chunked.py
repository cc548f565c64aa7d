"""aws-chunked decoding: the S3 reference's signed example, botocore's trailer encoder, and damage."""

from __future__ import annotations

import asyncio
import io

import pytest
from botocore.httpchecksum import AwsChunkedWrapper, Crc32Checksum

from dfstore.errors import SignatureDoesNotMatch
from gateway import auth
from gateway.checksums import new_checksum
from gateway.chunked import ChunkedResult, decode_aws_chunked
from gateway.errors import IncompleteBody, InvalidChunkSizeError

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SIGNED_EXAMPLE = (
    b"10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n"
    + b"a" * 65536
    + b"\r\n400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497\r\n"
    + b"a" * 1024
    + b"\r\n0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n\r\n"
)
EXAMPLE_CTX = auth.AuthContext(
    "AKIAIOSFODNN7EXAMPLE", "20130524T000000Z", "20130524/us-east-1/s3/aws4_request",
    auth.signing_key(SECRET, "20130524", "us-east-1", "s3"),
    "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9", auth.STREAMING_SIGNED,
)


class Bytes:
    """An in-memory byte stream with the two StreamReader calls the decoder uses."""

    def __init__(self, data: bytes) -> None:
        self._buf = io.BytesIO(data)

    async def readline(self) -> bytes:
        return self._buf.readline()

    async def readexactly(self, n: int) -> bytes:
        data = self._buf.read(n)
        if len(data) < n:
            raise asyncio.IncompleteReadError(data, n)
        return data


async def _decode(data: bytes, ctx: auth.AuthContext | None = None, **kw: bool) -> tuple[bytes, ChunkedResult]:
    result = ChunkedResult()
    pieces = [p async for p in decode_aws_chunked(Bytes(data), result, auth=ctx, **kw)]
    return b"".join(pieces), result


async def test_signed_reference_example_decodes() -> None:
    body, result = await _decode(SIGNED_EXAMPLE, EXAMPLE_CTX)
    assert body == b"a" * 66560
    assert result.decoded_bytes == 66560


async def test_tampered_chunk_is_rejected() -> None:
    damaged = SIGNED_EXAMPLE.replace(b"a" * 1024, b"a" * 1023 + b"b")
    with pytest.raises(SignatureDoesNotMatch):
        await _decode(damaged, EXAMPLE_CTX)


async def test_botocore_unsigned_trailer_body() -> None:
    payload = bytes(range(256)) * 5000  # > 1 MiB: several chunks
    wrapped = AwsChunkedWrapper(
        io.BytesIO(payload), checksum_cls=Crc32Checksum, checksum_name="x-amz-checksum-crc32"
    ).read()
    body, result = await _decode(wrapped)
    assert body == payload
    crc = new_checksum("crc32")
    crc.update(payload)
    assert result.trailers["x-amz-checksum-crc32"] == crc.b64()


@pytest.mark.parametrize(
    "data, error",
    [
        (b"zz\r\nabc", InvalidChunkSizeError),
        (b"10\r\nshort", IncompleteBody),
        (b"3\r\nabcdef\r\n0\r\n\r\n", InvalidChunkSizeError),
        (b"3\r\nabc", IncompleteBody),
        (b"3;" + b"x" * 5000 + b"\r\nabc\r\n", InvalidChunkSizeError),
    ],
)
async def test_malformed_framing(data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        await _decode(data)
