"""Multipart uploads: Create, UploadPart, UploadPartCopy, Complete, Abort, ListParts, ListMultipartUploads.

Parts are staged on local disk (gateway/multipart.py); completion hands one assembled file to the
object service, which writes it to the origin (WriteBack) and seeds the local cache.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from aiohttp import web

from dfstore.core.keys import check_bucket, check_key
from dfstore.errors import EntityTooLarge, InvalidArgument, InvalidRange
from dfstore.models import PutMode
from gateway import xml
from gateway.body import RequestBody, read_document
from gateway.handlers.call import S3Call, empty, xml_response
from gateway.handlers.object import copy_source
from gateway.headers import check_conditions, put_options
from gateway.multipart import check_part_number
from gateway.parts import PARTS_META, encode_layout
from p2p.common.httprange import MalformedRange, parse_range

MAX_PART_BYTES = 5 * 1024**3
MAX_PARTS_LISTED = 1000


async def create_upload(call: S3Call) -> web.StreamResponse:
    check_bucket(call.bucket)
    check_key(call.bucket, call.key)
    await call.service.head_bucket(call.bucket)
    upload = await call.deps.uploads.create(call.bucket, call.key, put_options(call.headers))
    return xml_response(xml.initiate_multipart(call.bucket, call.key, upload.upload_id))


async def upload_part(call: S3Call) -> web.StreamResponse:
    number = check_part_number(call.query.get("partNumber"))
    upload = await call.deps.uploads.get(call.bucket, call.key, call.query.get("uploadId", ""))
    body = RequestBody(call.request, call.auth)
    if body.declared_length() > MAX_PART_BYTES:
        raise EntityTooLarge("Your proposed upload exceeds the maximum allowed object size.")
    part = await call.deps.uploads.write_part(upload, number, body.chunks(), content_md5=body.content_md5())
    headers = {"ETag": xml.quoted_etag(part.etag)}
    headers.update({f"x-amz-checksum-{name}": value for name, value in body.checksums.items()})
    return empty(headers=headers)


async def upload_part_copy(call: S3Call) -> web.StreamResponse:
    number = check_part_number(call.query.get("partNumber"))
    upload = await call.deps.uploads.get(call.bucket, call.key, call.query.get("uploadId", ""))
    src_bucket, src_key = copy_source(call)
    raw_range = call.headers.get("x-amz-copy-source-range")
    try:
        spec = parse_range(raw_range)
    except MalformedRange:
        raise InvalidArgument("The x-amz-copy-source-range value must be of the form bytes=first-last") from None
    if raw_range is not None and (spec is None or spec.first is None or spec.last is None):
        raise InvalidArgument("The x-amz-copy-source-range value must be of the form bytes=first-last")
    reader = await call.service.get_object(src_bucket, src_key, byte_range=spec)
    try:
        check_conditions(reader.meta, call.headers, prefix="x-amz-copy-source-if-")
        if spec is not None and spec.last is not None and spec.last >= reader.meta.size:
            raise InvalidRange("The requested range is not satisfiable", size=reader.meta.size)
        part = await call.deps.uploads.copy_part(upload, number, reader.regions())
    finally:
        await reader.aclose()
    return xml_response(xml.copy_result(part.etag, part.last_modified, part=True))


async def complete_upload(call: S3Call) -> web.StreamResponse:
    upload_id = call.query.get("uploadId", "")
    chosen = xml.parse_complete_multipart(
        await read_document(call.request, call.auth, limit=xml.MAX_XML_BYTES)
    )
    upload = await call.deps.uploads.get(call.bucket, call.key, upload_id)
    assembled = await call.deps.uploads.assemble(upload, chosen)
    options = upload.options
    layout = encode_layout(assembled.part_sizes)
    if layout:
        options = dataclasses.replace(options, user_meta={**options.user_meta, PARTS_META: layout})
    try:
        meta = await call.service.put_object_file(
            call.bucket,
            call.key,
            assembled.path,
            mode=PutMode.WRITE_BACK,
            options=options,
            etag=assembled.etag,
        )
    finally:
        await asyncio.to_thread(Path(assembled.path).unlink, True)
    await call.deps.uploads.abort(upload_id)
    location = f"{call.request.scheme}://{call.request.host}/{call.bucket}/{call.key}"
    return xml_response(xml.complete_multipart(location, call.bucket, call.key, meta.etag))


async def abort_upload(call: S3Call) -> web.StreamResponse:
    await call.deps.uploads.get(call.bucket, call.key, call.query.get("uploadId", ""))
    await call.deps.uploads.abort(call.query.get("uploadId", ""))
    return empty(204)


def _int_param(raw: str | None, default: int, name: str) -> int:
    if raw is None:
        return default
    if not raw.isdigit():
        raise InvalidArgument(f"{name} must be a non-negative integer")
    return int(raw)


async def list_parts(call: S3Call) -> web.StreamResponse:
    upload = await call.deps.uploads.get(call.bucket, call.key, call.query.get("uploadId", ""))
    marker = _int_param(call.query.get("part-number-marker"), 0, "part-number-marker")
    max_parts = min(_int_param(call.query.get("max-parts"), MAX_PARTS_LISTED, "max-parts"), MAX_PARTS_LISTED)
    parts = [p for p in await call.deps.uploads.parts(upload) if p.number > marker]
    shown = parts[:max_parts]
    body = xml.list_parts(
        call.bucket, call.key, upload.upload_id, shown, marker=marker, max_parts=max_parts,
        truncated=len(parts) > len(shown),
    )
    return xml_response(body)


async def list_uploads(call: S3Call) -> web.StreamResponse:
    await call.service.head_bucket(call.bucket)
    prefix = call.query.get("prefix", "")
    uploads = await call.deps.uploads.uploads(call.bucket, prefix)
    max_uploads = min(_int_param(call.query.get("max-uploads"), 1000, "max-uploads"), 1000)
    shown = uploads[:max_uploads]
    body = xml.list_uploads(call.bucket, prefix, shown, max_uploads=max_uploads, truncated=len(uploads) > len(shown))
    return xml_response(body)
