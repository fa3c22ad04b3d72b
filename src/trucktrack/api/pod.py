"""Proof-of-delivery routes: POST /delivery/pod (multipart), GET /trips/{id}/pod, the signed
download link, POST /delivery/otp and the fleet's POD policy."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get, post, put
from litestar.datastructures import UploadFile
from litestar.exceptions import ClientException
from litestar.params import Parameter

from trucktrack.api.trips import TripId
from trucktrack.bootstrap import Services
from trucktrack.domain.model import Principal
from trucktrack.domain.pod import (
    EXTENSION,
    MediaKind,
    OtpOutcome,
    OtpState,
    PodPolicy,
    PodRecord,
    PodType,
)
from trucktrack.domain.timefmt import BadTimestamp, format_ms, parse_timestamp
from trucktrack.errors import BadRequest, PayloadTooLarge, TooManyAttempts, Unprocessable
from trucktrack.services.ingest import wall_clock_ms
from trucktrack.services.pod import Capture, OtpRejected, OtpStatus

ID = re.compile(r"(?!\.{1,2}$)[A-Za-z0-9_.:-]{1,128}")
TEXT_FIELDS = {"trip_id", "type", "captured_at", "lat", "lng", "weight_kg", "ticket_number",
               "signer_name", "note", "code"}  # fmt: skip
FORM_OVERHEAD = 1 << 20
"""Room for the form's other fields and boundaries on top of the file size limit."""
MAX_UPLOAD_BODY = (64 << 20) + FORM_OVERHEAD
"""The route's own body limit (the app's is 4 MiB); the setting is checked within it."""


class PodOut(msgspec.Struct):
    pod_id: str
    trip_id: str
    type: PodType
    uploaded_at: str
    uploaded_by: str
    media_type: str | None
    size: int
    sha256: str | None
    captured_at: str | None
    lat: float | None
    lng: float | None
    file_name: str | None
    weight_kg: float | None
    ticket_number: str | None
    signer_name: str | None
    note: str | None
    download: str | None
    """A signed link to the file, valid for a limited time (no token needed)."""


class PodCapturedOut(PodOut):
    repeated: bool
    """True when this was a retry of a capture already stored (200): nothing new was kept."""


class OtpStatusOut(msgspec.Struct):
    state: OtpState
    """none, unavailable (no gateway), sending, not_sent (the gateway did not take the last
    code: send a new one), sent, expired, locked or verified."""
    sends: int
    expires_at: str | None
    attempts_left: int | None
    error: str | None


class PodListOut(msgspec.Struct):
    trip_id: str
    captures: list[PodOut]
    missing: list[str]
    """What the fleet's POD policy still needs before trip_completed."""
    otp: OtpStatusOut


class OtpIn(msgspec.Struct, forbid_unknown_fields=True):
    trip_id: Annotated[str, msgspec.Meta(pattern=ID.pattern)]


class OtpOut(msgspec.Struct):
    trip_id: str
    expires_at: str
    sends: int
    """Codes sent for this trip so far (each replaces the last)."""


class PolicyIn(msgspec.Struct, forbid_unknown_fields=True):
    require: Annotated[list[Annotated[list[PodType], msgspec.Meta(min_length=1)]],
                       msgspec.Meta(max_length=10)]  # fmt: skip


def pod_out(services: Services, r: PodRecord) -> PodOut:
    return PodOut(
        r.pod_id, r.trip_id, r.type, format_ms(r.uploaded_at), r.uploaded_by, r.media_type,
        r.size, r.sha256, None if r.captured_at is None else format_ms(r.captured_at), r.lat,
        r.lng, r.file_name, r.weight_kg, r.ticket_number, r.signer_name, r.note,
        services.pod.link(r, wall_clock_ms()),
    )  # fmt: skip


def otp_status_out(o: OtpStatus) -> OtpStatusOut:
    expires = None if o.expires_at is None else format_ms(o.expires_at)
    return OtpStatusOut(o.state, o.sends, expires, o.attempts_left, o.error)


def _text(form: Any, name: str, longest: int = 200) -> str | None:
    value = form.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadRequest(f"`{name}` must be a text field")
    if len(value) > longest:
        raise BadRequest(f"`{name}` is longer than {longest} characters")
    return value


def _number(form: Any, name: str, low: float, high: float) -> float | None:
    value = _text(form, name, 40)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        raise BadRequest(f"`{name}` must be a number") from None
    if not (math.isfinite(number) and low <= number <= high):
        raise BadRequest(f"`{name}` must be between {low:g} and {high:g}")
    return number


async def _capture(request: Request[Any, Any, Any], max_bytes: int) -> tuple[str, Capture]:
    try:
        form = await request.form()
    except ClientException as exc:
        if exc.status_code == 413:
            raise PayloadTooLarge(f"the upload is over {max_bytes} bytes") from None
        raise BadRequest(f"not a multipart form: {exc.detail}") from None
    unknown = sorted(set(form) - TEXT_FIELDS - {"file"})
    if unknown:
        raise BadRequest(f"unknown fields: {', '.join(unknown)}")
    repeated = sorted(name for name in set(form) if len(form.getall(name)) > 1)
    if repeated:
        raise BadRequest(f"each field at most once: {', '.join(repeated)} given more than once")
    trip_id = _text(form, "trip_id")
    if trip_id is None or not ID.fullmatch(trip_id):
        raise BadRequest("trip_id is required: 1-128 letters, digits or _ - . :")
    try:
        kind = PodType(_text(form, "type") or "")
    except ValueError:
        raise BadRequest(f"type must be one of {', '.join(t.value for t in PodType)}") from None
    captured = _text(form, "captured_at", 40)
    try:
        captured_at = (
            None
            if captured is None
            else parse_timestamp(
                int(captured) if captured.isascii() and captured.isdigit() else captured
            )
        )
    except BadTimestamp as exc:
        raise BadRequest(f"`captured_at`: {exc}") from None
    lat, lng = _number(form, "lat", -90, 90), _number(form, "lng", -180, 180)
    if (lat is None) != (lng is None):
        raise BadRequest("give both lat and lng, or neither")
    upload = form.get("file")
    data, file_name = b"", None
    if upload is not None:
        if not isinstance(upload, UploadFile):
            raise BadRequest("`file` must be a file part")
        data = await upload.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise PayloadTooLarge(f"the file is over {max_bytes} bytes")
        file_name = (upload.filename or "")[:200] or None
    elif kind is not PodType.OTP:
        raise BadRequest(f"a {kind.value} needs a `file` part")
    return trip_id, Capture(
        type=kind, data=data, file_name=file_name, captured_at=captured_at, lat=lat, lng=lng,
        weight_kg=_number(form, "weight_kg", 0, 1_000_000),
        ticket_number=_text(form, "ticket_number", 64), signer_name=_text(form, "signer_name"),
        note=_text(form, "note", 500), code=_text(form, "code", 20),
    )  # fmt: skip


@post(
    "/delivery/pod",
    status_code=201,
    summary="Capture proof of delivery (multipart)",
    description="Form fields: `trip_id`, `type` (photo, signature, weight_receipt, document, "
    "otp), `file` (JPEG, PNG or WebP images, PDF for receipts and documents, or a signature's "
    "strokes as JSON; judged by content), `captured_at`, `lat`, `lng`, `note`; `weight_kg` "
    "and `ticket_number` for a weight receipt, `signer_name` for a signature, `code` for an "
    "OTP; each at most once. Files over the limit (10 MB by default) are 413. A retry of a "
    "capture already stored (same trip, type and file; the right OTP again) is 200 with "
    "`repeated: true` and the stored record.",
    tags=["delivery"],
    request_max_body_size=MAX_UPLOAD_BODY,
)
async def capture_pod(
    request: Request[Any, Any, Any], services: Services, principal: Principal
) -> Response[PodCapturedOut]:
    max_bytes = services.pod.max_bytes
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > max_bytes + FORM_OVERHEAD:
        raise PayloadTooLarge(f"the upload is over {max_bytes} bytes")
    trip_id, capture = await _capture(request, max_bytes)
    try:
        captured = await services.pod.capture(principal, trip_id, capture)
    except OtpRejected as exc:
        if exc.outcome is OtpOutcome.LOCKED:
            then = (
                "it was verified already" if exc.verified else "send a new one (POST /delivery/otp)"
            )
            raise TooManyAttempts(f"too many wrong codes: the OTP is locked; {then}") from None
        message = "the code has expired" if exc.outcome is OtpOutcome.EXPIRED else "wrong code"
        raise Unprocessable(message, [{"attempts_left": exc.attempts_left}]) from None
    out = pod_out(services, captured.record)
    return Response(
        PodCapturedOut(**msgspec.structs.asdict(out), repeated=captured.repeated),
        status_code=200 if captured.repeated else 201,
    )


@get("/trips/{trip_id:str}/pod", summary="A trip's proof of delivery", tags=["delivery"])
async def list_pod(trip_id: TripId, services: Services, principal: Principal) -> PodListOut:
    seen = services.pod.overview(principal, trip_id, wall_clock_ms())
    return PodListOut(
        seen.trip.trip_id, [pod_out(services, r) for r in seen.captures], seen.missing,
        otp_status_out(seen.otp),
    )  # fmt: skip


@get(
    "/delivery/pod/{pod_id:str}/file",
    summary="Download a capture through its signed link (no token: the link is the key)",
    tags=["delivery"],
    security=[],
)
async def download_pod(
    pod_id: Annotated[str, Parameter(max_length=64)],
    services: Services,
    expires: Annotated[int, Parameter(ge=0, le=2**40)],
    sig: Annotated[str, Parameter(max_length=128)],
) -> Response[bytes]:
    record, data = services.pod.open_link(pod_id, expires, sig, wall_clock_ms())
    kind = MediaKind(record.media_type)
    return Response(
        data,
        media_type=kind.value,
        headers={
            "Content-Disposition": f'attachment; filename="{record.pod_id}.{EXTENSION[kind]}"',
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
        },
    )


@post("/delivery/otp", status_code=202, summary="Send the consignee a delivery OTP",
      tags=["delivery"])  # fmt: skip
async def send_otp(data: OtpIn, services: Services, principal: Principal) -> OtpOut:
    challenge = await services.pod.issue_otp(principal, data.trip_id)
    return OtpOut(data.trip_id, format_ms(challenge.expires_at), challenge.sends)


@get("/delivery/pod-policy", summary="The fleet's proof-of-delivery policy", tags=["delivery"])
async def get_policy(services: Services, principal: Principal) -> PodPolicy:
    return services.pod.policy(principal)


@put("/delivery/pod-policy", summary="Set the fleet's POD policy (admin)", tags=["delivery"])
async def set_policy(data: PolicyIn, services: Services, principal: Principal) -> PodPolicy:
    policy = PodPolicy(tuple(tuple(dict.fromkeys(group)) for group in data.require))
    return await services.pod.set_policy(principal, policy)


POD_ROUTES = [capture_pod, list_pod, download_pod, send_otp, get_policy, set_policy]
