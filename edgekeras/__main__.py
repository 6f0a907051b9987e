"""`python -m edgekeras ARGS`: the command line, as the `edgekeras` script runs it (the
launcher starts its workers this way, with the Python it runs under)."""

from edgekeras.cli import main

if __name__ == "__main__":
    main()
