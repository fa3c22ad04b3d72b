"""Adapters: the ports implemented on real technology (SQLite, Parquet files, later AWS)."""
