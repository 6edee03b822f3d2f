"""Checkout wrapper for ``gansn-sample`` (see ``gansn/cli/sample.py``)."""

from gansn.cli.sample import main

if __name__ == "__main__":
    main()
