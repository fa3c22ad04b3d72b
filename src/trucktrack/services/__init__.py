"""Use cases: what callers can do, written against the ports, unaware of HTTP or SQLite."""
