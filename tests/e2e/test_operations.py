"""Health, metrics, API docs and the token command."""

from __future__ import annotations

import subprocess

import httpx

from tests.e2e.conftest import CLI, Server, Tokens, now_ms, point


def test_healthz_needs_no_token(server: Server) -> None:
    r = httpx.get(server.url + "/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in metrics")


def test_metrics_need_an_admin_and_move_with_traffic(
    server: Server, tokens: Tokens, a: httpx.Client, uid: str
) -> None:
    assert httpx.get(server.url + "/metrics").status_code == 401
    with server.client(tokens.viewer_a) as viewer:
        assert viewer.get("/metrics").status_code == 403
    before = a.get("/metrics").text
    t = now_ms()
    a.post(
        "/tracking/gps", json={"updates": [point(f"MX-{uid}", t), point(f"MX-{uid}", t, lat=99)]}
    )
    after = a.get("/metrics")
    assert after.headers["content-type"].startswith("text/plain")
    text = after.text
    assert metric(text, "gps_updates_total") == metric(before, "gps_updates_total") + 1
    assert (
        metric(text, "gps_ingestion_errors_total")
        == metric(before, "gps_ingestion_errors_total") + 1
    )
    assert metric(text, "active_vehicles_tracked") >= 1
    assert metric(text, "gps_ingest_latency_seconds_count") >= 1
    assert 'gps_ingest_latency_seconds_bucket{le="0.1"}' in text


def test_openapi_and_docs(server: Server) -> None:
    spec = httpx.get(server.url + "/openapi.json").json()
    paths = spec["paths"]
    for path in ("/tracking/gps", "/tracking/vehicle/{vehicle_id}/location",
                 "/tracking/vehicles/bulk", "/tracking/trip/{trip_id}/history"):  # fmt: skip
        assert path in paths, path
    body = paths["/tracking/gps"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["$ref"] == "#/components/schemas/GpsBatchIn"
    assert "PointIn" in spec["components"]["schemas"]
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    docs = httpx.get(server.url + "/docs")
    assert docs.status_code == 200 and "/openapi.json" in docs.text


def test_token_create_refuses_bad_input(server: Server) -> None:
    for args in (["--fleet", "demo", "--role", "root"], ["--fleet", "bad fleet", "--role", "admin"],
                 ["--fleet", "demo", "--role", "device", "--vehicle", "no spaces"]):  # fmt: skip
        out = subprocess.run(
            [*CLI, "token", "create", "--data-dir", str(server.data_dir), *args],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.returncode != 0, args
