"""The embedded default storage: one SQLite file in WAL mode with a single group-commit writer."""
