"""Health, metrics, API docs, error envelopes for unknown routes, and the token command."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import (
    Server,
    Tokens,
    assert_error,
    metric,
    now_ms,
    point,
    post_ok,
    run_cli,
)


def test_healthz_needs_no_token(server: Server) -> None:
    r = httpx.get(server.url + "/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/metrics"),
        ("GET", "/tracking/vehicle/V1/location"),
        ("POST", "/tracking/vehicles/bulk"),
        ("GET", "/tracking/trip/T1/history"),
    ],
)
def test_every_other_endpoint_needs_a_token(server: Server, method: str, path: str) -> None:
    """401 with a Bearer challenge, for no token and for an unknown one."""
    for headers in ({}, {"Authorization": "Bearer tt_unknown"}):
        r = httpx.request(method, server.url + path, headers=headers, json={"vehicle_ids": ["V1"]})
        assert_error(r, 401, "unauthenticated")
        assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_metrics_need_an_admin_and_move_with_traffic(
    server: Server, tokens: Tokens, a: httpx.Client, uid: str
) -> None:
    """GIVEN an admin's scrape WHEN a batch with one good, one duplicate and one bad point is
    posted THEN the counters move by exactly that much; viewers and dispatchers get 403."""
    assert_error(httpx.get(server.url + "/metrics"), 401, "unauthenticated")
    for token in (tokens.viewer_a, tokens.dispatcher_a, tokens.device_a):
        with server.client(token) as c:
            assert_error(c.get("/metrics"), 403, "forbidden")
    t = now_ms()
    v = f"MX-{uid}"
    before = a.get("/metrics").text
    r = a.post("/tracking/gps", json={"updates": [point(v, t), point(v, t), point(v, t, lat=99)]})
    assert r.json()["processed"] == 2
    after = a.get("/metrics")
    assert after.status_code == 200
    assert after.headers["content-type"].startswith("text/plain")
    text = after.text

    def moved(name: str) -> float:
        return metric(text, name) - metric(before, name)

    assert moved("gps_updates_total") == 2
    assert moved("gps_duplicate_points_total") == 1
    assert moved("gps_ingestion_errors_total") == 1
    assert moved("gps_ingest_latency_seconds_count") == 1
    assert metric(text, "gps_ingest_latency_seconds_sum") > metric(
        before, "gps_ingest_latency_seconds_sum"
    )
    assert 'gps_ingest_latency_seconds_bucket{le="+Inf"}' in text
    assert 'gps_ingest_latency_seconds_bucket{le="0.1"}' in text
    assert metric(text, "active_vehicles_tracked") >= 1
    assert metric(text, "gps_write_queue_points") == 0
    assert "ingest_overloaded_total" in text


def test_active_vehicles_counts_new_fresh_vehicles(a: httpx.Client, uid: str) -> None:
    """Two new vehicles with fresh points add two; a vehicle last seen 25 h ago adds none."""
    before = metric(a.get("/metrics").text, "active_vehicles_tracked")
    post_ok(a, point(f"AV1-{uid}", now_ms() - 5), point(f"AV2-{uid}", now_ms() - 5))
    post_ok(a, point(f"AV3-{uid}", now_ms() - 25 * 3_600_000))
    after = metric(a.get("/metrics").text, "active_vehicles_tracked")
    assert after - before == 2


def test_openapi_and_docs(server: Server) -> None:
    """/openapi.json documents the four tracking routes (ingest with its request body) and the
    bearer scheme; /docs is an HTML page loading it. Neither needs a token."""
    r = httpx.get(server.url + "/openapi.json")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    spec = r.json()
    assert spec["openapi"].startswith("3.")
    paths = spec["paths"]
    for path, method in (
        ("/tracking/gps", "post"),
        ("/tracking/vehicle/{vehicle_id}/location", "get"),
        ("/tracking/vehicles/bulk", "post"),
        ("/tracking/trip/{trip_id}/history", "get"),
        ("/healthz", "get"),
        ("/metrics", "get"),
    ):
        assert method in paths.get(path, {}), path
    body = paths["/tracking/gps"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["$ref"] == "#/components/schemas/GpsBatchIn"
    point_schema = spec["components"]["schemas"]["PointIn"]
    assert set(point_schema["required"]) == {"vehicle_id", "lat", "lng"}
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    history_op = paths["/tracking/trip/{trip_id}/history"]["get"]
    history_params = {p["name"] for p in history_op.get("parameters", [])}
    assert {"from", "to", "limit", "cursor", "format"} <= history_params
    docs = httpx.get(server.url + "/docs")
    assert docs.status_code == 200
    assert docs.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in docs.text


def test_unknown_routes_and_methods_use_the_error_envelope(a: httpx.Client) -> None:
    assert_error(a.get("/nope"), 404, "not_found")
    assert_error(a.get("/tracking/gps"), 405, "method_not_allowed")
    assert_error(a.delete("/tracking/vehicle/V1/location"), 405, "method_not_allowed")


@pytest.mark.parametrize(
    "args",
    [
        ["--fleet", "demo", "--role", "root"],
        ["--fleet", "bad fleet", "--role", "admin"],
        ["--fleet", "", "--role", "admin"],
        ["--fleet", "demo", "--role", "device", "--vehicle", "no spaces"],
        ["--role", "admin"],
    ],
    ids=["role", "fleet-chars", "fleet-empty", "vehicle-chars", "no-fleet"],
)
def test_token_create_refuses_bad_input(server: Server, args: list[str]) -> None:
    """A bad role, fleet or vehicle exits non-zero with a message and prints no token."""
    out = run_cli("token", "create", "--data-dir", str(server.data_dir), *args)
    assert out.returncode != 0, args
    assert out.stderr.strip()
    assert "tt_" not in out.stdout
