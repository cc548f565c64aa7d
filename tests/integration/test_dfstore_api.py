"""The dfstore wire protocol against a real daemon process (directory origin): spec §1 and §9 "Must match".

Requests go out byte for byte as a Go client writes them (tests/conformance/goclient.py), so what
is asserted here is what Dragonfly's Go SDK and JuiceFS see.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import aiohttp
import pytest

from dfly.procs import Child
from tests.cluster import fs_origin, running_daemon
from tests.conformance.goclient import MultipartBody, RawResponse, go_escape_path, go_query_encode, raw_request

JSON_TYPE = "application/json; charset=utf-8"
UA = ("User-Agent", "Go-http-client/1.1")
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Child]:
    """One daemon for the module: each test works in its own bucket."""
    workdir = tmp_path_factory.mktemp("dfstore-api")
    with running_daemon(workdir, fs_origin(workdir)) as child:
        yield child


@pytest.fixture
def url(node: Child) -> str:
    return str(node.ready["dfstore"])


@pytest.fixture
async def bucket(url: str) -> str:
    name = f"t-{uuid.uuid4().hex[:12]}"
    response = await raw_request(url, "POST", f"/buckets/{name}", [UA, ("Content-Length", "0")])
    assert response.status == 200, response.body
    return name


def obj(bucket: str, key: str) -> str:
    path = f"buckets/{bucket}/objects/{key}"
    return go_escape_path(path)


async def put(url: str, bucket: str, key: str, data: bytes, **fields: str) -> RawResponse:
    form = MultipartBody()
    for name, value in {"mode": "1", **fields}.items():
        form.field(name, value)
    form.file("file", key.rstrip("/").rsplit("/", 1)[-1] or "x", data)
    body = form.encode()
    headers = [UA, ("Content-Length", str(len(body))), ("Content-Type", form.content_type)]
    return await raw_request(url, "PUT", obj(bucket, key), headers, body)


async def test_healthy_and_metadata_bodies(url: str) -> None:
    healthy = await raw_request(url, "GET", "/healthy", [UA])
    assert (healthy.status, healthy.body, healthy.header("Content-Type")) == (200, b'"OK"', JSON_TYPE)
    meta = await raw_request(url, "GET", "/metadata", [UA])
    assert meta.status == 200 and meta.header("Content-Type") == JSON_TYPE
    assert meta.body == b'{"Name":"s3","Region":"us-east-1","Endpoint":""}'


@pytest.mark.parametrize(
    ("method", "target"),
    [("GET", "/nope"), ("POST", "/healthy"), ("HEAD", "/healthy"), ("GET", "/buckets/abc"), ("PUT", "/buckets/abc")],
)
async def test_unknown_routes_and_methods_get_gins_plain_404(url: str, method: str, target: str) -> None:
    response = await raw_request(url, method, target, [UA, ("Content-Length", "0")])
    assert response.status == 404
    assert response.header("Content-Type") == "text/plain"
    if method != "HEAD":
        assert response.body == b"404 page not found"


async def test_put_head_get_round_trip(url: str, bucket: str) -> None:
    data = b"hello dfstore"
    before = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=2)
    response = await put(url, bucket, "dir/obj.bin", data)
    assert (response.status, response.body) == (200, b"")

    head = await raw_request(url, "HEAD", obj(bucket, "dir/obj.bin"), [UA])
    assert head.status == 200 and head.body == b""
    assert head.header("Content-Length") == str(len(data))
    assert head.header("ETag") == f'"{hashlib.md5(data).hexdigest()}"'
    assert head.header("X-Dragonfly-Object-Meta-Storage-Class") == "STANDARD"
    modified = head.header("X-Dragonfly-Object-Meta-Last-Modified-Time") or ""
    assert re.fullmatch(r"[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT", modified), modified
    assert before <= parsedate_to_datetime(modified) <= datetime.now(UTC) + timedelta(seconds=2)
    assert head.header("X-Dragonfly-Object-Meta-Digest") == f"md5:{hashlib.md5(data).hexdigest()}"
    for absent in ("Content-Disposition", "Content-Encoding", "Content-Language"):
        assert head.header(absent) is None, absent

    got = await raw_request(url, "GET", obj(bucket, "dir/obj.bin"), [UA, ("Range", "")])
    assert (got.status, got.body) == (200, data)
    assert got.header("Content-Length") == str(len(data))
    names = {name.lower() for name, _ in got.headers}
    assert "etag" not in names and "content-range" not in names
    assert not [n for n in names if n.startswith("x-dragonfly-")], names


@pytest.mark.parametrize(
    ("header", "expected"),
    [("bytes=0-4", b"01234"), ("bytes=3-3", b"3"), ("bytes=7-", b"789"), ("bytes=-2", b"89"), ("bytes=8-100", b"89")],
)
async def test_ranges_answer_200_with_only_the_requested_bytes(
    url: str, bucket: str, header: str, expected: bytes
) -> None:
    assert (await put(url, bucket, "digits", b"0123456789")).status == 200
    got = await raw_request(url, "GET", obj(bucket, "digits"), [UA, ("Range", header)])
    assert (got.status, got.body) == (200, expected)
    assert got.header("Content-Length") == str(len(expected))
    assert got.header("Content-Range") is None


async def test_missing_objects_are_exactly_404(url: str, bucket: str) -> None:
    head = await raw_request(url, "HEAD", obj(bucket, "missing"), [UA])
    assert head.status == 404
    got = await raw_request(url, "GET", obj(bucket, "missing"), [UA, ("Range", "")])
    assert (got.status, got.body, got.header("Content-Type")) == (404, b'{"errors":"Not Found"}', JSON_TYPE)


async def test_delete_is_idempotent_and_200(url: str, bucket: str) -> None:
    assert (await put(url, bucket, "gone", b"x")).status == 200
    for _ in range(2):
        response = await raw_request(url, "DELETE", obj(bucket, "gone"), [UA])
        assert (response.status, response.body) == (200, b"")
    assert (await raw_request(url, "HEAD", obj(bucket, "gone"), [UA])).status == 404


async def list_page(url: str, bucket: str, **query: str) -> RawResponse:
    encoded = go_query_encode(query)
    return await raw_request(url, "GET", f"/buckets/{bucket}/metadatas" + (f"?{encoded}" if encoded else ""), [UA])


async def test_list_json_shape_is_upstreams(url: str, bucket: str) -> None:
    empty = await list_page(url, bucket)
    assert (empty.status, empty.body) == (200, b'{"CommonPrefixes":[],"Metadatas":[]}')

    data = b"hello"
    assert (await put(url, bucket, "k<&>", data)).status == 200
    response = await list_page(url, bucket, limit="10")
    assert response.status == 200 and response.header("Content-Type") == JSON_TYPE
    assert b"\\u003c\\u0026\\u003e" in response.body  # Go escapes <, & and > in JSON strings
    doc = json.loads(response.body)
    assert list(doc) == ["CommonPrefixes", "Metadatas"] and doc["CommonPrefixes"] == []
    (entry,) = doc["Metadatas"]
    assert list(entry) == [
        "Key", "ContentDisposition", "ContentEncoding", "ContentLanguage", "ContentLength",
        "ContentType", "ETag", "Digest", "LastModifiedTime", "StorageClass",
    ]  # fmt: skip
    assert entry["Key"] == "k<&>" and entry["ContentLength"] == 5
    assert entry["ETag"] == f'"{hashlib.md5(data).hexdigest()}"' and entry["StorageClass"] == "STANDARD"
    assert (entry["ContentType"], entry["Digest"], entry["ContentDisposition"]) == ("", "", "")
    stamp = entry["LastModifiedTime"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d*[1-9])?Z", stamp), stamp
    assert abs(datetime.fromisoformat(stamp).timestamp() - time.time()) < 30


async def test_list_limit_counts_keys_and_prefixes_together(url: str, bucket: str) -> None:
    keys = ["a/1", "a/2", "a1", "b/1", "c", "d"]
    await asyncio.gather(*(put(url, bucket, k, b"v") for k in keys))

    def names(response: RawResponse) -> list[str]:
        doc = json.loads(response.body)
        return sorted(doc["CommonPrefixes"] + [m["Key"] for m in doc["Metadatas"]])

    first = await list_page(url, bucket, delimiter="/", limit="3")
    assert names(first) == ["a/", "a1", "b/"]
    rest = await list_page(url, bucket, delimiter="/", limit="3", marker="b/")
    assert names(rest) == ["c", "d"]
    prefixed = await list_page(url, bucket, prefix="a/", limit="1000")
    assert names(prefixed) == ["a/1", "a/2"]
    bad = await list_page(url, bucket, limit="ten")
    assert bad.status == 422 and "errors" in json.loads(bad.body)


async def test_copy_by_header_and_source_object_key(url: str, bucket: str) -> None:
    assert (await put(url, bucket, "src", b"copy me")).status == 200
    form = MultipartBody().field("source_object_key", "src")
    body = form.encode()
    headers = [UA, ("Content-Type", form.content_type), ("Content-Length", str(len(body)))]
    copied = await raw_request(
        url, "PUT", obj(bucket, "dst"), [*headers, ("X-Dragonfly-Object-Operation", "copy")], body
    )
    assert (copied.status, copied.body) == (200, b"")
    got = await raw_request(url, "GET", obj(bucket, "dst"), [UA])
    assert got.body == b"copy me"

    urlencoded = b"source_object_key=src"
    copied = await raw_request(
        url,
        "PUT",
        obj(bucket, "dst2"),
        [UA, ("Content-Type", "application/x-www-form-urlencoded"), ("Content-Length", str(len(urlencoded))),
         ("X-Dragonfly-Object-Operation", "copy")],
        urlencoded,
    )  # fmt: skip
    assert copied.status == 200
    assert (await raw_request(url, "HEAD", obj(bucket, "dst2"), [UA])).header("Content-Length") == "7"

    no_source = MultipartBody().field("other", "x")
    body = no_source.encode()
    missing = await raw_request(
        url,
        "PUT",
        obj(bucket, "dst3"),
        [UA, ("Content-Type", no_source.content_type), ("Content-Length", str(len(body))),
         ("X-Dragonfly-Object-Operation", "copy")],
        body,
    )  # fmt: skip
    assert missing.status == 422


async def test_file_must_be_a_file_part(url: str, bucket: str) -> None:
    form = MultipartBody().field("mode", "1").field("file", "not a file part")
    body = form.encode()
    headers = [UA, ("Content-Length", str(len(body))), ("Content-Type", form.content_type)]
    response = await raw_request(url, "PUT", obj(bucket, "k"), headers, body)
    assert response.status == 422 and "errors" in json.loads(response.body)


@pytest.mark.parametrize(("fields", "status"), [
    ({"mode": "0"}, 200), ({"mode": "2"}, 200), ({"mode": "3"}, 422), ({"mode": "-1"}, 422),
    ({"maxReplicas": "0"}, 200), ({"maxReplicas": "100"}, 200), ({"maxReplicas": "101"}, 422),
    ({"maxReplicas": "x"}, 422),
])  # fmt: skip
async def test_mode_and_max_replicas_validation(url: str, bucket: str, fields: dict[str, str], status: int) -> None:
    response = await put(url, bucket, "v", b"data", **fields)
    assert response.status == status, response.body


async def test_write_back_is_on_the_origin_and_ephemeral_is_not(url: str, bucket: str) -> None:
    assert (await put(url, bucket, "wb", b"on origin", mode="1")).status == 200
    assert (await raw_request(url, "HEAD", obj(bucket, "wb"), [UA])).status == 200
    assert (await put(url, bucket, "eph", b"cache only", mode="2")).status == 200
    # HEAD and GET consult the origin, which never saw an Ephemeral write (spec §2.1).
    assert (await raw_request(url, "HEAD", obj(bucket, "eph"), [UA])).status == 404


async def test_special_and_trailing_slash_keys(url: str, bucket: str) -> None:
    special = '测试编码文件{"name":"juicefs"}\x1f%uFF081%uFF09+ .jpg'
    assert (await put(url, bucket, special, b"")).status == 200
    assert (await put(url, bucket, "dir/", b"")).status == 200
    doc = json.loads((await list_page(url, bucket, prefix="测试编码文件", limit="1")).body)
    assert [m["Key"] for m in doc["Metadatas"]] == [special]
    head = await raw_request(url, "HEAD", obj(bucket, special), [UA])
    assert (head.status, head.header("Content-Length")) == (200, "0")
    doc = json.loads((await list_page(url, bucket, prefix="dir", limit="10")).body)
    assert [m["Key"] for m in doc["Metadatas"]] == ["dir/"]


async def test_creating_an_existing_bucket_is_a_500_as_upstream(url: str, bucket: str) -> None:
    again = await raw_request(url, "POST", f"/buckets/{bucket}", [UA, ("Content-Length", "0")])
    assert again.status == 500 and "errors" in json.loads(again.body)


async def test_a_reader_hanging_up_mid_body_is_routine(url: str, bucket: str, node: Child) -> None:
    data = random.Random(3).randbytes(8 * MiB)
    assert (await put(url, bucket, "big", data)).status == 200
    host, port = url.removeprefix("http://").split(":")
    for _ in range(3):
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"GET {obj(bucket, 'big')} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        await reader.readexactly(64 * 1024)  # headers and the first bytes, then hang up
        writer.transport.abort()
    got = await raw_request(url, "GET", obj(bucket, "big"), [UA])
    assert (got.status, hashlib.sha256(got.body).digest()) == (200, hashlib.sha256(data).digest())
    await asyncio.sleep(0.2)
    assert "Traceback" not in node.log_path.read_text(errors="replace")


@pytest.mark.slow
async def test_a_256_mib_put_streams_through_bounded_memory(url: str, bucket: str, node: Child) -> None:
    """JuiceFS objbench's big PUT: the multipart body is never held whole, neither here nor there."""
    size, block = 256 * MiB, random.Random(5).randbytes(MiB)
    form = MultipartBody().field("mode", "1")
    head, tail = form.encode().removesuffix(f"--{form.boundary}--\r\n".encode()), f"\r\n--{form.boundary}--\r\n"
    head += f'--{form.boundary}\r\nContent-Disposition: form-data; name="file"; filename="big"\r\n\r\n'.encode()
    expected = hashlib.sha256()

    async def body() -> AsyncIterator[bytes]:
        yield head
        for i in range(size // MiB):
            chunk = i.to_bytes(4, "big") + block[4:]
            expected.update(chunk)
            yield chunk
        yield tail.encode()

    async with aiohttp.ClientSession() as session:
        headers = {"Content-Type": form.content_type, "Content-Length": str(len(head) + size + len(tail))}
        async with session.put(f"{url}{obj(bucket, 'huge')}", data=body(), headers=headers) as response:
            assert response.status == 200, await response.text()
        got = hashlib.sha256()
        async with session.get(f"{url}{obj(bucket, 'huge')}") as response:
            async for chunk in response.content.iter_chunked(MiB):
                got.update(chunk)
    assert got.hexdigest() == expected.hexdigest()
    hwm_kib = next(
        int(line.split()[1]) for line in open(f"/proc/{node.proc.pid}/status") if line.startswith("VmHWM:")
    )
    print(f"daemon peak RSS after a {size // MiB} MiB PUT and GET: {hwm_kib // 1024} MiB")
    assert hwm_kib < 200 * 1024, f"daemon peak RSS {hwm_kib // 1024} MiB"
