"""Every S3 XML document the gateway reads or writes, and nothing else touches XML.

Writers take our value types and return bytes; readers take a request body and return plain
values, raising MalformedXML for anything they cannot understand.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from dfstore.errors import DFError, MalformedXML
from dfstore.models import Bucket, ListPage

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
OWNER_ID = "02d6176db174dc93cb1b899f7c6078f08654445fe8cf1b6ce98d8855f66bdbf4"
OWNER_NAME = "dfly"
MAX_XML_BYTES = 2 * 1024 * 1024


def iso8601(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def quoted_etag(etag: str) -> str:
    return etag if etag.startswith('"') else f'"{etag}"'


def _root(tag: str, *, namespaced: bool = True) -> ET.Element:
    return ET.Element(tag, {"xmlns": NS} if namespaced else {})


def _add(parent: ET.Element, tag: str, text: str | int | None = None) -> ET.Element:
    child = ET.SubElement(parent, tag)
    if text is not None:
        child.text = str(text)
    return child


def _bytes(root: ET.Element) -> bytes:
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8")


def _owner(parent: ET.Element, tag: str = "Owner") -> None:
    owner = _add(parent, tag)
    _add(owner, "ID", OWNER_ID)
    _add(owner, "DisplayName", OWNER_NAME)


def error(exc: DFError, resource: str, request_id: str) -> bytes:
    root = _root("Error", namespaced=False)
    _add(root, "Code", exc.code)
    _add(root, "Message", exc.message)
    if exc.bucket:
        _add(root, "BucketName", exc.bucket)
    if exc.key:
        _add(root, "Key", exc.key)
    _add(root, "Resource", resource)
    _add(root, "RequestId", request_id)
    _add(root, "HostId", request_id)
    return _bytes(root)


def list_buckets(buckets: Iterable[Bucket]) -> bytes:
    root = _root("ListAllMyBucketsResult")
    _owner(root)
    parent = _add(root, "Buckets")
    for bucket in buckets:
        node = _add(parent, "Bucket")
        _add(node, "Name", bucket.name)
        _add(node, "CreationDate", iso8601(bucket.created))
    return _bytes(root)


def location(region: str) -> bytes:
    root = _root("LocationConstraint")
    # us-east-1 is spelled as an empty constraint, as S3 does.
    root.text = "" if region == "us-east-1" else region
    return _bytes(root)


def versioning() -> bytes:
    return _bytes(_root("VersioningConfiguration"))


@dataclass(frozen=True)
class ListParams:
    bucket: str
    prefix: str
    delimiter: str
    max_keys: int
    encode: bool  # encoding-type=url
    v2: bool
    marker: str = ""  # v1
    continuation_token: str = ""  # v2 (as received)
    start_after: str = ""  # v2
    fetch_owner: bool = False  # v2
    next_token: str = ""  # v2, computed by the handler


def list_objects(params: ListParams, page: ListPage) -> bytes:
    enc = (lambda s: quote(s, safe="/")) if params.encode else (lambda s: s)
    root = _root("ListBucketResult")
    _add(root, "Name", params.bucket)
    _add(root, "Prefix", enc(params.prefix))
    if params.v2:
        if params.continuation_token:
            _add(root, "ContinuationToken", params.continuation_token)
        if params.start_after:
            _add(root, "StartAfter", enc(params.start_after))
        _add(root, "KeyCount", len(page.objects) + len(page.common_prefixes))
        if page.is_truncated and params.next_token:
            _add(root, "NextContinuationToken", params.next_token)
    else:
        _add(root, "Marker", enc(params.marker))
        if page.is_truncated and page.next_marker:
            _add(root, "NextMarker", enc(page.next_marker))
    _add(root, "MaxKeys", params.max_keys)
    if params.delimiter:
        _add(root, "Delimiter", enc(params.delimiter))
    if params.encode:
        _add(root, "EncodingType", "url")
    _add(root, "IsTruncated", "true" if page.is_truncated else "false")
    for meta in page.objects:
        node = _add(root, "Contents")
        _add(node, "Key", enc(meta.key))
        _add(node, "LastModified", iso8601(meta.last_modified))
        _add(node, "ETag", quoted_etag(meta.etag))
        _add(node, "Size", meta.size)
        _add(node, "StorageClass", meta.storage_class or "STANDARD")
        if not params.v2 or params.fetch_owner:
            _owner(node)
    for prefix in page.common_prefixes:
        _add(_add(root, "CommonPrefixes"), "Prefix", enc(prefix))
    return _bytes(root)


def copy_result(etag: str, last_modified: datetime, *, part: bool = False) -> bytes:
    root = _root("CopyPartResult" if part else "CopyObjectResult")
    _add(root, "LastModified", iso8601(last_modified))
    _add(root, "ETag", quoted_etag(etag))
    return _bytes(root)


def initiate_multipart(bucket: str, key: str, upload_id: str) -> bytes:
    root = _root("InitiateMultipartUploadResult")
    _add(root, "Bucket", bucket)
    _add(root, "Key", key)
    _add(root, "UploadId", upload_id)
    return _bytes(root)


def complete_multipart(location_url: str, bucket: str, key: str, etag: str) -> bytes:
    root = _root("CompleteMultipartUploadResult")
    _add(root, "Location", location_url)
    _add(root, "Bucket", bucket)
    _add(root, "Key", key)
    _add(root, "ETag", quoted_etag(etag))
    return _bytes(root)


@dataclass(frozen=True)
class PartEntry:
    number: int
    etag: str
    size: int
    last_modified: datetime


@dataclass(frozen=True)
class UploadEntry:
    key: str
    upload_id: str
    initiated: datetime


def list_parts(
    bucket: str, key: str, upload_id: str, parts: Sequence[PartEntry], *, marker: int, max_parts: int,
    truncated: bool,
) -> bytes:
    root = _root("ListPartsResult")
    _add(root, "Bucket", bucket)
    _add(root, "Key", key)
    _add(root, "UploadId", upload_id)
    _owner(root, "Initiator")
    _owner(root)
    _add(root, "StorageClass", "STANDARD")
    _add(root, "PartNumberMarker", marker)
    if parts:
        _add(root, "NextPartNumberMarker", parts[-1].number)
    _add(root, "MaxParts", max_parts)
    _add(root, "IsTruncated", "true" if truncated else "false")
    for part in parts:
        node = _add(root, "Part")
        _add(node, "PartNumber", part.number)
        _add(node, "LastModified", iso8601(part.last_modified))
        _add(node, "ETag", quoted_etag(part.etag))
        _add(node, "Size", part.size)
    return _bytes(root)


def list_uploads(
    bucket: str, prefix: str, uploads: Sequence[UploadEntry], *, max_uploads: int, truncated: bool = False
) -> bytes:
    root = _root("ListMultipartUploadsResult")
    _add(root, "Bucket", bucket)
    _add(root, "KeyMarker", "")
    _add(root, "UploadIdMarker", "")
    _add(root, "Prefix", prefix)
    _add(root, "MaxUploads", max_uploads)
    _add(root, "IsTruncated", "true" if truncated else "false")
    for upload in uploads:
        node = _add(root, "Upload")
        _add(node, "Key", upload.key)
        _add(node, "UploadId", upload.upload_id)
        _owner(node, "Initiator")
        _owner(node)
        _add(node, "StorageClass", "STANDARD")
        _add(node, "Initiated", iso8601(upload.initiated))
    return _bytes(root)


def delete_result(deleted: Sequence[str], errors: Sequence[tuple[str, DFError]], *, quiet: bool) -> bytes:
    root = _root("DeleteResult")
    if not quiet:
        for key in deleted:
            _add(_add(root, "Deleted"), "Key", key)
    for key, exc in errors:
        node = _add(root, "Error")
        _add(node, "Key", key)
        _add(node, "Code", exc.code)
        _add(node, "Message", exc.message)
    return _bytes(root)


# --- readers -------------------------------------------------------------------------------------


def _parse(body: bytes, root_tag: str) -> ET.Element:
    if len(body) > MAX_XML_BYTES:
        raise MalformedXML("The XML you provided was too large.")
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        raise MalformedXML(
            "The XML you provided was not well-formed or did not validate against our published schema."
        ) from None
    if _local(root.tag) != root_tag:
        raise MalformedXML(f"expected a {root_tag} document, got {_local(root.tag)}")
    return root


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(node: ET.Element, tag: str) -> list[ET.Element]:
    return [c for c in node if _local(c.tag) == tag]


def _text(node: ET.Element, tag: str) -> str | None:
    found = _children(node, tag)
    return (found[0].text or "") if found else None


def parse_complete_multipart(body: bytes) -> list[tuple[int, str]]:
    """(part number, ETag without quotes) in the order sent."""
    root = _parse(body, "CompleteMultipartUpload")
    parts = []
    for node in _children(root, "Part"):
        number, etag = _text(node, "PartNumber"), _text(node, "ETag")
        if number is None or etag is None or not number.strip().isdigit():
            raise MalformedXML("each Part needs a PartNumber and an ETag")
        parts.append((int(number), etag.strip().strip('"')))
    if not parts:
        raise MalformedXML("CompleteMultipartUpload lists no parts")
    return parts


def parse_delete(body: bytes) -> tuple[bool, list[str]]:
    """(quiet, keys) of a DeleteObjects request."""
    root = _parse(body, "Delete")
    quiet = (_text(root, "Quiet") or "").strip().lower() == "true"
    keys = []
    for node in _children(root, "Object"):
        key = _text(node, "Key")
        if key is None:
            raise MalformedXML("each Object needs a Key")
        keys.append(key)
    if not keys or len(keys) > 1000:
        raise MalformedXML("Delete must list between 1 and 1000 objects")
    return quiet, keys


def parse_create_bucket(body: bytes) -> str:
    """The LocationConstraint of an optional CreateBucketConfiguration ("" when absent)."""
    if not body.strip():
        return ""
    root = _parse(body, "CreateBucketConfiguration")
    return (_text(root, "LocationConstraint") or "").strip()
