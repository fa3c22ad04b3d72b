"""Settings from the environment, their documentation, and the history formats."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import msgspec
import pytest

from tests.fakes import gps
from trucktrack.api.formats import trip_geojson, trip_gpx
from trucktrack.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]


def test_settings_from_env_with_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUCKTRACK_RETENTION_DAYS", "7")
    monkeypatch.setenv("TRUCKTRACK_BOOTSTRAP_DEMO_TOKEN", "false")
    monkeypatch.setenv("TRUCKTRACK_PORT", "9000")
    s = load_settings({"port": 9001, "host": None})
    assert (s.retention_days, s.bootstrap_demo_token, s.port, s.host) == (
        7.0,
        False,
        9001,
        "127.0.0.1",
    )


@pytest.mark.parametrize(
    ("name", "value"), [("PORT", "http"), ("PORT", "70000"), ("MAX_BATCH_POINTS", "0")]
)
def test_bad_settings_stop_the_start(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(f"TRUCKTRACK_{name}", value)
    with pytest.raises(SystemExit, match="bad setting"):
        load_settings()


def test_every_setting_is_documented() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    for field in msgspec.structs.fields(Settings):
        assert f"`TRUCKTRACK_{field.name.upper()}`" in doc, field.name


def test_geojson_is_a_linestring_in_lng_lat_order() -> None:
    pts = [gps("V1", 1000, lat=10, lng=70, speed=36), gps("V1", 2000, lat=11, lng=71)]
    f = trip_geojson("T", pts, "next")
    assert f["geometry"] == {"type": "LineString", "coordinates": [[70, 10], [71, 11]]}
    assert f["properties"]["speeds"] == [36, 0.0] and f["properties"]["next_cursor"] == "next"


def test_gpx_is_valid_1_1_and_escapes_ids() -> None:
    ns = "{http://www.topografix.com/GPX/1/1}"
    root = ET.fromstring(trip_gpx("T<&>", [gps("V&1", 1000, lat=10, lng=70, speed=36)]))
    assert root.get("version") == "1.1"
    assert root.find(f"{ns}trk/{ns}name").text == "T<&>"
    pt = root.find(f"{ns}trk/{ns}trkseg/{ns}trkpt")
    assert (pt.get("lat"), pt.get("lon")) == ("10.0000000", "70.0000000")
    assert pt.find(f"{ns}time").text == "1970-01-01T00:00:01.000Z"
    assert pt.find(f"{ns}extensions/{{https://trucktrack.dev/gpx/1}}speed").text == "10.000"
