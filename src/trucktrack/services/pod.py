"""Proof of delivery: captures (photo, signature, weight receipt, document scan) stored by
content, the delivery OTP, and the fleet's policy that gates trip_completed.

A file's key is made only from checked ids and a generated one (`pod/{trip_id}/{type}/{pod_id}.
{ext}`); the client's file name is kept as a label and never touches a path. Downloads go through
links signed with HMAC and an expiry, so a link can be handed to a shipper without a token.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import weakref
from collections.abc import Mapping

import msgspec

from trucktrack.domain.model import Principal, Role
from trucktrack.domain.pod import (
    ACCEPTED,
    EXTENSION,
    OTP_DIGITS,
    MediaKind,
    OtpChallenge,
    OtpOutcome,
    OtpState,
    PodPolicy,
    PodRecord,
    PodType,
    capture_id,
    check_otp,
    missing,
    otp_digest,
    otp_state,
    sniff,
    strokes_problem,
)
from trucktrack.domain.trips import Milestone, Trip, TripStatus
from trucktrack.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    NotifierFailed,
    NotifierNotConfigured,
    PayloadTooLarge,
    TooManyAttempts,
    Unprocessable,
)
from trucktrack.ports import ObjectStore, OtpNotifier, PodStore
from trucktrack.services.ingest import wall_clock_ms
from trucktrack.services.trips import TripService

log = logging.getLogger(__name__)

CAPTURERS = frozenset({Role.ADMIN, Role.DISPATCHER, Role.DEVICE})
NO_GATEWAY = "no OTP gateway is configured (TRUCKTRACK_OTP_WEBHOOK_URL): no code can be sent"


class Capture(msgspec.Struct, frozen=True):
    """One upload as the entry point read it."""

    type: PodType
    data: bytes = b""
    file_name: str | None = None
    captured_at: int | None = None
    lat: float | None = None
    lng: float | None = None
    weight_kg: float | None = None
    ticket_number: str | None = None
    signer_name: str | None = None
    note: str | None = None
    code: str | None = None


class Captured(msgspec.Struct, frozen=True):
    record: PodRecord
    repeated: bool = False
    """A retry of a capture already stored (same trip, type and file, or the OTP again): the
    stored record, nothing new."""


class OtpStatus(msgspec.Struct, frozen=True):
    """Where the trip's OTP stands, for the dispatcher's view of its proof of delivery."""

    state: OtpState
    sends: int = 0
    expires_at: int | None = None
    attempts_left: int | None = None
    error: str | None = None
    """Why no code reached the consignee (no gateway, or the gateway refused the last one)."""


class PodOverview(msgspec.Struct, frozen=True):
    trip: Trip
    captures: list[PodRecord]
    missing: list[str]
    otp: OtpStatus


class OtpRejected(Exception):
    """A wrong, expired or locked code; `outcome` says which, `attempts_left` how many remain."""

    def __init__(self, outcome: OtpOutcome, attempts_left: int, verified: bool) -> None:
        super().__init__(outcome.value)
        self.outcome = outcome
        self.attempts_left = attempts_left
        self.verified = verified
        """The trip's OTP was verified before this attempt (it stays so)."""


class PodService:
    def __init__(
        self,
        store: PodStore,
        objects: ObjectStore,
        trips: TripService,
        notifier: OtpNotifier,
        *,
        max_bytes: int,
        link_secret: bytes,
        link_ttl_s: float,
        otp_ttl_s: float = 900.0,
        otp_attempts: int = 5,
        otp_sends: int = 5,
    ) -> None:
        self._store = store
        self._objects = objects
        self._trips = trips
        self._notifier = notifier
        self.max_bytes = max_bytes
        self._secret = link_secret
        self._link_ttl_ms = int(link_ttl_s * 1000)
        self._otp_ttl_ms = int(otp_ttl_s * 1000)
        self._otp_attempts = otp_attempts
        self._otp_sends = otp_sends
        self._locks: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        """One lock per trip while someone holds or waits for it (then it goes)."""

    # --- captures ---------------------------------------------------------------------------
    async def capture(self, principal: Principal, trip_id: str, capture: Capture) -> Captured:
        """Store a capture; a retry of one already stored returns that one (`repeated`).

        The file is written before its row: a crash between the two leaves a file no record
        points to (never listed nor linked); the client had no 201, retries, and the retry's
        key is the same (ids come from the content), so the file is rewritten, not doubled."""
        trip = self._writable_trip(principal, trip_id)
        now = wall_clock_ms()
        fields = {
            "captured_at": capture.captured_at, "lat": capture.lat, "lng": capture.lng,
            "note": capture.note,
        }  # fmt: skip
        if capture.type is PodType.OTP:
            return await self._verify_otp(trip, capture.code or "", now, principal, fields)
        record = self._checked_file(trip, capture, now, principal, fields)
        assert record.key is not None
        async with self._lock(trip):
            stored = self._store.get(record.pod_id)
            if stored is not None and (stored.fleet_id, stored.trip_id) == (
                trip.fleet_id, trip.trip_id,
            ):  # fmt: skip
                return Captured(stored, repeated=True)
            await asyncio.to_thread(self._objects.put, trip.fleet_id, record.key, capture.data)
            await self._store.add(record)
        return Captured(record)

    def _checked_file(
        self,
        trip: Trip,
        capture: Capture,
        now: int,
        principal: Principal,
        fields: Mapping[str, object],
    ) -> PodRecord:
        data = capture.data
        if not data:
            raise BadRequest(f"a {capture.type.value} needs a file")
        if len(data) > self.max_bytes:
            raise PayloadTooLarge(f"the file is over {self.max_bytes} bytes")
        kind = sniff(data)
        accepted = ACCEPTED[capture.type]
        if kind is None or kind not in accepted:
            what = "stroke data" if data.lstrip()[:1] == b"{" else "file"
            reason = strokes_problem(data) if what == "stroke data" else None
            raise Unprocessable(
                f"a {capture.type.value} must be "
                f"{', '.join(sorted(EXTENSION[k] for k in accepted))} (judged by content)"
                + (f"; {reason}" if reason and MediaKind.STROKES in accepted else ""),
                [{"detected": kind.value if kind else None}],
            )
        if capture.type is PodType.WEIGHT_RECEIPT and capture.weight_kg is None:
            raise BadRequest("a weight receipt needs weight_kg")
        if capture.type is PodType.SIGNATURE and not capture.signer_name:
            raise BadRequest("a signature needs signer_name")
        sha256 = hashlib.sha256(data).hexdigest()
        pod_id = capture_id(trip.fleet_id, trip.trip_id, capture.type, sha256)
        key = f"pod/{trip.trip_id}/{capture.type.value}/{pod_id}.{EXTENSION[kind]}"
        return PodRecord(
            pod_id, trip.fleet_id, trip.trip_id, capture.type, now, principal.token_id,
            key=key, media_type=kind.value, size=len(data), sha256=sha256,
            file_name=capture.file_name,
            weight_kg=capture.weight_kg, ticket_number=capture.ticket_number,
            signer_name=capture.signer_name, **fields,  # type: ignore[arg-type]
        )  # fmt: skip

    def overview(self, principal: Principal, trip_id: str, now_ms: int) -> PodOverview:
        """The trip's captures, what its policy still needs and where its OTP stands."""
        trip = self._trips.get(principal, trip_id)
        captures = self._store.for_trip(trip.fleet_id, trip.trip_id)
        return PodOverview(trip, captures, self._missing(trip, captures),
                           self._otp_status(trip, now_ms))  # fmt: skip

    def _otp_status(self, trip: Trip, now_ms: int) -> OtpStatus:
        challenge = self._store.challenge(trip.fleet_id, trip.trip_id)
        state = otp_state(challenge, now_ms, self._otp_attempts, self._notifier.configured)
        if state is OtpState.UNAVAILABLE:
            return OtpStatus(state, error=NO_GATEWAY)
        if challenge is None:
            return OtpStatus(state)
        return OtpStatus(
            state, challenge.sends, challenge.expires_at,
            max(0, self._otp_attempts - challenge.attempts), challenge.send_error,
        )  # fmt: skip

    # --- signed links -----------------------------------------------------------------------
    def link(self, record: PodRecord, now_ms: int) -> str | None:
        if record.key is None:
            return None
        expires = (now_ms + self._link_ttl_ms) // 1000
        sig = self._sign(record.pod_id, expires)
        return f"/delivery/pod/{record.pod_id}/file?expires={expires}&sig={sig}"

    def open_link(
        self, pod_id: str, expires: int, sig: str, now_ms: int
    ) -> tuple[PodRecord, bytes]:
        """The file behind a signed link; Forbidden when the link is forged or expired."""
        if not hmac.compare_digest(self._sign(pod_id, expires), sig):
            raise Forbidden("this link is not valid")
        if now_ms // 1000 > expires:
            raise Forbidden("this link has expired: ask for a new one (GET /trips/{id}/pod)")
        record = self._store.get(pod_id)
        data = None
        if record is not None and record.key is not None:
            data = self._objects.get(record.fleet_id, record.key)
        if record is None or data is None:
            raise NotFound("no such file")
        return record, data

    def _sign(self, pod_id: str, expires: int) -> str:
        message = f"{pod_id}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    # --- OTP --------------------------------------------------------------------------------
    async def issue_otp(self, principal: Principal, trip_id: str) -> OtpChallenge:
        """Make a new code for the trip and send it to the consignee (it replaces the last)."""
        return await self._issue(self._writable_trip(principal, trip_id))

    async def issue_on_arrival(self, trip: Trip, milestone: Milestone) -> None:
        """reached_delivery sends the consignee a code (when a notifier is configured). A
        failure is logged and shown in the trip's POD overview (`otp.state`), for the
        dispatcher to send a new code."""
        if milestone is not Milestone.REACHED_DELIVERY or not self._notifier.configured:
            return
        try:
            await self._issue(trip)
        except NotifierFailed as exc:
            log.warning("trip %s: %s", trip.trip_id, exc.message)
        except (Conflict, TooManyAttempts) as exc:  # verified already, or no codes left
            log.info("trip %s: no OTP sent on arrival: %s", trip.trip_id, exc.message)
        except Exception:
            log.exception("could not send the delivery OTP of trip %s", trip.trip_id)

    async def _issue(self, trip: Trip) -> OtpChallenge:
        """Store the new code's hash first, then hand the code to the gateway (outside the
        lock: the consignee may enter it before the gateway even answers)."""
        if not self._notifier.configured:
            raise NotifierNotConfigured(NO_GATEWAY)
        async with self._lock(trip):
            old = self._store.challenge(trip.fleet_id, trip.trip_id)
            if old is not None and old.verified_at is not None:
                raise Conflict("the delivery OTP is already verified")
            sends = 0 if old is None else old.sends
            if sends >= self._otp_sends:
                raise TooManyAttempts(f"at most {self._otp_sends} codes per trip")
            code = f"{secrets.randbelow(10**OTP_DIGITS):0{OTP_DIGITS}d}"
            salt = secrets.token_bytes(16)
            digest = await asyncio.to_thread(otp_digest, code, salt)
            now = wall_clock_ms()
            challenge = OtpChallenge(
                trip.fleet_id, trip.trip_id, salt, digest, now, now + self._otp_ttl_ms,
                sends=sends, sent=False,
            )  # fmt: skip
            await self._store.put_challenge(challenge)
        try:
            await self._notifier.send(trip, code, challenge.expires_at)
        except Exception as exc:
            error = f"the code was not sent: {str(exc) or type(exc).__name__}"[:300]
            await self._settle(trip, challenge, error)
            raise NotifierFailed(error + "; send a new one (POST /delivery/otp)") from None
        return await self._settle(trip, challenge, None)

    async def _settle(self, trip: Trip, issued: OtpChallenge, error: str | None) -> OtpChallenge:
        """Record whether the gateway took the code, on the challenge as it is now (it may
        have been verified meanwhile; if a newer code replaced it, that one is left alone)."""
        async with self._lock(trip):
            current = self._store.challenge(trip.fleet_id, trip.trip_id)
            if current is None or current.salt != issued.salt:
                return issued
            sent = error is None
            after = msgspec.structs.replace(
                current, sent=sent, send_error=error, sends=current.sends + (1 if sent else 0)
            )
            await self._store.put_challenge(after)
            return after

    async def _verify_otp(
        self, trip: Trip, code: str, now: int, principal: Principal,
        fields: Mapping[str, object],
    ) -> Captured:  # fmt: skip
        """Check the code; the right one stores the OTP record and the verified challenge in
        one transaction. The right code again returns that record; a wrong one is refused."""
        if not (len(code) == OTP_DIGITS and code.isascii() and code.isdigit()):
            raise BadRequest(f"code must be {OTP_DIGITS} digits")
        async with self._lock(trip):
            challenge = self._store.challenge(trip.fleet_id, trip.trip_id)
            if challenge is None:
                raise Conflict("no OTP was sent for this trip (POST /delivery/otp)")
            outcome, after = await asyncio.to_thread(  # PBKDF2: ~40 ms off the event loop
                check_otp, challenge, code, now, self._otp_attempts
            )
            if outcome is not OtpOutcome.VERIFIED:
                if after != challenge:
                    await self._store.put_challenge(after)
                left = max(0, self._otp_attempts - after.attempts)
                raise OtpRejected(outcome, left, challenge.verified_at is not None)
            if challenge.verified_at is not None:
                done = [r for r in self._store.for_trip(trip.fleet_id, trip.trip_id)
                        if r.type is PodType.OTP]  # fmt: skip
                if done:
                    return Captured(done[0], repeated=True)
            record = PodRecord(
                "pod_" + secrets.token_hex(16), trip.fleet_id, trip.trip_id, PodType.OTP, now,
                principal.token_id, **fields,  # type: ignore[arg-type]
            )  # fmt: skip
            await self._store.add(record, None if after == challenge else after)
            return Captured(record)

    def _lock(self, trip: Trip) -> asyncio.Lock:
        key = (trip.fleet_id, trip.trip_id)
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    # --- policy -----------------------------------------------------------------------------
    def policy(self, principal: Principal) -> PodPolicy:
        return self._store.policy(principal.fleet_id) or PodPolicy()

    async def set_policy(self, principal: Principal, policy: PodPolicy) -> PodPolicy:
        if principal.role is not Role.ADMIN:
            raise Forbidden("only an admin token may change the POD policy")
        await self._store.put_policy(principal.fleet_id, policy)
        return policy

    def missing_for(self, trip: Trip) -> list[str]:
        """What the fleet's policy still needs before the trip may complete."""
        return self._missing(trip, self._store.for_trip(trip.fleet_id, trip.trip_id))

    def _missing(self, trip: Trip, captures: list[PodRecord]) -> list[str]:
        policy = self._store.policy(trip.fleet_id) or PodPolicy()
        return missing(policy, {r.type for r in captures})

    def _writable_trip(self, principal: Principal, trip_id: str) -> Trip:
        if principal.role not in CAPTURERS or principal.trips is not None:
            raise Forbidden(f"a {principal.role.value} token cannot capture proof of delivery")
        trip = self._trips.get(principal, trip_id)
        if trip.status is not TripStatus.ACTIVE:
            raise Conflict(
                f"the trip is {trip.status.value}: proof of delivery needs an active trip"
            )
        return trip
