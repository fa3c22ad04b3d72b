"""Recognising files, the OTP rules and the POD policy, on plain data."""

from __future__ import annotations

import msgspec
import pytest

from trucktrack.domain.pod import (
    MediaKind,
    OtpChallenge,
    OtpOutcome,
    OtpState,
    PodPolicy,
    PodType,
    capture_id,
    check_otp,
    missing,
    otp_digest,
    otp_state,
    sniff,
)


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"\xff\xd8\xff\xdb rest", MediaKind.JPEG),
        (b"\x89PNG\r\n\x1a\n rest", MediaKind.PNG),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", MediaKind.WEBP),
        (b"%PDF-1.4 rest", MediaKind.PDF),
        (b' {"strokes": [[[1, 2], [3, 4, 5]]]}', MediaKind.STROKES),
        (b"GIF89a", None),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", None),
        (b'{"strokes": [[[1]]]}', None),
        (b'{"strokes": []}', None),
        (b'{"strokes": [[[1, 2]]], "colour": 1}', None),
        (b"", None),
        (b"PNG\x89", None),
    ],
)
def test_files_are_known_by_their_content(data: bytes, kind: MediaKind | None) -> None:
    assert sniff(data) is kind


def challenge() -> OtpChallenge:
    salt = b"0123456789abcdef"
    return OtpChallenge("f", "t", salt, otp_digest("042917", salt), issued_at=0, expires_at=1000)


def test_the_right_code_in_time_verifies_once() -> None:
    outcome, after = check_otp(challenge(), "042917", 999, max_attempts=5)
    assert outcome is OtpOutcome.VERIFIED and after.verified_at == 999
    # Afterwards the right code again is a retry, even late, and changes nothing; any other
    # code is wrong and counted, up to the lock, which stays verified.
    assert check_otp(after, "042917", 5000, 5) == (OtpOutcome.VERIFIED, after)
    outcomes = []
    for _ in range(5):
        outcome, after = check_otp(after, "000000", 5000, max_attempts=5)
        outcomes.append(outcome)
    assert outcomes == [OtpOutcome.WRONG] * 4 + [OtpOutcome.LOCKED]
    assert check_otp(after, "042917", 5000, 5) == (OtpOutcome.LOCKED, after)
    assert after.verified_at == 999


def test_wrong_codes_count_and_lock() -> None:
    ch = challenge()
    outcomes = []
    for _ in range(5):
        outcome, ch = check_otp(ch, "111111", 10, max_attempts=5)
        outcomes.append(outcome)
    assert outcomes == [OtpOutcome.WRONG] * 4 + [OtpOutcome.LOCKED]
    assert check_otp(ch, "042917", 10, 5)[0] is OtpOutcome.LOCKED


def test_an_expired_code_is_refused_without_counting() -> None:
    outcome, after = check_otp(challenge(), "042917", 1001, max_attempts=5)
    assert outcome is OtpOutcome.EXPIRED and after.attempts == 0


def test_the_state_a_dispatcher_sees() -> None:
    ch = challenge()
    assert otp_state(None, 0, 5, configured=True) is OtpState.NONE
    assert otp_state(None, 0, 5, configured=False) is OtpState.UNAVAILABLE
    assert otp_state(ch, 10, 5, True) is OtpState.SENT
    sending = msgspec.structs.replace(ch, sent=False)
    assert otp_state(sending, 10, 5, True) is OtpState.SENDING
    unsent = msgspec.structs.replace(sending, send_error="the gateway answered 500")
    assert otp_state(unsent, 10, 5, True) is OtpState.NOT_SENT
    assert otp_state(ch, 1001, 5, True) is OtpState.EXPIRED
    assert otp_state(msgspec.structs.replace(ch, attempts=5), 10, 5, True) is OtpState.LOCKED
    verified = check_otp(ch, "042917", 10, 5)[1]
    assert otp_state(verified, 10**9, 5, False) is OtpState.VERIFIED  # done, gateway or not


def test_a_retried_upload_has_the_same_id() -> None:
    first = capture_id("f", "t", PodType.PHOTO, "ab" * 32)
    assert first == capture_id("f", "t", PodType.PHOTO, "ab" * 32)
    others = {capture_id("g", "t", PodType.PHOTO, "ab" * 32),
              capture_id("f", "u", PodType.PHOTO, "ab" * 32),
              capture_id("f", "t", PodType.DOCUMENT, "ab" * 32),
              capture_id("f", "t", PodType.PHOTO, "cd" * 32)}  # fmt: skip
    assert first not in others and len(others) == 4


def test_the_default_policy_wants_otp_or_signature_and_a_photo() -> None:
    policy = PodPolicy()
    assert missing(policy, set()) == ["otp or signature", "photo"]
    assert missing(policy, {PodType.SIGNATURE}) == ["photo"]
    assert missing(policy, {PodType.OTP, PodType.PHOTO}) == []
    assert missing(PodPolicy(require=()), set()) == []
