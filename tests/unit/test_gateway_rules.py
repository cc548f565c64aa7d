"""Pure gateway rules: addressing, operation choice, conditional headers, XML documents, SigV2."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

import pytest
from botocore.auth import HmacV1QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from multidict import CIMultiDict

from dfstore.errors import AccessDenied, MalformedXML, NotModified, PreconditionFailed, SignatureDoesNotMatch
from dfstore.models import ObjectMeta
from gateway import sigv2, xml
from gateway.errors import MethodNotAllowed, NotImplementedOp
from gateway.handlers import bucket as b
from gateway.handlers import multipart as m
from gateway.handlers import object as o
from gateway.headers import check_conditions, http_date, object_headers, put_options
from gateway.routes import Target, resolve_target, select
from gateway.signed import SignedRequest

META = ObjectMeta("bkt", "k", 10, "abc", datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
                  user_meta={"digest": "md5:abc", "mine": "1"})


def test_resolve_target_path_and_virtual_host() -> None:
    assert resolve_target("/bkt/a%20b/c%2Bd?x=1", "127.0.0.1:9000", "") == Target("bkt", "a b/c+d")
    assert resolve_target("/bkt", "h", "") == Target("bkt", "")
    assert resolve_target("/", "h", "") == Target("", "")
    assert resolve_target("/dir/key/", "bkt.s3.local:80", "s3.local") == Target("bkt", "dir/key/")
    assert resolve_target("/bkt/key", "other:80", "s3.local") == Target("bkt", "key")


@pytest.mark.parametrize(
    "method, target, query, headers, handler",
    [
        ("GET", Target("", ""), {}, {}, b.list_buckets),
        ("GET", Target("b", ""), {"list-type": "2"}, {}, b.list_objects),
        ("GET", Target("b", ""), {"location": ""}, {}, b.get_location),
        ("GET", Target("b", ""), {"uploads": ""}, {}, m.list_uploads),
        ("POST", Target("b", ""), {"delete": ""}, {}, b.delete_objects),
        ("PUT", Target("b", "k"), {}, {}, o.put_object),
        ("PUT", Target("b", "k"), {}, {"x-amz-copy-source": "b/x"}, o.copy_object),
        ("PUT", Target("b", "k"), {"partNumber": "1", "uploadId": "u"}, {}, m.upload_part),
        ("PUT", Target("b", "k"), {"partNumber": "1", "uploadId": "u"}, {"x-amz-copy-source": "b/x"},
         m.upload_part_copy),
        ("POST", Target("b", "k"), {"uploads": ""}, {}, m.create_upload),
        ("POST", Target("b", "k"), {"uploadId": "u"}, {}, m.complete_upload),
        ("DELETE", Target("b", "k"), {"uploadId": "u"}, {}, m.abort_upload),
        ("GET", Target("b", "k"), {"uploadId": "u"}, {}, m.list_parts),
        ("HEAD", Target("b", "k"), {}, {}, o.head_object),
    ],
)
def test_select(method: str, target: Target, query: dict[str, str], headers: dict[str, str], handler: object) -> None:
    assert select(method, target, query, headers) is handler


def test_select_refusals() -> None:
    with pytest.raises(MethodNotAllowed):
        select("PUT", Target("", ""), {}, {})
    with pytest.raises(NotImplementedOp):
        select("GET", Target("b", ""), {"policy": ""}, {})


def test_conditions() -> None:
    check_conditions(META, CIMultiDict({"If-Match": '"abc"'}))
    check_conditions(META, CIMultiDict({"If-Match": "*", "If-Unmodified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}))
    with pytest.raises(PreconditionFailed):
        check_conditions(META, CIMultiDict({"If-Match": '"other"'}))
    with pytest.raises(PreconditionFailed):
        check_conditions(META, CIMultiDict({"If-Unmodified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}))
    with pytest.raises(NotModified):
        check_conditions(META, CIMultiDict({"If-None-Match": '"x", "abc"'}))
    with pytest.raises(NotModified):
        check_conditions(META, CIMultiDict({"If-Modified-Since": http_date(META.last_modified)}))
    check_conditions(META, CIMultiDict({"If-Modified-Since": http_date(META.last_modified - timedelta(seconds=1))}))
    with pytest.raises(PreconditionFailed):  # copy-source conditions never answer 304
        check_conditions(META, CIMultiDict({"x-amz-copy-source-if-none-match": "abc"}), prefix="x-amz-copy-source-if-")


def test_object_headers_and_put_options() -> None:
    headers = object_headers(META, {"response-content-type": "text/x"})
    assert headers["ETag"] == '"abc"' and headers["Content-Type"] == "text/x"
    assert headers["Last-Modified"] == "Tue, 02 Jan 2024 03:04:05 GMT"
    assert headers["x-amz-meta-mine"] == "1" and "x-amz-meta-digest" not in headers
    options = put_options(CIMultiDict({"Content-Encoding": "gzip,aws-chunked", "X-Amz-Meta-Color": "red"}))
    assert options.content_encoding == "gzip" and options.user_meta == {"color": "red"}
    assert options.content_type == "binary/octet-stream"


def test_xml_documents() -> None:
    assert xml.iso8601(META.last_modified) == "2024-01-02T03:04:05.678Z"
    assert xml.parse_complete_multipart(
        b'<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Part><PartNumber>1</PartNumber>'
        b'<ETag>"aa"</ETag></Part></CompleteMultipartUpload>'
    ) == [(1, "aa")]
    assert xml.parse_delete(b"<Delete><Quiet>true</Quiet><Object><Key>a</Key></Object></Delete>") == (True, ["a"])
    for bad in (b"<Delete>", b"<Other/>", b"<Delete></Delete>", b'<!DOCTYPE x [<!ENTITY a "b">]><Delete>&a;</Delete>'):
        with pytest.raises(MalformedXML):
            xml.parse_delete(bad)


def test_sigv2_query_signature() -> None:
    """botocore's SigV2 query signer (boto3's default presign for a custom endpoint) verifies."""
    request = AWSRequest(method="GET", url="http://127.0.0.1:9000/bkt/photos/pup%20py.jpg?response-content-type=a%2Fb")
    HmacV1QueryAuth(Credentials("AKID", "SECRET"), expires=60).add_auth(request)
    path, _, query = request.url.removeprefix("http://127.0.0.1:9000").partition("?")
    pairs = [(unquote(k), unquote(v)) for k, _, v in (item.partition("=") for item in query.split("&"))]
    req = SignedRequest("GET", path, pairs, {"host": ["127.0.0.1:9000"]})
    now = datetime.now(UTC)
    assert sigv2.verify_presigned(req, {"AKID": "SECRET"}, now).access_key == "AKID"
    with pytest.raises(SignatureDoesNotMatch):
        sigv2.verify_presigned(req, {"AKID": "other"}, now)
    with pytest.raises(AccessDenied):
        sigv2.verify_presigned(req, {"AKID": "SECRET"}, now + timedelta(seconds=120))


def test_part_layout() -> None:
    from gateway.errors import InvalidPartNumber
    from gateway.parts import PARTS_META, decode_layout, encode_layout, part_range, parts_count

    assert encode_layout([5, 5, 5, 2]) == "5*3,2*1"
    assert decode_layout("5*3,2*1") == [(5, 3), (2, 1)] and decode_layout("junk") == []
    meta = ObjectMeta("b", "k", 17, "e-4", META.last_modified, user_meta={PARTS_META: "5*3,2*1"})
    assert parts_count(meta) == 4
    assert [(r.first, r.last) for r in (part_range(meta, n) for n in (1, 3, 4)) if r] == [(0, 4), (10, 14), (15, 16)]
    with pytest.raises(InvalidPartNumber):
        part_range(meta, 5)
    assert part_range(META, 1) is None and parts_count(META) == 1
    with pytest.raises(InvalidPartNumber):
        part_range(META, 2)
