"""Service and bucket operations: ListBuckets, Create/Head/DeleteBucket, location, versioning,
ListObjects v1 and v2, DeleteObjects."""

from __future__ import annotations

import base64
import binascii

from aiohttp import web

from dfstore.core.keys import check_bucket
from dfstore.errors import DFError, InvalidArgument
from gateway import xml
from gateway.body import read_document
from gateway.handlers.call import S3Call, empty, xml_response

MAX_KEYS = 1000


async def list_buckets(call: S3Call) -> web.StreamResponse:
    return xml_response(xml.list_buckets(await call.service.list_buckets()))


async def create_bucket(call: S3Call) -> web.StreamResponse:
    check_bucket(call.bucket)
    xml.parse_create_bucket(await read_document(call.request, call.auth, limit=xml.MAX_XML_BYTES))
    await call.service.create_bucket(call.bucket)
    return empty(headers={"Location": f"/{call.bucket}"})


async def head_bucket(call: S3Call) -> web.StreamResponse:
    await call.service.head_bucket(call.bucket)
    return empty(headers={"x-amz-bucket-region": call.deps.config.region})


async def delete_bucket(call: S3Call) -> web.StreamResponse:
    await call.service.delete_bucket(call.bucket)
    return empty(204)


async def get_location(call: S3Call) -> web.StreamResponse:
    await call.service.head_bucket(call.bucket)
    return xml_response(xml.location(call.deps.config.region))


async def get_versioning(call: S3Call) -> web.StreamResponse:
    await call.service.head_bucket(call.bucket)
    return xml_response(xml.versioning())


def _max_keys(raw: str | None) -> int:
    if raw is None:
        return MAX_KEYS
    if not raw.strip().isdigit():
        raise InvalidArgument("max-keys must be a non-negative integer")
    return min(int(raw), MAX_KEYS)


def _encoding(raw: str | None) -> bool:
    if raw is None or raw == "":
        return False
    if raw.lower() != "url":
        raise InvalidArgument("Invalid Encoding Method specified in Request")
    return True


def encode_token(marker: str) -> str:
    return base64.urlsafe_b64encode(marker.encode()).decode()


def decode_token(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, ValueError):
        raise InvalidArgument("The continuation token provided is incorrect") from None


async def list_objects(call: S3Call) -> web.StreamResponse:
    q = call.query
    v2 = q.get("list-type") == "2"
    prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
    max_keys = _max_keys(q.get("max-keys"))
    token, start_after = q.get("continuation-token", ""), q.get("start-after", "")
    marker = (decode_token(token) if token else start_after) if v2 else q.get("marker", "")
    page = await call.service.list_objects(
        call.bucket, prefix=prefix, marker=marker, delimiter=delimiter, max_keys=max_keys
    )
    next_token = ""
    if v2 and page.is_truncated:
        last = max([m.key for m in page.objects[-1:]] + page.common_prefixes[-1:], default="")
        next_token = encode_token(page.next_marker or last)
    params = xml.ListParams(
        bucket=call.bucket,
        prefix=prefix,
        delimiter=delimiter,
        max_keys=max_keys,
        encode=_encoding(q.get("encoding-type")),
        v2=v2,
        marker=marker if not v2 else "",
        continuation_token=token,
        start_after=start_after,
        fetch_owner=q.get("fetch-owner", "").lower() == "true",
        next_token=next_token,
    )
    return xml_response(xml.list_objects(params, page))


async def delete_objects(call: S3Call) -> web.StreamResponse:
    quiet, keys = xml.parse_delete(await read_document(call.request, call.auth, limit=xml.MAX_XML_BYTES))
    await call.service.head_bucket(call.bucket)
    deleted: list[str] = []
    errors: list[tuple[str, DFError]] = []
    for key in keys:
        try:
            await call.service.delete_object(call.bucket, key)
        except DFError as exc:  # one key's failure is reported in the document, not for the request
            errors.append((key, exc))
        else:
            deleted.append(key)
    return xml_response(xml.delete_result(deleted, errors, quiet=quiet))
