"""Trip history as GeoJSON (a LineString Feature) and as a GPX 1.1 track."""

from __future__ import annotations

from collections.abc import Sequence
from xml.sax.saxutils import escape, quoteattr

from trucktrack.domain.model import GpsPoint
from trucktrack.domain.timefmt import format_ms

KMH_TO_MS = 1 / 3.6


def trip_geojson(trip_id: str, points: Sequence[GpsPoint], next_cursor: str | None) -> dict:
    """A Feature whose geometry is the track and whose properties carry per-point arrays."""
    return {
        "type": "Feature",
        "geometry": {"type": "LineString", "coordinates": [[p.lng, p.lat] for p in points]},
        "properties": {
            "trip_id": trip_id,
            "count": len(points),
            "next_cursor": next_cursor,
            "vehicle_ids": [p.vehicle_id for p in points],
            "timestamps": [format_ms(p.ts) for p in points],
            "speeds": [p.speed for p in points],
            "headings": [p.heading for p in points],
            "accuracies": [p.accuracy for p in points],
            "altitudes": [p.altitude for p in points],
        },
    }


def trip_gpx(trip_id: str, points: Sequence[GpsPoint]) -> str:
    """GPX 1.1: one track, one segment; speed and heading in the Garmin-free `trucktrack` ns."""
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<gpx version="1.1" creator="trucktrack" xmlns="http://www.topografix.com/GPX/1/1" '
        'xmlns:tt="https://trucktrack.dev/gpx/1">',
        f"<trk><name>{escape(trip_id)}</name><trkseg>",
    ]
    for p in points:
        ele = f"<ele>{p.altitude}</ele>" if p.altitude is not None else ""
        out.append(
            f"<trkpt lat={quoteattr(f'{p.lat:.7f}')} lon={quoteattr(f'{p.lng:.7f}')}>{ele}"
            f"<time>{format_ms(p.ts)}</time><extensions><tt:speed>"
            f"{p.speed * KMH_TO_MS:.3f}</tt:speed><tt:course>{p.heading}</tt:course>"
            f"<tt:vehicle>{escape(p.vehicle_id)}</tt:vehicle></extensions></trkpt>"
        )
    out.append("</trkseg></trk></gpx>")
    return "\n".join(out)
