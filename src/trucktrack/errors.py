"""Errors the services raise; entry points map them to statuses in one place (api/errors.py)."""

from __future__ import annotations


class TrucktrackError(Exception):
    """Base of every error a caller is meant to see; `code` is stable, the message is for humans."""

    code = "error"

    def __init__(self, message: str, details: list[object] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


class BadRequest(TrucktrackError):
    code = "bad_request"


class PayloadTooLarge(TrucktrackError):
    code = "payload_too_large"


class Unauthenticated(TrucktrackError):
    code = "unauthenticated"


class Forbidden(TrucktrackError):
    code = "forbidden"


class NotFound(TrucktrackError):
    code = "not_found"


class Conflict(TrucktrackError):
    """The request does not fit the record's current state, e.g. a milestone out of order."""

    code = "conflict"


class Unprocessable(TrucktrackError):
    """Well-formed but unusable, e.g. a self-intersecting fence polygon."""

    code = "unprocessable"


class Overloaded(TrucktrackError):
    """Too much work queued; the caller should retry after a short pause."""

    code = "overloaded"
    retry_after_s = 1


class StorageUnavailable(TrucktrackError):
    code = "storage_unavailable"
    retry_after_s = 5


class Unroutable(Unprocessable):
    """A well-formed route request with no answer: no road near a point, or no legal path for
    that truck between the points."""

    code = "unroutable"


class RoutingNotConfigured(TrucktrackError):
    """No usable routing tiles: `trucktrack routing build-tiles` has not been run."""

    code = "routing_not_configured"


class NotifierNotConfigured(TrucktrackError):
    """No OTP notifier: the delivery code could not reach anyone."""

    code = "notifier_not_configured"


class NotifierFailed(TrucktrackError):
    """The OTP gateway did not take the code (down, refused, timed out): try again later."""

    code = "notifier_failed"


class TooManyAttempts(TrucktrackError):
    """Locked after too many wrong codes (or too many codes sent)."""

    code = "locked"
