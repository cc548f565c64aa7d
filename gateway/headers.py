"""Object headers both ways: PutOptions from a PUT's headers, response headers from ObjectMeta,
and the conditional headers (If-Match and friends, also in their x-amz-copy-source-if-* form)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime

from dfstore.errors import InvalidArgument, NotModified, PreconditionFailed
from dfstore.models import ObjectMeta, PutOptions
from gateway.checksums import CHECKSUM_META, stored_checksum
from gateway.parts import PARTS_META
from gateway.xml import quoted_etag

META_PREFIX = "x-amz-meta-"
MAX_META_BYTES = 2048  # S3's limit on user metadata (names + values)
# The gateway's own records in an object's user metadata: never shown as x-amz-meta-*, and a
# client's x-amz-meta-* of these names is dropped so it cannot forge them.
RESERVED_META = frozenset({PARTS_META, CHECKSUM_META})

# response-* query parameters of GetObject/HeadObject and the header each overrides.
RESPONSE_OVERRIDES = {
    "response-content-type": "Content-Type",
    "response-content-language": "Content-Language",
    "response-expires": "Expires",
    "response-cache-control": "Cache-Control",
    "response-content-disposition": "Content-Disposition",
    "response-content-encoding": "Content-Encoding",
}


def http_date(when: datetime) -> str:
    return format_datetime(when.astimezone(UTC), usegmt=True)


def put_options(headers: Mapping[str, str]) -> PutOptions:
    user_meta: dict[str, str] = {}
    for header, value in headers.items():
        lower = header.lower()
        name = lower[len(META_PREFIX):]
        if lower.startswith(META_PREFIX) and name and name not in RESERVED_META:
            user_meta[name] = value
    if sum(len(k) + len(v.encode()) for k, v in user_meta.items()) > MAX_META_BYTES:
        raise InvalidArgument("Your metadata headers exceed the maximum allowed metadata size.")
    return PutOptions(
        content_type=headers.get("Content-Type") or "binary/octet-stream",
        content_disposition=headers.get("Content-Disposition", ""),
        content_encoding=_without_aws_chunked(headers.get("Content-Encoding", "")),
        content_language=headers.get("Content-Language", ""),
        cache_control=headers.get("Cache-Control", ""),
        expires=headers.get("Expires", ""),
        user_meta=user_meta,
    )


def _without_aws_chunked(value: str) -> str:
    """aws-chunked is framing of this request, not an encoding of the stored object."""
    return ",".join(p.strip() for p in value.split(",") if p.strip() and p.strip() != "aws-chunked")


def object_headers(meta: ObjectMeta, query: Mapping[str, str]) -> dict[str, str]:
    headers = {
        "ETag": quoted_etag(meta.etag),
        "Last-Modified": http_date(meta.last_modified),
        "Content-Type": meta.content_type or "binary/octet-stream",
        "Accept-Ranges": "bytes",
    }
    optional = {
        "Content-Disposition": meta.content_disposition,
        "Content-Encoding": meta.content_encoding,
        "Content-Language": meta.content_language,
        "Cache-Control": meta.cache_control,
        "Expires": meta.expires,
    }
    headers.update({k: v for k, v in optional.items() if v})
    for name, value in meta.user_meta.items():
        if (name == "digest" and value == f"md5:{meta.etag}") or name in RESERVED_META:
            continue  # the object service's and the gateway's own records, not the user's metadata
        headers[META_PREFIX + name] = value
    for param, header in RESPONSE_OVERRIDES.items():
        if param in query:
            headers[header] = query[param]
    return headers


def checksum_headers(meta: ObjectMeta, headers: Mapping[str, str]) -> dict[str, str]:
    """The kept full-object checksum, for a 200 answer with the whole object, when the client asks
    with `x-amz-checksum-mode: ENABLED` (boto3 does on every GetObject); {} otherwise."""
    if headers.get("x-amz-checksum-mode", "").strip().upper() != "ENABLED":
        return {}
    stored = stored_checksum(meta.user_meta)
    if stored is None:
        return {}
    name, value = stored
    return {f"x-amz-checksum-{name}": value, "x-amz-checksum-type": "FULL_OBJECT"}


def _parse_http_date(value: str) -> datetime | None:
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _etag_matches(header: str, etag: str) -> bool:
    wanted = {t.strip().removeprefix("W/").strip('"') for t in header.split(",")}
    return "*" in wanted or etag.strip('"') in wanted


def check_conditions(meta: ObjectMeta, headers: Mapping[str, str], *, prefix: str = "if-") -> None:
    """RFC 7232 as S3 applies it. Raises PreconditionFailed (412) or NotModified (304).

    With `prefix="x-amz-copy-source-if-"` the copy-source conditions are checked; S3 answers those
    with 412 in every failing case.
    """
    copy = prefix != "if-"
    modified = meta.last_modified.replace(microsecond=0)
    if_match = headers.get(prefix + "match")
    if_none_match = headers.get(prefix + "none-match")
    if_unmodified = headers.get(prefix + "unmodified-since")
    if_modified = headers.get(prefix + "modified-since")
    if if_match is not None:
        if not _etag_matches(if_match, meta.etag):
            raise PreconditionFailed("At least one of the pre-conditions you specified did not hold")
    elif if_unmodified is not None:
        when = _parse_http_date(if_unmodified)
        if when is not None and modified > when:
            raise PreconditionFailed("At least one of the pre-conditions you specified did not hold")
    not_modified: type[Exception] = PreconditionFailed if copy else NotModified
    if if_none_match is not None:
        if _etag_matches(if_none_match, meta.etag):
            raise not_modified("Not Modified" if not copy else "the copy source ETag matches If-None-Match")
    elif if_modified is not None:
        when = _parse_http_date(if_modified)
        if when is not None and modified <= when and when <= datetime.now(UTC):
            raise not_modified("Not Modified" if not copy else "the copy source was not modified since")
