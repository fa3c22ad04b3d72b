"""The one place that turns errors into HTTP responses: `{"error": {code, message, details}}`."""

from __future__ import annotations

import logging

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from trucktrack import errors
from trucktrack.api.schemas import ErrorDetail, ErrorOut

log = logging.getLogger(__name__)

STATUS = {
    errors.BadRequest: 400,
    errors.Unauthenticated: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.PayloadTooLarge: 413,
    errors.Unprocessable: 422,
    errors.Overloaded: 503,
    errors.StorageUnavailable: 503,
    errors.Unroutable: 422,
    errors.RoutingNotConfigured: 503,
    errors.NotifierNotConfigured: 503,
    errors.NotifierFailed: 502,
    errors.TooManyAttempts: 429,
}
HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "too_many_requests",
    503: "unavailable",
}


def error_parts(
    status: int, code: str, message: str, details: list[object] | None = None
) -> tuple[int, bytes, dict[str, str]]:
    """Status, JSON body and headers of an error reply."""
    body = msgspec.json.encode(ErrorOut(ErrorDetail(code, message, details or [])))
    return status, body, {}


def domain_error_parts(exc: errors.TrucktrackError) -> tuple[int, bytes, dict[str, str]]:
    status = STATUS.get(type(exc), 400)
    _, body, headers = error_parts(status, exc.code, exc.message, exc.details)
    retry_after = getattr(exc, "retry_after_s", None)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="trucktrack"'
    return status, body, headers


def _response(parts: tuple[int, bytes, dict[str, str]]) -> Response[bytes]:
    status, body, headers = parts
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def handle_domain_error(_: Request, exc: errors.TrucktrackError) -> Response[bytes]:
    return _response(domain_error_parts(exc))


def handle_http_error(_: Request, exc: HTTPException) -> Response[bytes]:
    details: list[object] = []
    if isinstance(exc, ValidationException) and isinstance(exc.extra, list):
        details = list(exc.extra)
    code = (
        "validation_error"
        if isinstance(exc, ValidationException)
        else HTTP_CODES.get(exc.status_code, "error")
    )
    status, body, headers = error_parts(exc.status_code, code, exc.detail, details)
    return _response((status, body, {**headers, **(exc.headers or {})}))


def handle_unexpected(_: Request, exc: Exception) -> Response[bytes]:
    log.exception("unhandled error", exc_info=exc)
    return _response(error_parts(500, "internal", "internal server error"))


EXCEPTION_HANDLERS = {
    errors.TrucktrackError: handle_domain_error,
    HTTPException: handle_http_error,
    Exception: handle_unexpected,
}
