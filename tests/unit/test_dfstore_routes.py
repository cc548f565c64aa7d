"""The dfstore edge's public surface: upstream's route table exactly, and its error rendering."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from dfstore import errors
from dfstore.http import render
from dfstore.http.routes import ROUTES, DfstoreHandlers


def test_route_table_is_upstreams() -> None:
    assert [(m, p) for m, p, _ in ROUTES] == [
        ("GET", "/healthy"),
        ("GET", "/metadata"),
        ("POST", "/buckets/{id}"),
        ("GET", "/buckets/{id}/metadatas"),
        ("HEAD", "/buckets/{id}/objects/{key:.*}"),
        ("GET", "/buckets/{id}/objects/{key:.*}"),
        ("PUT", "/buckets/{id}/objects/{key:.*}"),
        ("DELETE", "/buckets/{id}/objects/{key:.*}"),
    ]
    assert all(callable(getattr(DfstoreHandlers, name)) for _, _, name in ROUTES)


def test_error_status_walks_the_class_tree() -> None:
    cases = {
        errors.NoSuchKey("x"): 404,
        errors.NoSuchBucket("x"): 404,
        errors.InvalidRange("x"): 416,
        errors.InvalidArgument("x"): 422,
        errors.InvalidBucketName("x"): 422,
        errors.KeyTooLongError("x"): 422,
        errors.BucketAlreadyOwnedByYou("x"): 500,
        errors.AccessDenied("x"): 500,
        errors.BackendError("x"): 500,
        errors.DFError("x"): 500,
    }
    assert {type(e).__name__: render.error_status(e, "GET") for e in cases} == {
        type(e).__name__: s for e, s in cases.items()
    }
    assert render.error_status(errors.InvalidArgument("x"), "HEAD") == 404
    assert render.error_status(errors.BackendError("x"), "HEAD") == 500


def test_go_time_formats() -> None:
    moment = datetime(2024, 1, 2, 3, 4, 5, 120000, tzinfo=UTC)
    assert render.rfc3339(moment) == "2024-01-02T03:04:05.12Z"
    assert render.rfc3339(moment.replace(microsecond=0)) == "2024-01-02T03:04:05Z"
    assert render.rfc3339(moment.astimezone(timezone(timedelta(hours=2)))) == "2024-01-02T03:04:05.12Z"
    assert render.http_date(moment) == "Tue, 02 Jan 2024 03:04:05 GMT"


def test_go_json_escapes_like_encoding_json() -> None:
    assert render.go_json({"K": "<a&b>\u2028é\x1f"}) == '{"K":"\\u003ca\\u0026b\\u003e\\u2028é\\u001f"}'.encode()
    assert render.go_json("OK") == b'"OK"'
