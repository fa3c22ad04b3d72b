"""Imports point inward: the domain stays pure and the services never touch a technology."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "trucktrack"
DOMAIN_ALLOWED = {"__future__", "msgspec", "numpy", "shapely", "trucktrack"}
STDLIB_IO = {"sqlite3", "socket", "subprocess", "urllib", "http", "asyncio", "os", "shutil"}
SERVICE_FORBIDDEN = {"sqlite3", "litestar", "pyarrow", "aiohttp", "uvicorn"}


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("path", sorted((SRC / "domain").glob("*.py")), ids=lambda p: p.name)
def test_domain_imports_no_io_and_no_outer_layer(path: Path) -> None:
    import sys

    for name in imports(path):
        top = name.split(".")[0]
        if top == "trucktrack":
            assert name.startswith("trucktrack.domain"), name
        else:
            assert top in sys.stdlib_module_names or top in DOMAIN_ALLOWED, name
            assert top not in STDLIB_IO, name


@pytest.mark.parametrize("path", sorted((SRC / "services").glob("*.py")), ids=lambda p: p.name)
def test_services_use_ports_not_adapters(path: Path) -> None:
    for name in imports(path):
        assert name.split(".")[0] not in SERVICE_FORBIDDEN, name
        assert not name.startswith(("trucktrack.adapters", "trucktrack.api")), name
