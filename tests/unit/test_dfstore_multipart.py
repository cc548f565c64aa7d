"""The streaming multipart reader, driven through a real aiohttp server on 127.0.0.1.

Tiny chunk sizes make every delimiter straddle reads; bodies contain near-miss delimiters.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from dfstore.http.multipart import MalformedMultipart, MultipartStream, boundary_of, parse_disposition
from tests.conformance.goclient import MultipartBody, raw_request


async def _echo_parts(request: web.Request) -> web.Response:
    boundary = boundary_of(request.headers["Content-Type"])
    assert boundary is not None
    stream = MultipartStream(request.content, boundary, chunk_size=int(request.query["chunk"]))
    parts = []
    try:
        while (part := await stream.next_part()) is not None:
            digest, size = hashlib.sha256(), 0
            async for chunk in stream.chunks():
                digest.update(chunk)
                size += len(chunk)
            parts.append({"name": part.name, "filename": part.filename, "size": size, "sha": digest.hexdigest()})
    except MalformedMultipart as exc:
        return web.json_response({"error": exc.message}, status=422)
    return web.json_response(parts)


@pytest.fixture
async def echo_url() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_put("/", _echo_parts)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def _put(url: str, body: bytes, content_type: str, chunk: int) -> tuple[int, object]:
    response = await raw_request(
        url, "PUT", f"/?chunk={chunk}", [("Content-Type", content_type), ("Content-Length", str(len(body)))], body
    )
    return response.status, response.json()


@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 20])
async def test_go_style_form_round_trips(echo_url: str, chunk: int) -> None:
    form = MultipartBody()
    # File bytes that contain almost-delimiters: CRLF, `--`, and the boundary without its CRLF.
    tricky = b"\r\n--" + form.boundary[:-1].encode() + b"\r\n-" + form.boundary.encode() + b"--\r"
    data = random.Random(7).randbytes(3000) + tricky + random.Random(8).randbytes(100)
    form.field("mode", "1").field("filter", "a&b").file("file", 'x\x1f"y".jpg', data)
    status, parts = await _put(echo_url, form.encode(), form.content_type, chunk)
    assert status == 200, parts
    assert parts == [
        {"name": "mode", "filename": None, "size": 1, "sha": hashlib.sha256(b"1").hexdigest()},
        {"name": "filter", "filename": None, "size": 3, "sha": hashlib.sha256(b"a&b").hexdigest()},
        {"name": "file", "filename": 'x\x1f"y".jpg', "size": len(data), "sha": hashlib.sha256(data).hexdigest()},
    ]


async def test_preamble_and_empty_file(echo_url: str) -> None:
    form = MultipartBody().file("file", "empty", b"")
    status, parts = await _put(echo_url, b"preamble text\r\n" + form.encode(), form.content_type, 5)
    assert status == 200
    assert parts == [{"name": "file", "filename": "empty", "size": 0, "sha": hashlib.sha256(b"").hexdigest()}]


@pytest.mark.parametrize(
    "body",
    [
        b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\nabc",  # no closing boundary
        b"--B\r\nContent-Type: text/plain\r\n\r\nabc\r\n--B--\r\n",  # no Content-Disposition
        b"--B\r\nno colon here\r\n\r\nabc\r\n--B--\r\n",
        b"--Bjunk\r\n\r\nabc\r\n--B--\r\n",
        b"nothing that looks like a boundary",
    ],
)
async def test_malformed_bodies_are_rejected(echo_url: str, body: bytes) -> None:
    status, doc = await _put(echo_url, body, "multipart/form-data; boundary=B", 4)
    assert status == 422
    assert isinstance(doc, dict) and doc["error"]


def test_header_parsing_is_lenient() -> None:
    kind, params = parse_disposition('form-data; name="file"; filename="a\\"b\\\\c\x1f.jpg"')
    assert kind == "form-data"
    assert params == {"name": "file", "filename": 'a"b\\c\x1f.jpg'}
    assert boundary_of('multipart/form-data; boundary="q;b"') == "q;b"
    assert boundary_of("application/x-www-form-urlencoded") is None
    with pytest.raises(MalformedMultipart):
        boundary_of("multipart/form-data")
