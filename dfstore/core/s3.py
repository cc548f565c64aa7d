"""An origin on any S3-compatible service, through boto3 in worker threads.

Reads are ranged GETs streamed in 1 MiB chunks; writes go from a file (one PUT up to 5 GiB so the
ETag stays the MD5, multipart above). Credentials come from the arguments, else from the standard
AWS environment variables. botocore errors become dfstore.errors here and nowhere else.

Known server differences: some S3 servers (`rclone serve s3`) store a key ending in `/` as a
directory and list it back without the slash (or not at all); AWS and MinIO keep it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from dfstore.core.keys import check_bucket, check_key
from dfstore.core.listing import clamp_max_keys
from dfstore.errors import (
    BackendError,
    BucketAlreadyOwnedByYou,
    BucketNotEmpty,
    DFError,
    InvalidRange,
    NoSuchBucket,
    NoSuchKey,
    PreconditionFailed,
)
from dfstore.models import Bucket, ListPage, ObjectMeta, PutOptions
from p2p.types import MiB

CHUNK = MiB
SINGLE_PUT_MAX = 5 * 1024 * MiB  # S3's limit for one PUT
MULTIPART_CHUNK = 64 * MiB

_NOT_FOUND_KEY = {"NoSuchKey", "NotFound", "404"}
_ERRORS: dict[str, type[DFError]] = {
    "NoSuchBucket": NoSuchBucket,
    "BucketAlreadyOwnedByYou": BucketAlreadyOwnedByYou,
    "BucketAlreadyExists": BucketAlreadyOwnedByYou,
    "BucketNotEmpty": BucketNotEmpty,
    "InvalidRange": InvalidRange,
    "PreconditionFailed": PreconditionFailed,
}


@contextmanager
def map_s3_errors(bucket: str = "", key: str = "") -> Iterator[None]:
    """Translate botocore's errors into ours (httpx's map_httpcore_exceptions pattern)."""
    try:
        yield
    except botocore.exceptions.ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        message = str(exc.response.get("Error", {}).get("Message", "")) or code
        if code in _NOT_FOUND_KEY:
            raise NoSuchKey(f"no such key in bucket {bucket!r}", bucket=bucket, key=key) from exc
        error = _ERRORS.get(code, BackendError)
        raise error(f"origin: {code}: {message}", bucket=bucket, key=key) from exc
    except (botocore.exceptions.BotoCoreError, OSError) as exc:
        raise BackendError(f"origin unreachable: {exc}", bucket=bucket, key=key) from exc


def _unquote(etag: str) -> str:
    return etag.strip('"')


def _put_args(options: PutOptions) -> dict[str, Any]:
    args: dict[str, Any] = {"ContentType": options.content_type, "Metadata": dict(options.user_meta)}
    for name, field in (
        ("ContentDisposition", options.content_disposition),
        ("ContentEncoding", options.content_encoding),
        ("ContentLanguage", options.content_language),
        ("CacheControl", options.cache_control),
    ):
        if field:
            args[name] = field
    if options.expires:
        try:
            from email.utils import parsedate_to_datetime

            args["Expires"] = parsedate_to_datetime(options.expires)
        except (TypeError, ValueError):
            pass  # not an HTTP date: S3 would reject it too
    return args


class S3Backend:
    name = "s3"

    def __init__(
        self, endpoint: str, region: str = "us-east-1", access_key: str | None = None, secret_key: str | None = None
    ) -> None:
        self.endpoint = endpoint
        self.region = region
        config = Config(
            s3={"addressing_style": "path"},
            response_checksum_validation="when_required",
            request_checksum_calculation="when_required",
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=5,
            read_timeout=60,
            max_pool_connections=32,
        )
        # None falls through to boto3's own lookup: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, profiles.
        self._client = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint,
            region_name=region,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=config,
        )

    def __repr__(self) -> str:
        return f"S3Backend(endpoint={self.endpoint!r}, region={self.region!r})"  # never the keys

    async def _call(
        self, method: str, bucket: str = "", key: str = "", *, also: Callable[[], None] | None = None, **kwargs: Any
    ) -> Any:
        def run() -> Any:
            try:
                with map_s3_errors(bucket, key):
                    return getattr(self._client, method)(**kwargs)
            finally:
                if also is not None:
                    also()  # in the same hop (see Backend.head_object)

        return await asyncio.to_thread(run)

    # ---- buckets -------------------------------------------------------------------------

    async def list_buckets(self) -> list[Bucket]:
        resp = await self._call("list_buckets")
        return [Bucket(b["Name"], b.get("CreationDate") or datetime.fromtimestamp(0, UTC)) for b in resp["Buckets"]]

    async def create_bucket(self, bucket: str) -> None:
        check_bucket(bucket)
        kwargs: dict[str, Any] = {"Bucket": bucket}
        if self.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        await self._call("create_bucket", bucket, **kwargs)

    async def head_bucket(self, bucket: str) -> None:
        check_bucket(bucket)
        try:
            await self._call("head_bucket", bucket, Bucket=bucket)
        except NoSuchKey as exc:  # HEAD has no body: a 404 carries no code
            raise NoSuchBucket(f"bucket {bucket!r} does not exist", bucket=bucket) from exc

    async def delete_bucket(self, bucket: str) -> None:
        check_bucket(bucket)
        await self._call("delete_bucket", bucket, Bucket=bucket)

    # ---- objects -------------------------------------------------------------------------

    def check_key(self, bucket: str, key: str) -> None:
        check_bucket(bucket)
        check_key(bucket, key)

    async def head_object(self, bucket: str, key: str, *, also: Callable[[], None] | None = None) -> ObjectMeta:
        check_bucket(bucket)
        check_key(bucket, key)
        resp = await self._call("head_object", bucket, key, also=also, Bucket=bucket, Key=key)
        expires = resp.get("ExpiresString") or ""
        return ObjectMeta(
            bucket=bucket,
            key=key,
            size=int(resp.get("ContentLength", 0)),
            etag=_unquote(resp.get("ETag", "")),
            last_modified=resp["LastModified"].astimezone(UTC),
            content_type=resp.get("ContentType") or "application/octet-stream",
            content_disposition=resp.get("ContentDisposition", ""),
            content_encoding=resp.get("ContentEncoding", ""),
            content_language=resp.get("ContentLanguage", ""),
            cache_control=resp.get("CacheControl", ""),
            expires=expires,
            storage_class=resp.get("StorageClass") or "STANDARD",
            # Header names are case-insensitive; some servers (rclone) title-case them, AWS lowercases.
            user_meta={k.lower(): v for k, v in (resp.get("Metadata") or {}).items()},
        )

    async def read_object(
        self, bucket: str, key: str, offset: int, length: int, *, etag: str | None = None
    ) -> AsyncIterator[bytes]:
        check_bucket(bucket)
        check_key(bucket, key)
        if length <= 0:
            return
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key, "Range": f"bytes={offset}-{offset + length - 1}"}
        if etag:
            kwargs["IfMatch"] = f'"{etag}"'  # 412 once the object was overwritten
        resp = await self._call("get_object", bucket, key, **kwargs)
        body = resp["Body"]
        if "ContentRange" not in resp and (offset or int(resp.get("ContentLength", -1)) != length):
            body.close()  # a 200 with the whole object: its first bytes are not the ones asked for
            raise BackendError("origin ignored the Range header", bucket=bucket, key=key)

        def read_chunk(n: int) -> bytes:
            with map_s3_errors(bucket, key):
                data: bytes = body.read(n)
                return data

        try:
            left = length
            while left > 0:
                chunk = await asyncio.to_thread(read_chunk, min(CHUNK, left))
                if not chunk:
                    raise BackendError(f"short read from origin: {left} bytes missing", bucket=bucket, key=key)
                left -= len(chunk)
                yield chunk
        finally:
            await asyncio.to_thread(body.close)

    async def put_object(
        self, bucket: str, key: str, path: Path, options: PutOptions, *, etag: str | None = None
    ) -> ObjectMeta:
        """`etag` is ignored: the S3 service computes its own."""
        check_bucket(bucket)
        check_key(bucket, key)
        args = _put_args(options)

        def run() -> None:
            with map_s3_errors(bucket, key):
                if path.stat().st_size <= SINGLE_PUT_MAX:
                    with open(path, "rb") as f:
                        self._client.put_object(Bucket=bucket, Key=key, Body=f, **args)
                else:
                    cfg = TransferConfig(multipart_chunksize=MULTIPART_CHUNK, max_concurrency=4)
                    self._client.upload_file(str(path), bucket, key, ExtraArgs=args, Config=cfg)

        await asyncio.to_thread(run)
        return await self.head_object(bucket, key)

    async def copy_object(
        self, bucket: str, key: str, src_bucket: str, src_key: str, options: PutOptions | None
    ) -> ObjectMeta:
        for b, k in ((bucket, key), (src_bucket, src_key)):
            check_bucket(b)
            check_key(b, k)
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key, "CopySource": {"Bucket": src_bucket, "Key": src_key}}
        if options is None:
            kwargs["MetadataDirective"] = "COPY"
        else:
            kwargs.update(_put_args(options), MetadataDirective="REPLACE")
        try:
            await self._call("copy_object", bucket, key, **kwargs)
        except NoSuchKey as exc:
            raise NoSuchKey(f"copy source {src_key!r} does not exist", bucket=src_bucket, key=src_key) from exc
        return await self.head_object(bucket, key)

    async def delete_object(self, bucket: str, key: str) -> None:
        check_bucket(bucket)
        check_key(bucket, key)
        try:
            await self._call("delete_object", bucket, key, Bucket=bucket, Key=key)
        except NoSuchKey:
            pass  # already gone: deletes are idempotent

    async def list_objects(
        self, bucket: str, *, prefix: str = "", marker: str = "", delimiter: str = "", max_keys: int = 1000
    ) -> ListPage:
        check_bucket(bucket)
        limit = clamp_max_keys(max_keys)
        if limit == 0:
            await self.head_bucket(bucket)
            return ListPage([], [], False)
        entries: dict[str, ObjectMeta | None] = {}  # key or common prefix -> meta (None for a prefix)
        cursor = marker
        truncated = True
        # Some servers return short pages; keep asking until the page is full or the listing ends.
        # Asking for one more than needed tells "exactly full" from "more to come" in one call.
        while truncated and len(entries) < limit:
            kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "Delimiter": delimiter, "MaxKeys": limit + 1}
            if cursor:
                kwargs["Marker"] = cursor
            resp = await self._call("list_objects", bucket, **kwargs)
            truncated = bool(resp.get("IsTruncated"))
            seen = []
            for obj in resp.get("Contents") or []:
                entries[obj["Key"]] = self._listed(bucket, obj)
                seen.append(obj["Key"])
            for cp in resp.get("CommonPrefixes") or []:
                if cp["Prefix"].encode() > marker.encode():  # never re-emit a prefix <= marker
                    entries.setdefault(cp["Prefix"], None)
                seen.append(cp["Prefix"])
            if not seen:
                break
            nxt = resp.get("NextMarker") or max(seen, key=str.encode)
            if nxt.encode() <= cursor.encode():
                break  # a server that does not advance: stop rather than loop
            cursor = nxt
        names = sorted(entries, key=str.encode)
        page = names[:limit]
        more = len(names) > limit or truncated
        return ListPage(
            objects=[m for n in page if (m := entries[n]) is not None],
            common_prefixes=[n for n in page if entries[n] is None],
            is_truncated=more,
            next_marker=page[-1] if more and page else "",
        )

    def _listed(self, bucket: str, obj: dict[str, Any]) -> ObjectMeta:
        return ObjectMeta(
            bucket=bucket,
            key=obj["Key"],
            size=int(obj.get("Size", 0)),
            etag=_unquote(obj.get("ETag", "")),
            last_modified=obj["LastModified"].astimezone(UTC),
            storage_class=obj.get("StorageClass") or "STANDARD",
        )

    async def close(self) -> None:
        await asyncio.to_thread(self._client.close)
