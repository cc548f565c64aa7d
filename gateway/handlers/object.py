"""Object operations: GetObject, HeadObject, PutObject, CopyObject, DeleteObject.

GET validates everything (conditions, range) before `prepare()`; after it the body goes out with
sendfile from verified regions of the local cache, and an error can only abort the connection.

Checksums (`gateway.checksums`): a PutObject's verified x-amz-checksum-* is kept with the object and
answered to GET/HEAD with `x-amz-checksum-mode: ENABLED` on full-object 200s only (never with a
Range or partNumber, never on 304/412). CopyObject keeps it, the bytes being the same, unless the
request names another algorithm in `x-amz-checksum-algorithm`: that one is not computed over the
copy, the copy then has no checksum.
"""

from __future__ import annotations

import dataclasses
from urllib.parse import unquote

from aiohttp import web

from dfstore.core.keys import check_bucket, check_key
from dfstore.errors import EntityTooLarge, InvalidArgument, InvalidRange, InvalidRequest
from dfstore.models import ObjectMeta, PutMode, PutOptions
from gateway import xml
from gateway.body import RequestBody
from gateway.checksums import ALGORITHMS, CHECKSUM_META, stored_checksum, stored_entry
from gateway.handlers.call import S3Call, empty, xml_response
from gateway.headers import check_conditions, checksum_headers, object_headers, put_options
from gateway.multipart import check_part_number
from gateway.parts import part_range, parts_count
from p2p.common.httprange import MalformedRange, RangeSpec, parse_range
from p2p.common.sendfile import BodyResponse, send_regions

MAX_PUT_BYTES = 5 * 1024**3


def request_range(call: S3Call) -> RangeSpec | None:
    try:
        spec = parse_range(call.headers.get("Range"))
    except MalformedRange as exc:
        raise InvalidRange(f"The requested range is not valid: {exc}") from None
    if spec is not None and call.query.get("partNumber") is not None:
        raise InvalidRequest("Cannot specify both Range header and partNumber query parameter")
    return spec


def part_number(call: S3Call) -> int | None:
    raw = call.query.get("partNumber")
    return None if raw is None else check_part_number(raw)


async def get_object(call: S3Call) -> web.StreamResponse:
    check_key(call.bucket, call.key)
    spec = request_range(call)
    number = part_number(call)
    if number is not None:
        # The part's bytes depend on the layout recorded at completion: look it up first.
        spec = part_range(await call.service.head_object(call.bucket, call.key), number)
    reader = await call.service.get_object(call.bucket, call.key, byte_range=spec)
    try:
        check_conditions(reader.meta, call.headers)
        headers = object_headers(reader.meta, call.query)
        if number is not None:
            headers["x-amz-mp-parts-count"] = str(parts_count(reader.meta))
        elif spec is None:
            headers.update(checksum_headers(reader.meta, call.headers))
        status = 200
        if spec is not None:
            status = 206
            span = reader.byte_range
            assert span is not None  # the service resolves every range it was given
            headers["Content-Range"] = f"bytes {span.start}-{span.end}/{reader.meta.size}"
        response = BodyResponse(status=status, headers=headers)
        response.content_length = reader.content_length
        await response.prepare(call.request)
        await send_regions(call.request, response, reader.regions())
        await response.write_eof()
        return response
    finally:
        await reader.aclose()


async def head_object(call: S3Call) -> web.StreamResponse:
    check_key(call.bucket, call.key)
    spec = request_range(call)
    number = part_number(call)
    meta = await call.service.head_object(call.bucket, call.key)
    check_conditions(meta, call.headers)
    headers = object_headers(meta, call.query)
    if number is not None:
        spec = part_range(meta, number)
        headers["x-amz-mp-parts-count"] = str(parts_count(meta))
    elif spec is None:
        headers.update(checksum_headers(meta, call.headers))
    status, length = 200, meta.size
    if spec is not None:
        try:
            span = spec.resolve(meta.size)
        except ValueError:
            raise InvalidRange("The requested range is not satisfiable", size=meta.size) from None
        status, length = 206, span.length
        headers["Content-Range"] = f"bytes {span.start}-{span.end}/{meta.size}"
    headers["Content-Length"] = str(length)
    return web.Response(status=status, headers=headers)


async def put_object(call: S3Call) -> web.StreamResponse:
    check_bucket(call.bucket)
    check_key(call.bucket, call.key)
    body = RequestBody(call.request, call.auth)
    if body.declared_length() > MAX_PUT_BYTES:
        raise EntityTooLarge("Your proposed upload exceeds the maximum allowed object size.")
    meta = await call.service.put_object(
        call.bucket,
        call.key,
        body.chunks(),
        mode=PutMode.WRITE_BACK,
        options=put_options(call.headers),
        content_md5=body.content_md5(),
        body_meta=lambda: stored_entry(body.checksums),
    )
    headers = {"ETag": xml.quoted_etag(meta.etag)}
    headers.update({f"x-amz-checksum-{name}": value for name, value in body.checksums.items()})
    return empty(headers=headers)


def copy_source(call: S3Call) -> tuple[str, str]:
    raw = call.headers.get("x-amz-copy-source", "")
    path = raw.split("?", 1)[0]  # ?versionId=... is accepted and ignored
    try:
        path = unquote(path, errors="strict")
    except UnicodeDecodeError:
        raise InvalidArgument("Invalid copy source encoding") from None
    bucket, _, key = path.lstrip("/").partition("/")
    if not bucket or not key:
        raise InvalidArgument("Copy Source must mention the source bucket and key: sourcebucket/sourcekey")
    check_key(bucket, key)
    return bucket, key


async def copy_object(call: S3Call) -> web.StreamResponse:
    check_key(call.bucket, call.key)
    src_bucket, src_key = copy_source(call)
    directive = call.headers.get("x-amz-metadata-directive", "COPY").upper()
    if directive not in ("COPY", "REPLACE"):
        raise InvalidArgument("Unknown metadata directive.")
    if (src_bucket, src_key) == (call.bucket, call.key) and directive != "REPLACE":
        raise InvalidRequest(
            "This copy request is illegal because it is trying to copy an object to itself without "
            "changing the object's metadata, storage class, website redirect location or encryption attributes."
        )
    source = await call.service.head_object(src_bucket, src_key)
    check_conditions(source, call.headers, prefix="x-amz-copy-source-if-")
    kept = _copied_checksum(source, call.headers.get("x-amz-checksum-algorithm"))
    options: PutOptions | None = None
    if directive == "REPLACE":
        options = put_options(call.headers)
        options = dataclasses.replace(options, user_meta={**options.user_meta, **kept})
    elif CHECKSUM_META in source.user_meta and not kept:
        # COPY, but the checksum the source has is not the one asked for: the source's metadata without it
        options = PutOptions.from_meta(source)
        options.user_meta.pop(CHECKSUM_META)
    meta = await call.service.copy_object(call.bucket, call.key, src_bucket, src_key, options=options)
    return xml_response(xml.copy_result(meta.etag, meta.last_modified))


def _copied_checksum(source: ObjectMeta, requested: str | None) -> dict[str, str]:
    """The checksum entry a copy of `source` keeps: the source's own, unless the request names
    another algorithm (not computed here: the copy then has none)."""
    if requested is not None and requested.strip().lower() not in ALGORITHMS:
        raise InvalidArgument("Value for x-amz-checksum-algorithm header is invalid.")
    stored = stored_checksum(source.user_meta)
    if stored is None or (requested is not None and requested.strip().lower() != stored[0]):
        return {}
    return {CHECKSUM_META: source.user_meta[CHECKSUM_META]}


async def delete_object(call: S3Call) -> web.StreamResponse:
    check_key(call.bucket, call.key)
    await call.service.delete_object(call.bucket, call.key)
    return empty(204)
