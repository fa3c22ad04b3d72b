"""The OpenAPI document at /openapi.json and a Swagger UI page at /docs.

Litestar documents every route from its types; the ingest route reads its body itself (to reject
bad points one by one), so its request body schema is added here from the msgspec Struct.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Litestar

from trucktrack.api.schemas import GpsBatchIn

_REF = "#/components/schemas/{name}"


def patched_openapi(app: Litestar) -> dict[str, Any]:
    doc: dict[str, Any] = app.openapi_schema.to_schema()
    (batch_schema,), components = msgspec.json.schema_components([GpsBatchIn], ref_template=_REF)
    doc.setdefault("components", {}).setdefault("schemas", {}).update(components)
    operation = doc["paths"]["/tracking/gps"]["post"]
    operation["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": batch_schema}},
        "description": "May be sent with `Content-Encoding: gzip`.",
    }
    for path in ("/healthz",):
        for op in doc["paths"].get(path, {}).values():
            op["security"] = []
    return doc


DOCS_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>trucktrack API</title>
<link rel="stylesheet" href="https://unpkg.com/swagger-ui-dist@5/swagger-ui.css"></head>
<body><div id="ui"></div>
<script src="https://unpkg.com/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/openapi.json", dom_id: "#ui"});</script>
<noscript>The OpenAPI document is at <a href="/openapi.json">/openapi.json</a>.</noscript>
</body></html>
"""
