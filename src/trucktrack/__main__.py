"""`python -m trucktrack` is the `trucktrack` command."""

from trucktrack.cli import main

raise SystemExit(main())
