"""`python -m tsm` runs the CLI."""

from tsm.cli import main

main()
