"""Checkout wrapper for multi-seed stacked training (see ``gansn/cli/train_seeds.py``)."""

from gansn.cli.train_seeds import main

if __name__ == "__main__":
    main()
