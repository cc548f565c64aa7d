"""Bad input gets its documented status and the daemon keeps serving (issue 2, "Must show").

Documented statuses (dfstore/http/render.py): 422 for names, keys, forms and queries that fail
validation (404 on HEAD, whose clients only understand 200/404), 416 for a bad `Range`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.cluster import fs_origin, running_daemon
from tests.conformance.goclient import MultipartBody, RawResponse, go_escape_path, raw_request

UA = ("User-Agent", "Go-http-client/1.1")


@pytest.fixture(scope="module")
def daemon_dirs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    workdir = tmp_path_factory.mktemp("dfstore-bad")
    with running_daemon(workdir, fs_origin(workdir)) as child:
        yield str(child.ready["dfstore"]), workdir


@pytest.fixture
def url(daemon_dirs: tuple[str, Path]) -> str:
    return daemon_dirs[0]


@pytest.fixture
async def bucket(url: str) -> str:
    name = f"b-{uuid.uuid4().hex[:12]}"
    assert (await raw_request(url, "POST", f"/buckets/{name}", [UA, ("Content-Length", "0")])).status == 200
    return name


@pytest.fixture(autouse=True)
async def still_serving(daemon_dirs: tuple[str, Path]) -> AsyncIterator[None]:
    """After every test the daemon answers a plain request."""
    yield
    response = await raw_request(daemon_dirs[0], "GET", "/healthy", [UA])
    assert (response.status, response.body) == (200, b'"OK"')


def assert_error(response: RawResponse, status: int) -> None:
    assert response.status == status, (response.status, response.body[:300])
    if response.body:
        assert isinstance(json.loads(response.body)["errors"], str)


async def put_form(url: str, target: str, form: MultipartBody, extra: bytes = b"") -> RawResponse:
    body = form.encode() + extra
    headers = [UA, ("Content-Length", str(len(body))), ("Content-Type", form.content_type)]
    return await raw_request(url, "PUT", target, headers, body)


@pytest.mark.parametrize("name", ["ab", "UPPER", "bad!name", "-lead", "a..b", "%2E%2E", "x" * 64, "1.2.3.4"])
async def test_invalid_bucket_names(url: str, name: str) -> None:
    assert_error(await raw_request(url, "POST", f"/buckets/{name}", [UA, ("Content-Length", "0")]), 422)
    assert_error(await raw_request(url, "GET", f"/buckets/{name}/metadatas", [UA]), 422)
    assert_error(await raw_request(url, "GET", f"/buckets/{name}/objects/k", [UA]), 422)
    assert_error(await raw_request(url, "HEAD", f"/buckets/{name}/objects/k", [UA]), 404)
    form = MultipartBody().file("file", "k", b"data")
    assert_error(await put_form(url, f"/buckets/{name}/objects/k", form), 422)


@pytest.mark.parametrize(
    "key", ["a/../b", "..", "../../../etc/passwd", "..%2F..%2Fescape", "a/./b", "%2E%2E/x", "a//b", "/abs"]
)
async def test_keys_with_dot_segments_never_touch_the_disk(
    url: str, bucket: str, daemon_dirs: tuple[str, Path], key: str
) -> None:
    target = f"/buckets/{bucket}/objects/{key}"
    form = MultipartBody().field("mode", "1").file("file", "x", b"escaped?")
    assert_error(await put_form(url, target, form), 422)
    assert_error(await raw_request(url, "GET", target, [UA]), 422)
    assert_error(await raw_request(url, "HEAD", target, [UA]), 404)
    assert_error(await raw_request(url, "DELETE", target, [UA]), 422)
    workdir = daemon_dirs[1]
    written = [p for p in workdir.rglob("*") if p.is_file() and p.read_bytes() == b"escaped?"]
    assert written == []


async def test_a_24_kib_path_is_answered(url: str, bucket: str) -> None:
    key = "\0" * 8192  # JuiceFS's huge-key probe: 8 KiB of NUL, 24 KiB once escaped
    target = go_escape_path(f"buckets/{bucket}/objects/{key}")
    assert len(target) > 24 * 1024
    assert_error(await raw_request(url, "HEAD", target, [UA]), 404)
    assert_error(await raw_request(url, "GET", target, [UA]), 422)
    long_key = "k" * 20_000
    assert_error(await raw_request(url, "HEAD", f"/buckets/{bucket}/objects/{long_key}", [UA]), 404)


async def test_an_oversized_request_line_is_refused_cleanly(url: str) -> None:
    response = await raw_request(url, "GET", "/buckets/b/objects/" + "k" * 70_000, [UA])
    assert 400 <= response.status < 500


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data", b"--X\r\n\r\n"),  # no boundary parameter
        ("multipart/form-data; boundary=X", b"--X\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\""
         b"\r\n\r\nthe body stops here"),  # no closing boundary
        ("multipart/form-data; boundary=X", b"--X\r\nContent-Disposition: form-data; name=\"mode\"\r\n\r\n1"
         b"\r\n--X--\r\n"),  # no file part
        ("multipart/form-data; boundary=X", b"just some bytes"),
        ("multipart/form-data; boundary=X", b"--X\r\nno-colon-header\r\n\r\nx\r\n--X--\r\n"),
        ("application/octet-stream", b"raw body"),
        ("", b""),
    ],
)  # fmt: skip
async def test_malformed_multipart(url: str, bucket: str, content_type: str, body: bytes) -> None:
    headers = [UA, ("Content-Length", str(len(body)))]
    if content_type:
        headers.append(("Content-Type", content_type))
    assert_error(await raw_request(url, "PUT", f"/buckets/{bucket}/objects/m", headers, body), 422)
    assert (await raw_request(url, "HEAD", f"/buckets/{bucket}/objects/m", [UA])).status == 404


async def test_a_field_after_the_file_fails_the_put(url: str, bucket: str) -> None:
    form = MultipartBody().file("file", "late", b"data").field("mode", "2")
    assert_error(await put_form(url, f"/buckets/{bucket}/objects/late", form), 422)
    assert (await raw_request(url, "HEAD", f"/buckets/{bucket}/objects/late", [UA])).status == 404


@pytest.mark.parametrize("mode", ["7", "3", "-1", "1.0", "one"])
async def test_bad_mode(url: str, bucket: str, mode: str) -> None:
    form = MultipartBody().field("mode", mode).file("file", "m", b"data")
    assert_error(await put_form(url, f"/buckets/{bucket}/objects/m", form), 422)
    assert (await raw_request(url, "HEAD", f"/buckets/{bucket}/objects/m", [UA])).status == 404


@pytest.mark.parametrize("header", ["bytes=9-3", "bytes=0-1,3-4", "bytes=abc", "items=0-1", "bytes=-"])
async def test_bad_ranges_are_416(url: str, bucket: str, header: str) -> None:
    form = MultipartBody().field("mode", "1").file("file", "r", b"0123456789")
    assert (await put_form(url, f"/buckets/{bucket}/objects/r", form)).status == 200
    assert_error(await raw_request(url, "GET", f"/buckets/{bucket}/objects/r", [UA, ("Range", header)]), 416)
    whole = await raw_request(url, "GET", f"/buckets/{bucket}/objects/r", [UA, ("Range", "")])
    assert (whole.status, whole.body) == (200, b"0123456789")


async def test_bad_list_queries(url: str, bucket: str) -> None:
    for limit in ("x", "-1", "1e3"):
        assert_error(await raw_request(url, "GET", f"/buckets/{bucket}/metadatas?limit={limit}", [UA]), 422)
