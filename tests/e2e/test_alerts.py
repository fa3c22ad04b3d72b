"""The panic button and the alert list through the real server."""

from __future__ import annotations

import httpx

from tests.e2e.conftest import Server, Tokens, now_ms, point


def test_a_panic_press_is_a_critical_alert_stored_once(a: httpx.Client, uid: str) -> None:
    v, t = f"P-{uid}", now_ms() - 1000
    a.post("/tracking/gps", json={"updates": [point(v, t - 1000)]})
    press = {"vehicle_id": v, "timestamp": t, "lat": 18.5, "lng": 73.8, "trip_id": f"T-{uid}",
             "note": "driver pressed SOS"}  # fmt: skip
    first = a.post("/tracking/emergency", json=press)
    assert first.status_code == 201, first.text
    alert = first.json()
    assert (alert["type"], alert["severity"], alert["vehicle_id"]) == ("panic", "critical", v)
    assert alert["timestamp_ms"] == t and alert["details"] == {"note": "driver pressed SOS"}
    again = a.post("/tracking/emergency", json=press)  # the device retried
    assert again.status_code == 200 and again.json()["alert_id"] == alert["alert_id"]
    listed = a.get("/alerts", params={"vehicle_id": v}).json()["alerts"]
    assert [x["alert_id"] for x in listed] == [alert["alert_id"]]


def test_acknowledging_and_filtering(a: httpx.Client, b: httpx.Client, uid: str) -> None:
    t = now_ms() - 60_000
    ids = []
    for i in range(5):
        r = a.post(
            "/tracking/emergency", json={"vehicle_id": f"F{i % 2}-{uid}", "timestamp": t + i}
        )
        ids.append(r.json()["alert_id"])
    acked = a.post(f"/alerts/{ids[0]}/ack")
    assert acked.status_code == 200 and acked.json()["acknowledged_at"] is not None
    assert a.post(f"/alerts/{ids[0]}/ack").json() == acked.json()  # idempotent
    assert a.post("/alerts/al_nope/ack").status_code == 404
    assert b.post(f"/alerts/{ids[1]}/ack").status_code == 404
    pages, cursor, seen = 0, None, []
    while True:
        params: dict[str, object] = {"since": t, "until": t + 5, "type": "panic", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        body = a.get("/alerts", params=params).json()
        seen += [x["alert_id"] for x in body["alerts"]]
        cursor, pages = body["next_cursor"], pages + 1
        if cursor is None or pages > 5:
            break
    assert [i for i in seen if i in ids] == ids
    only = a.get("/alerts", params={"vehicle_id": f"F1-{uid}"}).json()["alerts"]
    assert [x["alert_id"] for x in only] == [ids[1], ids[3]]
    assert b.get("/alerts", params={"vehicle_id": f"F1-{uid}"}).json()["alerts"] == []
    for params in ({"type": "fire"}, {"since": "soon"}, {"cursor": "%%%"}, {"limit": 0}):
        assert a.get("/alerts", params=params).status_code == 400, params


def test_emergency_scope_and_validation(server: Server, tokens: Tokens, a: httpx.Client,
                                        b: httpx.Client, uid: str) -> None:  # fmt: skip
    v = f"S-{uid}"
    a.post("/tracking/gps", json={"updates": [point(v, now_ms() - 1000)]})
    assert b.post("/tracking/emergency", json={"vehicle_id": v}).status_code == 403
    with server.client(tokens.viewer_a) as viewer:
        assert viewer.post("/tracking/emergency", json={"vehicle_id": v}).status_code == 403
        assert viewer.get("/alerts").status_code == 200
    with server.client(tokens.device_a) as device:
        assert device.post("/tracking/emergency", json={"vehicle_id": v}).status_code == 403
    bad_presses = [
        {},
        {"vehicle_id": "bad id"},
        {"vehicle_id": v, "lat": 91},
        {"vehicle_id": v, "trip_id": "not a trip id!"},
        {"vehicle_id": v, "note": "x" * 501},
        {"vehicle_id": v, "timestamp": "tomorrow"},
        {"vehicle_id": v, "timestamp": now_ms() + 3_600_000},
        {"vehicle_id": v, "x": 1},
    ]
    for bad in bad_presses:
        assert a.post("/tracking/emergency", json=bad).status_code == 400, bad
    assert httpx.post(server.url + "/tracking/emergency", json={"vehicle_id": v}).status_code == 401
