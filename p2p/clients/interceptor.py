"""Server side: P2PError -> gRPC status in one place. Client side: gRPC status -> P2PError."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from grpc import aio

from p2p import errors

log = logging.getLogger(__name__)

_BY_STATUS: dict[grpc.StatusCode, type[errors.P2PError]] = {
    grpc.StatusCode.NOT_FOUND: errors.TaskNotFound,
    grpc.StatusCode.FAILED_PRECONDITION: errors.NoCandidateParent,
    grpc.StatusCode.DATA_LOSS: errors.PieceDigestMismatch,
    grpc.StatusCode.UNAVAILABLE: errors.SchedulerUnavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: errors.SchedulerUnavailable,
}


def error_from_rpc(exc: aio.AioRpcError) -> errors.P2PError:
    cls = _BY_STATUS.get(exc.code(), errors.P2PError)
    return cls(exc.details() or exc.code().name)


class ExceptionToStatusInterceptor(aio.ServerInterceptor):
    """Unary handlers: P2PError -> its status; anything else -> INTERNAL, logged once with its traceback."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        inner = handler.unary_unary
        method = handler_call_details.method

        async def wrapped(request: Any, context: aio.ServicerContext) -> Any:
            try:
                return await inner(request, context)
            except errors.P2PError as exc:
                await context.abort(exc.grpc_status, exc.message or type(exc).__name__)
            except aio.AbortError:
                raise
            except Exception:
                log.exception("unhandled error in %s", method)
                await context.abort(grpc.StatusCode.INTERNAL, "internal error")

        return grpc.unary_unary_rpc_method_handler(
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
