"""The object store on the embedded default: a folder, one sub-folder per fleet.

Keys are the spec's S3 keys (`routes/planned/{trip_id}...`) under the fleet's folder, so one
fleet's objects never share a path with another's. A key is checked segment by segment before it
touches the disk (no `..`, no absolute paths, only safe characters), and writes are atomic: a
temporary file, fsync, rename, fsync of the folder.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

SEGMENT = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


class BadKey(ValueError):
    pass


class LocalObjectStore:
    def __init__(self, root: Path) -> None:
        self._root = root

    def path(self, fleet_id: str, key: str) -> Path:
        parts = [fleet_id, *key.split("/")]
        for part in parts:
            if not SEGMENT.fullmatch(part) or part in {".", ".."}:
                raise BadKey(f"unsafe object key segment {part!r}")
        return self._root.joinpath(*parts)

    def put(self, fleet_id: str, key: str, data: bytes) -> None:
        target = self.path(fleet_id, key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def get(self, fleet_id: str, key: str) -> bytes | None:
        try:
            return self.path(fleet_id, key).read_bytes()
        except FileNotFoundError:
            return None

    def delete(self, fleet_id: str, key: str) -> bool:
        try:
            self.path(fleet_id, key).unlink()
        except FileNotFoundError:
            return False
        return True
