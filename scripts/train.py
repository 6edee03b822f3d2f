"""Checkout wrapper for ``gansn-train`` (see ``gansn/cli/train.py``)."""

from gansn.cli.train import main

if __name__ == "__main__":
    main()
