"""`python -m puhui.entrypoints.cli` is the `puhui` command."""

from puhui.entrypoints.cli import main

if __name__ == "__main__":
    main()
