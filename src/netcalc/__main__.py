"""`python -m netcalc` runs the CLI."""

from netcalc.cli import main

main()
