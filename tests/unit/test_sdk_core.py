"""The SDK's I/O-free core: request building, response parsing, the error table and the flows."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from sdk import _core
from sdk._core import Request, Response, Sleep
from sdk._errors import (
    APIError,
    InvalidRange,
    NotFound,
    ServerError,
    TransportError,
    UsageError,
    ValidationError,
)
from sdk._models import CommonPrefix, ObjectMetadata, PutMode, RetryPolicy
from sdk._multipart import BytesSource, FileSource, IterSource, MultipartBody, multipart, source_of

BASE = "http://127.0.0.1:65004"
NO_WAIT = RetryPolicy(max_retries=2, backoff_initial_s=0.0, backoff_max_s=0.0)


def ok(content: bytes = b"", **headers: str) -> Response:
    return Response(200, {k.lower().replace("_", "-"): v for k, v in headers.items()}, content)


def run(flow: Any, replies: list[Response | TransportError]) -> tuple[Any, list[Any]]:
    """Drive a flow by hand: answer each Request with the next reply. Returns (result, steps seen)."""
    steps: list[Any] = []
    reply: Any = None
    error: TransportError | None = None
    while True:
        try:
            step = flow.throw(error) if error else flow.send(reply)
        except StopIteration as stop:
            return stop.value, steps
        steps.append(step)
        reply, error = None, None
        if isinstance(step, Request):
            answer = replies.pop(0)
            if isinstance(answer, TransportError):
                error = answer
            else:
                reply = answer


# -- URLs and validation -------------------------------------------------------------------------------


def test_object_url_escapes_like_go() -> None:
    url = _core.object_url(BASE, "bkt", "dir/a b+c%d?e#f$&,:;=@~é")
    assert url == f"{BASE}/buckets/bkt/objects/dir/a%20b+c%25d%3Fe%23f$&,:;=@~%C3%A9"


def test_trailing_slash_key_is_kept() -> None:
    assert _core.object_url(BASE, "bkt", "c/").endswith("/objects/c/")


@pytest.mark.parametrize("key", ["", "/a", "a//b", "a/./b", "../x", "a/.."])
def test_keys_that_would_be_rewritten_are_refused(key: str) -> None:
    with pytest.raises(UsageError):
        _core.object_url(BASE, "bkt", key)


@pytest.mark.parametrize("bucket", ["", "a/b", ".", ".."])
def test_bad_bucket_names_are_refused(bucket: str) -> None:
    with pytest.raises(UsageError):
        _core.bucket_url(BASE, bucket)


@pytest.mark.parametrize("endpoint", ["127.0.0.1:65004", "ftp://x", "http://", "http://h/?q=1"])
def test_bad_endpoints_are_refused(endpoint: str) -> None:
    with pytest.raises(UsageError):
        _core.parse_endpoint(endpoint)


def test_endpoint_trailing_slash_dropped() -> None:
    assert _core.parse_endpoint("http://h:1/") == "http://h:1"


@pytest.mark.parametrize(
    ("offset", "length", "header"),
    [(0, None, ""), (5, None, "bytes=5-"), (0, 5, "bytes=0-4"), (4, 1, "bytes=4-4"), (2, 3, "bytes=2-4")],
)
def test_range_header(offset: int, length: int | None, header: str) -> None:
    assert _core.range_header(offset, length) == header


@pytest.mark.parametrize(("offset", "length"), [(-1, None), (0, 0), (3, -2)])
def test_bad_ranges_are_refused(offset: int, length: int | None) -> None:
    with pytest.raises(UsageError):
        _core.range_header(offset, length)


# -- builders ------------------------------------------------------------------------------------------


def test_get_object_request() -> None:
    req = _core.build_get_object(BASE, "b", "k", offset=1, length=2, filter="Expires&Signature")
    assert req.method == "GET" and req.stream and req.retryable
    assert req.headers == {"Range": "bytes=1-2"}
    assert parse_qs(urlsplit(req.url).query) == {"filter": ["Expires&Signature"]}


def test_whole_get_sends_no_range_header() -> None:
    assert "Range" not in _core.build_get_object(BASE, "b", "k").headers


def test_list_request_sends_only_set_params_and_the_limit() -> None:
    req = _core.build_list_objects(BASE, "b", prefix="a b/", delimiter="/")
    parts = urlsplit(req.url)
    assert parts.path == "/buckets/b/metadatas"
    assert "a%20b%2F" in parts.query  # spaces as %20, not '+'
    assert parse_qs(parts.query) == {"prefix": ["a b/"], "delimiter": ["/"], "limit": ["1000"]}


@pytest.mark.parametrize(("given", "sent"), [(0, 1000), (1, 1), (1000, 1000), (5000, 1000)])
def test_list_limit_rule(given: int, sent: int) -> None:
    assert _core.list_limit(given) == sent


def test_negative_list_limit_is_refused() -> None:
    with pytest.raises(UsageError):
        _core.build_list_objects(BASE, "b", limit=-1)


def _body_bytes(body: MultipartBody) -> bytes:
    assert isinstance(body.source, BytesSource | type(None))
    data = bytes(body.source.data) if body.source is not None else b""
    return body.head + data + body.tail


def test_put_object_form_matches_the_go_sdk() -> None:
    req = _core.build_put_object(
        BASE,
        "b",
        'dir/we"ird\\name\x1f.bin',
        BytesSource(b"payload"),
        mode=PutMode.WRITE_BACK,
        max_replicas=2,
        filter="Expires",
    )
    assert req.method == "PUT" and req.retryable
    assert isinstance(req.body, MultipartBody)
    raw = _body_bytes(req.body)
    assert int(req.headers["Content-Length"]) == len(raw) == req.body.length
    boundary = req.headers["Content-Type"].split("boundary=")[1]
    names = [p.split(b'name="')[1].split(b'"')[0] for p in raw.split(f"--{boundary}".encode())[1:-1]]
    assert names == [b"mode", b"filter", b"maxReplicas", b"file"]  # file last, as Go sends it
    assert b'name="mode"\r\n\r\n1\r\n' in raw and b'name="maxReplicas"\r\n\r\n2\r\n' in raw
    assert b'filename="we\\"ird\\\\name.bin"' in raw  # quotes escaped, control characters dropped
    assert raw.endswith(b"payload\r\n--" + boundary.encode() + b"--\r\n")


def test_put_without_replicas_or_filter_sends_mode_only() -> None:
    req = _core.build_put_object(BASE, "b", "k", BytesSource(b""))
    assert isinstance(req.body, MultipartBody)
    raw = _body_bytes(req.body)
    assert b'name="mode"\r\n\r\n0\r\n' in raw and b"maxReplicas" not in raw and b'name="filter"' not in raw


@pytest.mark.parametrize(("mode", "replicas"), [(2, 0), (-1, 0), (0, 101), (0, -1)])
def test_put_refuses_bad_mode_and_replicas(mode: int, replicas: int) -> None:
    with pytest.raises(UsageError):
        _core.build_put_object(BASE, "b", "k", BytesSource(b"x"), mode=mode, max_replicas=replicas)


def test_unsized_iterator_upload_is_chunked_and_never_retried() -> None:
    req = _core.build_put_object(BASE, "b", "k", source_of(iter([b"a"])))
    assert "Content-Length" not in req.headers and not req.retryable


def test_sized_iterator_upload_has_a_content_length() -> None:
    req = _core.build_put_object(BASE, "b", "k", source_of(iter([b"ab"]), size=2))
    assert isinstance(req.body, MultipartBody)
    assert int(req.headers["Content-Length"]) == len(req.body.head) + 2 + len(req.body.tail)


def test_file_object_size_counts_from_its_position() -> None:
    fileobj = io.BytesIO(b"0123456789")
    fileobj.seek(4)
    source = source_of(fileobj)
    assert isinstance(source, FileSource) and source.size == 6 and source.start == 4


def test_paths_and_text_are_not_upload_data() -> None:
    with pytest.raises(UsageError):
        source_of("some/file.txt")  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        source_of(42)  # type: ignore[arg-type]


def test_copy_request() -> None:
    req = _core.build_copy_object(BASE, "b", "src/k", "dst/k")
    assert req.headers["X-Dragonfly-Object-Operation"] == "copy"
    assert req.url.endswith("/buckets/b/objects/dst/k")
    assert isinstance(req.body, MultipartBody) and req.body.source is None
    assert b'name="source_object_key"\r\n\r\nsrc/k\r\n' in req.body.head


def test_create_bucket_is_not_retried() -> None:
    req = _core.build_create_bucket(BASE, "b")
    assert req.method == "POST" and not req.retryable


def test_multipart_boundaries_differ() -> None:
    assert multipart([]).content_type != multipart([]).content_type


# -- parsers -------------------------------------------------------------------------------------------


def test_head_headers_parse() -> None:
    headers = {
        "content-length": "5",
        "content-type": "text/plain",
        "etag": '"5d41402abc4b2a76b9719d911017c592"',
        "x-dragonfly-object-meta-digest": "md5:5d41402abc4b2a76b9719d911017c592",
        "x-dragonfly-object-meta-last-modified-time": "Mon, 02 Jan 2006 15:04:05 GMT",
        "x-dragonfly-object-meta-storage-class": "STANDARD",
    }
    meta = _core.parse_object_metadata("k", headers)
    assert meta == ObjectMetadata(
        key="k",
        content_length=5,
        etag='"5d41402abc4b2a76b9719d911017c592"',
        content_type="text/plain",
        digest="md5:5d41402abc4b2a76b9719d911017c592",
        last_modified=datetime(2006, 1, 2, 15, 4, 5, tzinfo=UTC),
        storage_class="STANDARD",
    )


def test_head_without_content_length_is_a_transport_error() -> None:
    with pytest.raises(TransportError):
        _core.parse_object_metadata("k", {"etag": "x"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-02T03:04:05Z", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-01-02T03:04:05.123456789Z", datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)),
        ("2024-01-02T05:04:05.5+02:00", datetime(2024, 1, 2, 3, 4, 5, 500000, tzinfo=UTC)),
        ("0001-01-01T00:00:00Z", datetime(1, 1, 1, tzinfo=UTC)),
        ("2024-01-02T03:04:05", None),  # no offset: not RFC 3339
        ("", None),
    ],
)
def test_rfc3339(text: str, expected: datetime | None) -> None:
    assert _core.parse_rfc3339(text) == expected


def test_list_page_parses() -> None:
    doc = {
        "CommonPrefixes": ["p/a/"],
        "Metadatas": [
            {
                "Key": "p/a1",
                "ContentDisposition": "",
                "ContentEncoding": "",
                "ContentLanguage": "",
                "ContentLength": 5,
                "ContentType": "",
                "ETag": '"e"',
                "Digest": "",
                "LastModifiedTime": "2024-01-02T03:04:05Z",
                "StorageClass": "STANDARD",
            }
        ],
    }
    page = _core.parse_object_metadatas(json.dumps(doc).encode())
    assert page.common_prefixes == ("p/a/",)
    assert len(page) == 2
    assert page.metadatas[0].key == "p/a1" and page.metadatas[0].content_length == 5
    assert page.metadatas[0].last_modified == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_list_page_null_prefixes_and_bare_array() -> None:
    assert _core.parse_object_metadatas(b'{"CommonPrefixes": null, "Metadatas": []}').common_prefixes == ()
    assert _core.parse_object_metadatas(b'[{"Key": "a", "ContentLength": 1}]').metadatas[0].key == "a"


@pytest.mark.parametrize("content", [b"", b"not json", b'{"Metadatas": [{"NoKey": 1}]}', b'"text"'])
def test_malformed_list_page_is_a_transport_error(content: bytes) -> None:
    with pytest.raises(TransportError):
        _core.parse_object_metadatas(content)


def test_endpoint_metadata_parses() -> None:
    meta = _core.parse_endpoint_metadata(b'{"Name":"s3","Region":"us-east-1","Endpoint":"http://x"}')
    assert (meta.name, meta.region, meta.endpoint) == ("s3", "us-east-1", "http://x")
    with pytest.raises(TransportError):
        _core.parse_endpoint_metadata(b"{}")


# -- the error table -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (404, NotFound),
        (416, InvalidRange),
        (422, ValidationError),
        (400, ValidationError),
        (500, ServerError),
        (503, ServerError),
        (409, APIError),
    ],
)
def test_status_table(status: int, cls: type[APIError]) -> None:
    req = _core.build_head_object(BASE, "b", "k")
    with pytest.raises(cls) as info:
        _core.raise_for_error(req, Response(status, {}, b""))
    assert type(info.value) is cls
    assert info.value.status == status and info.value.resource == "dfs://b/k"


def test_error_message_from_json_body() -> None:
    req = _core.build_get_object(BASE, "b", "k")
    body = b'{"errors": "NoSuchBucket: bkt\\nmore", "code": "NoSuchBucket"}'
    with pytest.raises(ServerError) as info:
        _core.raise_for_error(req, Response(500, {}, body))
    assert info.value.message == "NoSuchBucket: bkt" and info.value.code == "NoSuchBucket"


def test_error_message_without_body_is_the_status_phrase() -> None:
    with pytest.raises(NotFound) as info:
        _core.raise_for_error(_core.build_head_object(BASE, "b", "k"), Response(404, {}, b""))
    assert info.value.message == "Not Found" and info.value.code == "NotFound"
    assert str(info.value) == "dfs://b/k: Not Found (HTTP 404)"


def test_plain_text_error_body() -> None:
    with pytest.raises(NotFound) as info:
        _core.raise_for_error(_core.build_head_object(BASE, "b", "k"), Response(404, {}, b"404 page not found"))
    assert info.value.message == "404 page not found"


# -- flows ---------------------------------------------------------------------------------------------


def test_send_flow_retries_idempotent_requests_then_succeeds() -> None:
    req = _core.build_head_object(BASE, "b", "k")
    flow = _core.send_flow(req, NO_WAIT)
    result, steps = run(flow, [TransportError("reset"), Response(503, {}, b""), ok(b"x")])
    assert result.content == b"x"
    assert [type(s) for s in steps] == [Request, Sleep, Request, Sleep, Request]


def test_send_flow_gives_up_after_max_retries() -> None:
    req = _core.build_head_object(BASE, "b", "k")
    with pytest.raises(TransportError):
        run(_core.send_flow(req, NO_WAIT), [TransportError("x")] * 3)
    with pytest.raises(ServerError):
        run(_core.send_flow(req, NO_WAIT), [Response(502, {}, b"")] * 3)


def test_send_flow_does_not_retry_500_or_4xx() -> None:
    req = _core.build_head_object(BASE, "b", "k")
    with pytest.raises(ServerError):
        run(_core.send_flow(req, NO_WAIT), [Response(500, {}, b"")])
    with pytest.raises(NotFound):
        run(_core.send_flow(req, NO_WAIT), [Response(404, {}, b"")])


def test_non_idempotent_requests_are_sent_once() -> None:
    req = _core.build_create_bucket(BASE, "b")
    with pytest.raises(TransportError):
        run(_core.send_flow(req, NO_WAIT), [TransportError("x")])
    unsized = _core.build_put_object(BASE, "b", "k", IterSource(iter([b"x"]), None))
    with pytest.raises(ServerError):
        run(_core.send_flow(unsized, NO_WAIT), [Response(503, {}, b"")])


def test_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(max_retries=5, backoff_initial_s=0.1, backoff_max_s=0.5)
    delays = [_core.backoff_s(policy, n) for n in range(5)]
    assert 0.05 <= delays[0] <= 0.1 and 0.1 <= delays[1] <= 0.2 and all(d <= 0.5 for d in delays)


def test_exists_flow() -> None:
    req = _core.build_head_object(BASE, "b", "k")
    assert run(_core.exists_flow(req, NO_WAIT), [ok(content_length="1")])[0] is True
    assert run(_core.exists_flow(req, NO_WAIT), [Response(404, {}, b"")])[0] is False
    with pytest.raises(ServerError):
        run(_core.exists_flow(req, NO_WAIT), [Response(500, {}, b"")])


def _page(keys: list[str], prefixes: list[str] = []) -> Response:  # noqa: B006 - read only
    entries = [{"Key": k, "ContentLength": 1} for k in keys]
    return ok(json.dumps({"CommonPrefixes": prefixes, "Metadatas": entries}).encode())


def collect(flow: Any, pages: list[Response]) -> tuple[list[Any], list[str]]:
    """Drive a listing flow; returns (entries yielded, marker of each request)."""
    entries: list[Any] = []
    markers: list[str] = []
    reply: Any = None
    while True:
        try:
            step = flow.send(reply)
        except StopIteration:
            return entries, markers
        reply = None
        if isinstance(step, Request):
            markers.append(parse_qs(urlsplit(step.url).query).get("marker", [""])[0])
            reply = pages.pop(0)
        else:
            entries.append(step)


def test_list_all_pages_by_marker_until_a_short_page() -> None:
    first = [f"k{i:04d}" for i in range(1000)]
    flow = _core.list_all_flow(BASE, "b", NO_WAIT, prefix="k")
    entries, markers = collect(flow, [_page(first), _page(["k1000", "k1001"])])
    assert [e.key for e in entries] == [*first, "k1000", "k1001"]
    assert markers == ["", "k0999"]


def test_list_all_merges_prefixes_in_key_order_and_continues_after_a_prefix() -> None:
    keys = [f"a{i:04d}" for i in range(999)]
    flow = _core.list_all_flow(BASE, "b", NO_WAIT, delimiter="/")
    entries, markers = collect(flow, [_page(keys, ["z/"]), _page(["zz"], ["z/"])])
    assert entries[-2] == CommonPrefix("z/")  # the re-emitted `z/` on page two is skipped
    assert entries[-1].key == "zz" and len(entries) == 1001
    assert markers == ["", "z/"]


def test_list_all_start_after() -> None:
    entries, markers = collect(_core.list_all_flow(BASE, "b", NO_WAIT, start_after="m"), [_page(["n"])])
    assert markers == ["m"] and [e.key for e in entries] == ["n"]
