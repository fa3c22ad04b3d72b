"""Proof of delivery through a real server of its own (a small file limit, short OTP and link
lifetimes, an OTP gateway on loopback that records what it is sent)."""

from __future__ import annotations

import hashlib
import json
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import httpx
import pytest

from tests.e2e.conftest import (
    JsonReceiver,
    Received,
    Server,
    assert_error,
    create_token,
    now_ms,
    post_ok,
    wait_for,
)

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 4
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(200)
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + bytes(100)
PDF = b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"
GIF = b"GIF89a" + bytes(100)
STROKES = json.dumps({"strokes": [[[0, 0], [10, 5], [20, 9]], [[5, 5, 100], [6, 8, 130]]]})
PLACE = {"lat": 18.5204, "lng": 73.8567}


class Gateway:
    """The fleet's SMS gateway (a `JsonReceiver` answering with `answer`): remembers every OTP
    it is handed. For the trips in `failing` it answers 500 (and remembers nothing); for those
    in `before_answering` it first runs that function on the message."""

    sent: ClassVar[list[dict[str, Any]]] = []
    failing: ClassVar[set[str]] = set()
    before_answering: ClassVar[dict[str, Callable[[dict[str, Any]], None]]] = {}

    @staticmethod
    def answer(request: Received) -> int:
        message = request.json()
        if message["trip_id"] in Gateway.failing:
            return 500
        Gateway.sent.append(message)
        if message["trip_id"] in Gateway.before_answering:
            Gateway.before_answering[message["trip_id"]](message)
        return 200


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    gateway = JsonReceiver(answer=Gateway.answer).start()
    env = {
        "TRUCKTRACK_POD_MAX_MB": "0.05",  # 50 kB
        "TRUCKTRACK_POD_LINK_TTL_S": "3",
        "TRUCKTRACK_OTP_VALID_MIN": "0.05",  # 3 s
        "TRUCKTRACK_OTP_WEBHOOK_URL": f"{gateway.url}/otp",
        "TRUCKTRACK_OTP_WEBHOOK_SECRET": "s3cret",
    }
    srv = Server(tmp_path_factory.mktemp("pod") / "data", env=env).start()
    try:
        yield srv
    finally:
        srv.stop()
        gateway.stop()


@pytest.fixture
def c(server: Server, uid: str) -> Iterator[httpx.Client]:
    with server.client(create_token(server.data_dir, f"pod-{uid}", "admin")) as client:
        yield client


def start_trip(c: httpx.Client, uid: str, suffix: str = "") -> str:
    trip_id = f"P{suffix}-{uid}"
    consignee = {"contact_name": "Asha", "contact_phone": "+91 98765 43210"}
    body = {"trip_id": trip_id, "vehicle_id": f"PV{suffix}-{uid}", "pickup": PLACE,
            "delivery": {**PLACE, **consignee}}  # fmt: skip
    assert c.post("/trips", json=body).status_code == 201
    r = c.post("/delivery/milestone", json={"trip_id": trip_id, "milestone": "trip_started"})
    assert r.status_code == 201
    return trip_id


def upload(c: httpx.Client, trip_id: str, kind: str, data: bytes | str | None,
           name: str = "capture.bin", **fields: Any) -> httpx.Response:  # fmt: skip
    files = {"file": (name, data, "application/octet-stream")} if data is not None else None
    form = {"trip_id": trip_id, "type": kind, **{k: str(v) for k, v in fields.items()}}
    return c.post("/delivery/pod", data=form, files=files)


def codes_for(trip_id: str) -> list[str]:
    return [m["code"] for m in Gateway.sent if m["trip_id"] == trip_id]


def test_every_kind_of_capture_is_stored_hashed_and_downloadable(
    server: Server, c: httpx.Client, uid: str
) -> None:
    trip_id = start_trip(c, uid)
    captures = [
        ("photo", JPEG, {"lat": 18.52, "lng": 73.85, "captured_at": "2026-11-25T10:00:00Z"}),
        ("photo", WEBP, {}),
        ("signature", PNG, {"signer_name": "Asha"}),
        ("signature", STROKES, {"signer_name": "Asha"}),
        ("weight_receipt", PDF, {"weight_kg": 12_480.5, "ticket_number": "WB-7781"}),
        ("document", JPEG, {"note": "the LR copy"}),
    ]
    made = []
    for kind, data, fields in captures:
        r = upload(c, trip_id, kind, data, **fields)
        assert r.status_code == 201, r.text
        made.append(r.json())
    raw = [d.encode() if isinstance(d, str) else d for _, d, _ in captures]
    assert [m["sha256"] for m in made] == [hashlib.sha256(d).hexdigest() for d in raw]
    assert [m["media_type"] for m in made] == [
        "image/jpeg", "image/webp", "image/png", "application/vnd.trucktrack.strokes+json",
        "application/pdf", "image/jpeg",
    ]  # fmt: skip
    assert made[0]["captured_at"] == "2026-11-25T10:00:00.000Z" and made[0]["lat"] == 18.52
    assert made[4]["weight_kg"] == 12_480.5 and made[4]["ticket_number"] == "WB-7781"
    listed = c.get(f"/trips/{trip_id}/pod").json()
    assert [x["pod_id"] for x in listed["captures"]] == [m["pod_id"] for m in made]
    assert listed["missing"] == []  # a photo and a signature: the default policy is met
    # The signed link needs no token; the bytes come back as stored.
    with httpx.Client(base_url=server.url) as anonymous:
        for m, data in zip(listed["captures"], raw, strict=True):
            r = anonymous.get(m["download"])
            assert r.status_code == 200 and r.content == data
            assert r.headers["x-content-type-options"] == "nosniff"
        forged = listed["captures"][0]["download"].replace("sig=", "sig=0")
        assert_error(anonymous.get(forged), 403, "forbidden")
        time.sleep(4)
        assert_error(anonymous.get(listed["captures"][0]["download"]), 403, "forbidden")
    # Files sit under the fleet's folder at pod/{trip}/{type}/{pod_id}.{ext}.
    folder = server.data_dir / "objects" / f"pod-{uid}" / "pod" / trip_id
    assert sorted(p.name for p in (folder / "photo").iterdir()) == sorted(
        f"{m['pod_id']}.{ext}" for m, ext in ((made[0], "jpg"), (made[1], "webp"))
    )


@pytest.mark.parametrize(
    ("kind", "data", "fields", "status"),
    [
        ("photo", GIF, {}, 422),
        ("photo", PDF, {}, 422),
        ("photo", b"MZ\x90\x00 not a jpeg", {}, 422),
        ("photo", b"", {}, 400),
        ("document", STROKES, {}, 422),
        ("signature", '{"strokes": []}', {"signer_name": "A"}, 422),
        ("signature", PNG, {}, 400),
        ("weight_receipt", PDF, {}, 400),
        ("weight_receipt", PDF, {"weight_kg": -5}, 400),
        ("photo", JPEG, {"lat": 91, "lng": 73}, 400),
        ("photo", JPEG, {"lat": 18}, 400),
        ("photo", JPEG, {"captured_at": "yesterday"}, 400),
        ("selfie", JPEG, {}, 400),
        ("photo", JPEG, {"colour": "red"}, 400),
        ("photo", JPEG + bytes(60_000), {}, 413),
    ],
)
def test_bad_captures_are_refused_and_nothing_is_kept(
    server: Server, c: httpx.Client, uid: str, kind: str, data: bytes | str,
    fields: dict[str, Any], status: int,
) -> None:  # fmt: skip
    trip_id = start_trip(c, uid)
    r = upload(c, trip_id, kind, data, name="x.jpg", **fields)
    assert r.status_code == status, r.text
    assert "error" in r.json()
    assert c.get(f"/trips/{trip_id}/pod").json()["captures"] == []
    assert not (server.data_dir / "objects" / f"pod-{uid}" / "pod").exists()


def test_client_names_never_become_paths(server: Server, c: httpx.Client, uid: str) -> None:
    trip_id = start_trip(c, uid)
    r = upload(c, trip_id, "photo", JPEG, name="../../../../etc/passwd.jpg")
    assert r.status_code == 201
    assert r.json()["file_name"] == "../../../../etc/passwd.jpg"
    stored = list((server.data_dir / "objects").rglob("*"))
    assert all("passwd" not in str(p) for p in stored)
    for bad in ("../x", "..", "a/b", ""):
        assert_error(upload(c, bad, "photo", JPEG), 400, "bad_request")
    r = c.post("/delivery/pod", content=b"not a form", headers={"content-type": "text/plain"})
    assert r.status_code == 400


def test_otp_right_wrong_expired_and_locked(server: Server, c: httpx.Client, uid: str) -> None:
    trip_id = start_trip(c, uid)
    r = upload(c, trip_id, "otp", None, code="123456")
    assert "no OTP was sent" in assert_error(r, 409, "conflict")["message"]
    sent = c.post("/delivery/otp", json={"trip_id": trip_id})
    assert sent.status_code == 202 and set(sent.json()) == {"trip_id", "expires_at", "sends"}
    (code,) = codes_for(trip_id)
    assert len(code) == 6 and code.isdigit() and code not in sent.text
    message = next(m for m in Gateway.sent if m["trip_id"] == trip_id)
    assert message["consignee"]["contact_phone"] == "+91 98765 43210"
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    r = upload(c, trip_id, "otp", None, code=wrong)
    assert assert_error(r, 422, "unprocessable")["details"] == [{"attempts_left": 4}]
    assert_error(upload(c, trip_id, "otp", None, code="12ab56"), 400, "bad_request")
    r = upload(c, trip_id, "otp", None, code=code)
    assert r.status_code == 201 and r.json()["type"] == "otp" and r.json()["download"] is None
    # A code never appears in a reply, a listing or the log.
    assert code not in c.get(f"/trips/{trip_id}/pod").text
    assert code not in server.log.read_text()

    # Expired: valid 3 s here.
    late = start_trip(c, uid, "L")
    assert c.post("/delivery/otp", json={"trip_id": late}).status_code == 202
    time.sleep(3.5)
    r = upload(c, late, "otp", None, code=codes_for(late)[-1])
    assert "expired" in assert_error(r, 422, "unprocessable")["message"]

    # Locked after five wrong codes: even the right one is refused then.
    locked = start_trip(c, uid, "K")
    assert c.post("/delivery/otp", json={"trip_id": locked}).status_code == 202
    right = codes_for(locked)[-1]
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    statuses = [upload(c, locked, "otp", None, code=wrong).status_code for _ in range(5)]
    assert statuses == [422, 422, 422, 422, 429]
    assert_error(upload(c, locked, "otp", None, code=right), 429, "locked")
    # A new code unlocks (at most 5 codes per trip).
    assert c.post("/delivery/otp", json={"trip_id": locked}).status_code == 202
    assert upload(c, locked, "otp", None, code=codes_for(locked)[-1]).status_code == 201


def test_reaching_the_delivery_sends_the_consignee_a_code(c: httpx.Client, uid: str) -> None:
    trip_id = start_trip(c, uid)
    post_ok(c, {"vehicle_id": f"PV-{uid}", **PLACE, "timestamp": now_ms()})
    for name in ("reached_pickup", "loading_started", "loading_completed", "in_transit",
                 "reached_delivery"):  # fmt: skip
        r = c.post("/delivery/milestone", json={"trip_id": trip_id, "milestone": name})
        assert r.status_code == 201, r.text
    deadline = time.monotonic() + 5
    while not codes_for(trip_id) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(codes_for(trip_id)) == 1


def test_the_policy_gates_completion(server: Server, c: httpx.Client, uid: str) -> None:
    trip_id = start_trip(c, uid)
    for name in ("reached_pickup", "loading_started", "loading_completed", "in_transit",
                 "reached_delivery", "unloading_started", "unloading_completed"):  # fmt: skip
        r = c.post("/delivery/milestone", json={"trip_id": trip_id, "milestone": name,
                                                "override": True})  # fmt: skip
        assert r.status_code == 201, r.text
    done = {"trip_id": trip_id, "milestone": "trip_completed"}
    error = assert_error(c.post("/delivery/milestone", json=done), 409, "conflict")
    assert error["details"] == [{"missing": ["otp or signature", "photo"]}]
    assert upload(c, trip_id, "photo", JPEG).status_code == 201
    error = assert_error(c.post("/delivery/milestone", json=done), 409, "conflict")
    assert error["details"] == [{"missing": ["otp or signature"]}]
    assert upload(c, trip_id, "signature", STROKES, signer_name="Asha").status_code == 201
    assert c.post("/delivery/milestone", json=done).status_code == 201
    assert_error(upload(c, trip_id, "photo", JPEG), 409, "conflict")  # the trip is over

    assert c.get("/delivery/pod-policy").json() == {"require": [["otp", "signature"], ["photo"]]}
    dispatcher = create_token(server.data_dir, f"pod-{uid}", "dispatcher")
    with server.client(dispatcher) as d:
        assert_error(d.put("/delivery/pod-policy", json={"require": []}), 403, "forbidden")
    r = c.put("/delivery/pod-policy", json={"require": [["weight_receipt"]]})
    assert r.status_code == 200 and r.json() == {"require": [["weight_receipt"]]}
    assert_error(c.put("/delivery/pod-policy", json={"require": [["selfie"]]}), 400,
                 "validation_error")  # fmt: skip
    assert_error(c.put("/delivery/pod-policy", json={"require": [[]]}), 400, "validation_error")
    other = start_trip(c, uid, "W")
    r = c.post("/delivery/milestone", json={"trip_id": other, "milestone": "reached_pickup",
                                            "override": True})  # fmt: skip
    assert r.status_code == 201
    assert c.get(f"/trips/{other}/pod").json()["missing"] == ["weight_receipt"]
    assert c.put("/delivery/pod-policy", json={"require": []}).status_code == 200
    assert c.get(f"/trips/{other}/pod").json()["missing"] == []


def test_proof_of_delivery_stays_in_its_fleet(server: Server, c: httpx.Client, uid: str) -> None:
    trip_id = start_trip(c, uid)
    assert upload(c, trip_id, "photo", JPEG).status_code == 201
    stranger = create_token(server.data_dir, f"other-{uid}", "admin")
    viewer = create_token(server.data_dir, f"pod-{uid}", "viewer")
    device = create_token(server.data_dir, f"pod-{uid}", "device", f"PV-{uid}")
    with server.client(stranger) as s, server.client(viewer) as v, server.client(device) as d, \
            server.client(None) as anon:  # fmt: skip
        assert_error(s.get(f"/trips/{trip_id}/pod"), 404, "not_found")
        assert_error(upload(s, trip_id, "photo", JPEG), 404, "not_found")
        assert_error(s.post("/delivery/otp", json={"trip_id": trip_id}), 404, "not_found")
        assert s.get("/delivery/pod-policy").json()["require"] == [["otp", "signature"],
                                                                   ["photo"]]  # fmt: skip
        assert v.get(f"/trips/{trip_id}/pod").status_code == 200
        assert_error(upload(v, trip_id, "photo", JPEG), 403, "forbidden")
        assert upload(d, trip_id, "photo", WEBP).status_code == 201
        assert_error(anon.get(f"/trips/{trip_id}/pod"), 401, "unauthenticated")
        assert_error(upload(anon, trip_id, "photo", JPEG), 401, "unauthenticated")
    assert len(c.get(f"/trips/{trip_id}/pod").json()["captures"]) == 2


def test_after_verification_a_wrong_code_is_refused_and_the_right_one_is_a_retry(
    c: httpx.Client, uid: str
) -> None:
    trip_id = start_trip(c, uid)
    assert c.post("/delivery/otp", json={"trip_id": trip_id}).status_code == 202
    code = codes_for(trip_id)[-1]
    first = upload(c, trip_id, "otp", None, code=code)
    assert first.status_code == 201 and first.json()["repeated"] is False
    again = upload(c, trip_id, "otp", None, code=code)
    assert again.status_code == 200 and again.json() == {**first.json(), "repeated": True}
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    r = upload(c, trip_id, "otp", None, code=wrong)
    error = assert_error(r, 422, "unprocessable")
    assert error["message"] == "wrong code" and error["details"] == [{"attempts_left": 4}]
    # Guesses stay counted: locked after five, the verification stands.
    statuses = [upload(c, trip_id, "otp", None, code=wrong).status_code for _ in range(4)]
    assert statuses == [422, 422, 422, 429]
    r = upload(c, trip_id, "otp", None, code=code)
    assert "verified already" in assert_error(r, 429, "locked")["message"]
    listed = c.get(f"/trips/{trip_id}/pod").json()
    assert [x["pod_id"] for x in listed["captures"]] == [first.json()["pod_id"]]
    assert listed["otp"]["state"] == "verified" and listed["missing"] == ["photo"]
    assert_error(c.post("/delivery/otp", json={"trip_id": trip_id}), 409, "conflict")


def test_the_code_is_stored_before_it_is_sent(server: Server, c: httpx.Client, uid: str) -> None:
    # GIVEN a consignee who types the code in before the gateway has even answered
    trip_id = start_trip(c, uid)
    token = c.headers["Authorization"].removeprefix("Bearer ")
    answers: list[Any] = []

    def consignee_is_quick(message: dict[str, Any]) -> None:
        with server.client(token) as driver:
            answers.append(driver.get(f"/trips/{trip_id}/pod").json()["otp"]["state"])
            answers.append(upload(driver, trip_id, "otp", None, code=message["code"]).status_code)

    Gateway.before_answering[trip_id] = consignee_is_quick
    # WHEN the code is sent THEN the server already knows it
    assert c.post("/delivery/otp", json={"trip_id": trip_id}).status_code == 202
    assert answers == ["sending", 201]
    otp = c.get(f"/trips/{trip_id}/pod").json()["otp"]
    assert otp["state"] == "verified" and otp["sends"] == 1 and otp["error"] is None


def test_a_code_the_gateway_refused_shows_where_the_dispatcher_looks(
    c: httpx.Client, uid: str
) -> None:
    trip_id = start_trip(c, uid)
    Gateway.failing.add(trip_id)
    for name in ("reached_pickup", "loading_started", "loading_completed", "in_transit",
                 "reached_delivery"):  # fmt: skip
        r = c.post("/delivery/milestone", json={"trip_id": trip_id, "milestone": name,
                                                "override": True})  # fmt: skip
        assert r.status_code == 201, r.text

    def otp() -> dict[str, Any]:
        state: dict[str, Any] = c.get(f"/trips/{trip_id}/pod").json()["otp"]
        return state

    refused = wait_for(lambda: (o := otp())["state"] == "not_sent" and o, what="not_sent")
    assert refused["sends"] == 0 and "answered 500" in refused["error"]
    r = c.post("/delivery/otp", json={"trip_id": trip_id})
    assert "answered 500" in assert_error(r, 502, "notifier_failed")["message"]
    assert codes_for(trip_id) == []
    # The gateway is back: a new code goes out and the listing says so.
    Gateway.failing.discard(trip_id)
    r = c.post("/delivery/otp", json={"trip_id": trip_id})
    assert r.status_code == 202 and r.json()["sends"] == 1
    assert len(codes_for(trip_id)) == 1
    sent = otp()
    assert sent["state"] == "sent" and sent["error"] is None and sent["attempts_left"] == 5
    assert sent["sends"] == 1 and sent["expires_at"] == r.json()["expires_at"]


@pytest.mark.parametrize("field", ["type", "trip_id", "signer_name", "file"])
def test_a_field_given_twice_is_refused(
    server: Server, c: httpx.Client, uid: str, field: str
) -> None:
    trip_id, other = start_trip(c, uid), start_trip(c, uid, "D")
    form: dict[str, Any] = {"trip_id": trip_id, "type": "signature", "signer_name": "Asha"}
    files = [("file", ("a.png", PNG, "image/png"))]
    if field == "file":
        files.append(("file", ("b.jpg", JPEG, "image/jpeg")))
    else:
        second = {"type": "photo", "trip_id": other, "signer_name": "Ravi"}[field]
        form[field] = [form[field], second]
    error = assert_error(c.post("/delivery/pod", data=form, files=files), 400, "bad_request")
    assert f"{field} given more than once" in error["message"]
    for trip in (trip_id, other):
        assert c.get(f"/trips/{trip}/pod").json()["captures"] == []
    assert not (server.data_dir / "objects" / f"pod-{uid}" / "pod").exists()


def test_a_retried_upload_returns_the_stored_capture(
    server: Server, c: httpx.Client, uid: str
) -> None:
    trip_id = start_trip(c, uid)
    first = upload(c, trip_id, "photo", JPEG, name="door.jpg", **PLACE)
    assert first.status_code == 201 and first.json()["repeated"] is False
    # The phone lost the reply and sends it again (its own name for the file this time).
    again = upload(c, trip_id, "photo", JPEG, name="door (1).jpg")
    assert again.status_code == 200 and again.json()["repeated"] is True
    same = {"pod_id", "sha256", "file_name", "uploaded_at", "lat", "lng"}
    assert {k: again.json()[k] for k in same} == {k: first.json()[k] for k in same}
    # The same bytes as another type, or on another trip, are captures of their own.
    assert upload(c, trip_id, "document", JPEG).status_code == 201
    other = start_trip(c, uid, "R")
    assert upload(c, other, "photo", JPEG).status_code == 201
    listed = c.get(f"/trips/{trip_id}/pod").json()["captures"]
    assert [x["type"] for x in listed] == ["photo", "document"]
    folder = server.data_dir / "objects" / f"pod-{uid}" / "pod" / trip_id / "photo"
    assert [p.name for p in folder.iterdir()] == [f"{first.json()['pod_id']}.jpg"]


def test_a_declared_length_over_the_limit_is_refused_before_the_body(
    server: Server, c: httpx.Client, uid: str
) -> None:
    # The headers alone: were the body awaited, no reply would come before the timeout.
    trip_id = start_trip(c, uid)
    head = (
        "POST /delivery/pod HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: {c.headers['Authorization']}\r\n"
        "Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: 5000000\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(head.encode())
        reply = _read_reply(sock)
    assert reply.startswith(b"HTTP/1.1 413 "), reply
    assert b"payload_too_large" in reply and b"over 50000 bytes" in reply
    assert c.get(f"/trips/{trip_id}/pod").json()["captures"] == []


def test_a_signed_link_opens_only_its_own_capture(
    server: Server, c: httpx.Client, uid: str
) -> None:
    trip_id, other = start_trip(c, uid), start_trip(c, uid, "S")
    mine = upload(c, trip_id, "photo", JPEG).json()
    other_trip = upload(c, other, "photo", PNG).json()
    with server.client(create_token(server.data_dir, f"far-{uid}", "admin")) as s:
        far = upload(s, start_trip(s, uid, "F"), "photo", WEBP).json()
    with httpx.Client(base_url=server.url) as anonymous:
        assert anonymous.get(mine["download"]).content == JPEG
        for pod_id in (other_trip["pod_id"], far["pod_id"]):
            swapped = mine["download"].replace(mine["pod_id"], pod_id)
            assert swapped != mine["download"]
            assert_error(anonymous.get(swapped), 403, "forbidden")


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with the default settings: 10 MB files, no OTP gateway."""
    srv = Server(tmp_path_factory.mktemp("pod-plain") / "data").start()
    try:
        yield srv
    finally:
        srv.stop()


def test_the_default_file_limit_is_10_mb(plain: Server, uid: str) -> None:
    with plain.client(create_token(plain.data_dir, f"plain-{uid}", "admin")) as c:
        trip_id = start_trip(c, uid)
        at_limit = JPEG + bytes(10_000_000 - len(JPEG))
        r = upload(c, trip_id, "photo", at_limit + b"\0")
        assert "over 10000000 bytes" in assert_error(r, 413, "payload_too_large")["message"]
        r = upload(c, trip_id, "photo", at_limit)
        assert r.status_code == 201 and r.json()["size"] == 10_000_000
        assert upload(c, trip_id, "document", at_limit[:-1]).status_code == 201


def test_without_a_gateway_an_otp_cannot_be_sent_and_the_listing_says_so(
    plain: Server, uid: str
) -> None:
    with plain.client(create_token(plain.data_dir, f"nogw-{uid}", "admin")) as c:
        trip_id = start_trip(c, uid)
        r = c.post("/delivery/otp", json={"trip_id": trip_id})
        assert (
            "TRUCKTRACK_OTP_WEBHOOK_URL"
            in assert_error(r, 503, "notifier_not_configured")["message"]
        )
        otp = c.get(f"/trips/{trip_id}/pod").json()["otp"]
        assert otp["state"] == "unavailable" and "TRUCKTRACK_OTP_WEBHOOK_URL" in otp["error"]


def _read_reply(sock: socket.socket) -> bytes:
    """A whole HTTP reply: its headers and body may come in separate segments."""
    reply = b""
    while b"\r\n\r\n" not in reply and (chunk := sock.recv(65536)):
        reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    length = next(
        (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
         if line.lower().startswith(b"content-length:")),
        0,
    )  # fmt: skip
    while len(body) < length and (chunk := sock.recv(65536)):
        body += chunk
    return head + b"\r\n\r\n" + body
