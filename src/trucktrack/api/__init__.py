"""HTTP entry point: routes translate requests into service calls and results into JSON."""
