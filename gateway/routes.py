"""Which S3 operation a request is: bucket and key from the path or the virtual host, then the
operation from the method, the level (service, bucket, object) and the sub-resource query."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote

from aiohttp import web

from dfstore.errors import InvalidArgument
from gateway.errors import MethodNotAllowed, NotImplementedOp
from gateway.handlers import bucket as b
from gateway.handlers import multipart as m
from gateway.handlers import object as o
from gateway.handlers.call import S3Call

Handler = Callable[[S3Call], Awaitable[web.StreamResponse]]

# Bucket and object sub-resources S3 has and we do not implement: answered with NotImplemented.
UNSUPPORTED = frozenset(
    "accelerate acl analytics cors encryption intelligent-tiering inventory legal-hold lifecycle logging "
    "metrics notification object-lock ownershipControls policy policyStatus publicAccessBlock replication "
    "requestPayment restore retention select tagging torrent website attributes".split()
)


@dataclass(frozen=True)
class Target:
    bucket: str
    key: str


def resolve_target(raw_path: str, host: str, domain: str) -> Target:
    """Path style `/bucket/key`, or virtual-host style `bucket.<domain>/key` when a domain is set."""
    path = raw_path.split("?", 1)[0]
    try:
        decoded = unquote(path, errors="strict")
    except UnicodeDecodeError:
        raise InvalidArgument("the request path is not valid UTF-8") from None
    hostname = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    if domain and hostname.endswith("." + domain):
        return Target(hostname[: -len(domain) - 1], decoded[1:] if decoded.startswith("/") else decoded)
    trimmed = decoded[1:] if decoded.startswith("/") else decoded
    bucket, _, key = trimmed.partition("/")
    return Target(bucket, key)


def select(method: str, target: Target, query: Mapping[str, str], headers: Mapping[str, str]) -> Handler:
    unsupported = UNSUPPORTED.intersection(query)
    if unsupported:
        raise NotImplementedOp(f"the {sorted(unsupported)[0]} sub-resource is not implemented")
    if not target.bucket:
        if method == "GET":
            return b.list_buckets
        raise MethodNotAllowed("The specified method is not allowed against this resource.")
    if not target.key:
        return _bucket_op(method, query)
    return _object_op(method, query, headers)


def _bucket_op(method: str, query: Mapping[str, str]) -> Handler:
    if method == "GET":
        if "location" in query:
            return b.get_location
        if "versioning" in query:
            return b.get_versioning
        if "uploads" in query:
            return m.list_uploads
        if "versions" in query:
            raise NotImplementedOp("object versions are not implemented")
        return b.list_objects
    if method == "HEAD":
        return b.head_bucket
    if method == "PUT":
        if "versioning" in query:
            raise NotImplementedOp("versioning cannot be enabled")
        return b.create_bucket
    if method == "DELETE":
        return b.delete_bucket
    if method == "POST" and "delete" in query:
        return b.delete_objects
    raise MethodNotAllowed("The specified method is not allowed against this resource.")


def _object_op(method: str, query: Mapping[str, str], headers: Mapping[str, str]) -> Handler:
    if method == "GET":
        return m.list_parts if "uploadId" in query else o.get_object
    if method == "HEAD":
        return o.head_object
    if method == "PUT":
        if "uploadId" in query or "partNumber" in query:
            return m.upload_part_copy if "x-amz-copy-source" in headers else m.upload_part
        return o.copy_object if "x-amz-copy-source" in headers else o.put_object
    if method == "POST":
        if "uploads" in query:
            return m.create_upload
        if "uploadId" in query:
            return m.complete_upload
    if method == "DELETE":
        return m.abort_upload if "uploadId" in query else o.delete_object
    raise MethodNotAllowed("The specified method is not allowed against this resource.")
