"""The SDK's error table against the server's: every object error the dfstore edge can render lands in
the SDK class a caller expects. (The server side is imported here, in a test, never by the SDK.)"""

from __future__ import annotations

import pytest

import sdk
from dfstore import errors
from dfstore.http import render
from sdk import _core


def all_errors(cls: type[errors.DFError] = errors.DFError) -> list[type[errors.DFError]]:
    found = [cls]
    for sub in cls.__subclasses__():
        found += all_errors(sub)
    return found


def expected(cls: type[errors.DFError], status: int) -> type[sdk.APIError]:
    if issubclass(cls, errors.NotFound):
        return sdk.NotFound
    if issubclass(cls, errors.InvalidRange):
        return sdk.InvalidRange
    if status == 422:
        return sdk.ValidationError
    return sdk.ServerError


@pytest.mark.parametrize("cls", all_errors(), ids=lambda c: c.__name__)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_every_server_error_maps_to_the_expected_sdk_class(cls: type[errors.DFError], method: str) -> None:
    rendered = render.error_response(cls("boom", bucket="bkt", key="k"), method)
    body = rendered.body if isinstance(rendered.body, bytes) else b""
    request = _core.Request(method, "http://h/buckets/bkt/objects/k", bucket="bkt", key="k")
    with pytest.raises(sdk.APIError) as info:
        _core.raise_for_error(request, _core.Response(rendered.status, {}, b"" if method == "HEAD" else body))
    want = sdk.NotFound if method == "HEAD" and rendered.status == 404 else expected(cls, rendered.status)
    assert type(info.value) is want
    assert info.value.status == rendered.status


def test_the_server_keeps_the_statuses_go_clients_need() -> None:
    assert render.error_status(errors.NoSuchKey("x"), "GET") == 404
    assert render.error_status(errors.NoSuchKey("x"), "HEAD") == 404
    assert render.error_status(errors.InvalidRange("x"), "GET") == 416
    assert render.error_status(errors.InvalidArgument("x"), "GET") == 422
    assert render.error_status(errors.InternalError("x"), "GET") == 500
