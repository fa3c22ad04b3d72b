"""Proof of delivery: what a capture is, how a file is recognised, the OTP rules and a fleet's
policy of what a trip needs before it may complete.

Files are recognised by their first bytes, never by name or declared type; a signature may also
be the strokes a finger drew, as JSON. The OTP is kept only as a salted hash.
"""

from __future__ import annotations

import hashlib
import hmac
from enum import StrEnum
from typing import Annotated

import msgspec


class PodType(StrEnum):
    PHOTO = "photo"
    SIGNATURE = "signature"
    WEIGHT_RECEIPT = "weight_receipt"
    DOCUMENT = "document"
    OTP = "otp"


class MediaKind(StrEnum):
    JPEG = "image/jpeg"
    PNG = "image/png"
    WEBP = "image/webp"
    PDF = "application/pdf"
    STROKES = "application/vnd.trucktrack.strokes+json"


EXTENSION = {
    MediaKind.JPEG: "jpg",
    MediaKind.PNG: "png",
    MediaKind.WEBP: "webp",
    MediaKind.PDF: "pdf",
    MediaKind.STROKES: "json",
}
IMAGES = frozenset({MediaKind.JPEG, MediaKind.PNG, MediaKind.WEBP})
ACCEPTED: dict[PodType, frozenset[MediaKind]] = {
    PodType.PHOTO: IMAGES,
    PodType.SIGNATURE: IMAGES | {MediaKind.STROKES},
    PodType.WEIGHT_RECEIPT: IMAGES | {MediaKind.PDF},
    PodType.DOCUMENT: IMAGES | {MediaKind.PDF},
}
MAX_STROKES = 500
MAX_STROKE_POINTS = 20_000


class Strokes(msgspec.Struct, forbid_unknown_fields=True):
    """A signature drawn on the driver's phone: lines of [x, y] or [x, y, ms] points."""

    strokes: list[list[Annotated[list[float], msgspec.Meta(min_length=2, max_length=3)]]]
    width: float | None = None
    height: float | None = None


def sniff(data: bytes) -> MediaKind | None:
    """The kind of file by its content (magic numbers; strokes by their JSON shape)."""
    if data.startswith(b"\xff\xd8\xff"):
        return MediaKind.JPEG
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return MediaKind.PNG
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return MediaKind.WEBP
    if data.startswith(b"%PDF-"):
        return MediaKind.PDF
    if data.lstrip()[:1] == b"{" and strokes_problem(data) is None:
        return MediaKind.STROKES
    return None


def strokes_problem(data: bytes) -> str | None:
    """Why stroke data is unusable (None when it is fine)."""
    try:
        drawn = msgspec.json.decode(data, type=Strokes)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        return f"not stroke data: {exc}"
    points = sum(len(s) for s in drawn.strokes)
    if not drawn.strokes or points == 0:
        return "the signature has no strokes"
    if len(drawn.strokes) > MAX_STROKES or points > MAX_STROKE_POINTS:
        return f"at most {MAX_STROKES} strokes and {MAX_STROKE_POINTS} points"
    return None


class PodRecord(msgspec.Struct, frozen=True):
    pod_id: str
    fleet_id: str
    trip_id: str
    type: PodType
    uploaded_at: int
    uploaded_by: str
    key: str | None = None
    """Object store key of the file (None for an OTP, which has no file)."""
    media_type: str | None = None
    size: int = 0
    sha256: str | None = None
    captured_at: int | None = None
    lat: float | None = None
    lng: float | None = None
    file_name: str | None = None
    """As the client named it: kept for people, never used as a path."""
    weight_kg: float | None = None
    ticket_number: str | None = None
    signer_name: str | None = None
    note: str | None = None


def capture_id(fleet_id: str, trip_id: str, kind: PodType, sha256: str) -> str:
    """A file capture's id, from what makes it the same capture: a retried upload (same trip,
    type and content) gets the same id, so it is recognised and its file key is the same."""
    seed = f"{fleet_id}\n{trip_id}\n{kind.value}\n{sha256}".encode()
    return "pod_" + hashlib.sha256(seed).hexdigest()[:32]


# --- OTP ----------------------------------------------------------------------------------------

OTP_DIGITS = 6
HASH_ROUNDS = 100_000


class OtpChallenge(msgspec.Struct, frozen=True):
    """The trip's current code, as a salted PBKDF2 hash, with its attempts."""

    fleet_id: str
    trip_id: str
    salt: bytes
    digest: bytes
    issued_at: int
    expires_at: int
    attempts: int = 0
    sends: int = 1
    """Codes handed to the gateway for this trip so far (each new one replaces the last)."""
    verified_at: int | None = None
    sent: bool = True
    """False from when the code is stored until the gateway took it (stored first, so a code
    the consignee reads out is always known), and for good when the gateway refused it."""
    send_error: str | None = None
    """Why the gateway did not take this code."""


class OtpOutcome(StrEnum):
    VERIFIED = "verified"
    WRONG = "wrong"
    EXPIRED = "expired"
    LOCKED = "locked"


def otp_digest(code: str, salt: bytes) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", code.encode(), salt, HASH_ROUNDS)


def check_otp(
    challenge: OtpChallenge, code: str, now_ms: int, max_attempts: int
) -> tuple[OtpOutcome, OtpChallenge]:
    """The outcome of one attempt and the challenge after it (attempts counted, verified).

    Once verified a challenge stays so: the right code again is VERIFIED (a retry, even late),
    another is WRONG and counted as before, so guesses stay bounded (LOCKED at the limit,
    which then refuses the right code too, but never undoes the verification)."""
    if challenge.attempts >= max_attempts:
        return OtpOutcome.LOCKED, challenge
    if challenge.verified_at is None and now_ms > challenge.expires_at:
        return OtpOutcome.EXPIRED, challenge
    if hmac.compare_digest(otp_digest(code, challenge.salt), challenge.digest):
        if challenge.verified_at is not None:
            return OtpOutcome.VERIFIED, challenge
        return OtpOutcome.VERIFIED, msgspec.structs.replace(challenge, verified_at=now_ms)
    after = msgspec.structs.replace(challenge, attempts=challenge.attempts + 1)
    return (OtpOutcome.LOCKED if after.attempts >= max_attempts else OtpOutcome.WRONG), after


class OtpState(StrEnum):
    """Where a trip's delivery OTP stands, as a dispatcher needs to know it."""

    NONE = "none"
    """No code was made yet."""
    UNAVAILABLE = "unavailable"
    """No gateway is configured: no code can be sent (a signature must do)."""
    SENDING = "sending"
    """The code is stored and being handed to the gateway."""
    NOT_SENT = "not_sent"
    """The gateway did not take the last code: send a new one."""
    SENT = "sent"
    """The consignee has a valid code."""
    EXPIRED = "expired"
    LOCKED = "locked"
    VERIFIED = "verified"


def otp_state(
    challenge: OtpChallenge | None, now_ms: int, max_attempts: int, configured: bool
) -> OtpState:
    if challenge is not None and challenge.verified_at is not None:
        return OtpState.VERIFIED
    if not configured:
        return OtpState.UNAVAILABLE
    if challenge is None:
        return OtpState.NONE
    if challenge.attempts >= max_attempts:
        return OtpState.LOCKED
    if now_ms > challenge.expires_at:
        return OtpState.EXPIRED
    if challenge.sent:
        return OtpState.SENT
    return OtpState.SENDING if challenge.send_error is None else OtpState.NOT_SENT


# --- policy ---------------------------------------------------------------------------------------


class PodPolicy(msgspec.Struct, frozen=True):
    """What a trip needs before trip_completed: every group in `require` needs at least one
    capture of one of its types (an OTP counts once verified)."""

    require: tuple[tuple[PodType, ...], ...] = ((PodType.OTP, PodType.SIGNATURE), (PodType.PHOTO,))


def missing(policy: PodPolicy, captured: set[PodType]) -> list[str]:
    """The requirements not met, in words (`otp or signature`, `photo`)."""
    return [
        " or ".join(t.value for t in group)
        for group in policy.require
        if not any(t in captured for t in group)
    ]
