"""Pure tracking logic: records and rules, no I/O (stdlib, msgspec, numpy and shapely only)."""
