"""``python -m gansn.train ...`` is ``gansn-train ...``."""

from gansn.cli.train import main

if __name__ == "__main__":
    main()
