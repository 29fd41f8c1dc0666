"""`python -m puhui` is the `puhui` command."""

from puhui.entrypoints.cli import main

main()
