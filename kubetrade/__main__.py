"""Lets `python -m kubetrade ...` behave exactly like the `kubetrade` script."""

from kubetrade.cli import main

raise SystemExit(main())
