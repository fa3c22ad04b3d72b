"""The group-commit writer alone, without HTTP, with the event loop idle or kept busy.

Run: .venv/bin/python benchmarks/group_commit.py [--seconds 10]

32 asyncio tasks append batches of 100 points (10,000 vehicles, one trip each) through
`GroupCommitWriter` into a fresh database (WAL, synchronous=FULL), for each event-loop load side
by side: idle, then busy 50% and 80% of the time with pure-Python work, as request handling is.
It shows how much the writer thread loses to sharing the GIL with a busy event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from trucktrack.adapters.sqlite.schema import create_schema
from trucktrack.adapters.sqlite.writer import GroupCommitWriter
from trucktrack.domain.model import GpsPoint


async def _run(folder: Path, seconds: float, busy_share: float) -> tuple[float, float]:
    path = folder / f"busy-{busy_share}.db"
    create_schema(path)
    writer = GroupCommitWriter(path)
    writer.start()
    base = time.time_ns() // 1_000_000
    appended = 0
    batch_no = 0
    end = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal appended, batch_no
        while time.perf_counter() < end:
            batch_no += 1
            k = batch_no
            points = [
                GpsPoint("bench", f"V{(k * 100 + i) % 10_000}", base + k, 20.0, 77.0, 50.0, 90.0,
                         10.0, None, f"T{(k * 100 + i) % 10_000}", None, None, base)
                for i in range(100)
            ]  # fmt: skip
            outcome = await writer.append("bench", points)
            appended += outcome.inserted

    async def busy_loop() -> None:
        while busy_share and time.perf_counter() < end:
            spin_until = time.perf_counter() + 0.001 * busy_share
            while time.perf_counter() < spin_until:
                pass
            await asyncio.sleep(0.001 * (1 - busy_share))

    started = time.perf_counter()
    await asyncio.gather(busy_loop(), *(client() for _ in range(32)))
    elapsed = time.perf_counter() - started
    commits = writer.commits
    writer.close()
    return appended / elapsed, appended / max(commits, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    seconds = parser.parse_args().seconds
    print(f"{'event loop':14s} {'points/s':>10s} {'points/commit':>14s}")
    with tempfile.TemporaryDirectory() as folder:
        for share in (0.0, 0.5, 0.8):
            rate, per_commit = asyncio.run(_run(Path(folder), seconds, share))
            label = "idle" if share == 0 else f"{share:.0%} busy"
            print(f"{label:14s} {rate:10.0f} {per_commit:14.0f}")


if __name__ == "__main__":
    main()
