"""`python -m sicsrec ...` runs the command-line interface."""

from sicsrec.cli import main

raise SystemExit(main())
