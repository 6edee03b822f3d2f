"""One rank of a test's torchrun-like job: ``python ddp_worker.py RUN_DIR OVERRIDES_JSON``.

The test sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``MASTER_ADDR``/``MASTER_PORT`` as torchrun
would; without them this is one ordinary process.  Trains through the Python API
(:func:`gansn.training.train`), the same path ``gansn-train`` takes after Hydra.
"""

from __future__ import annotations

import json
import sys

from gansn import distributed
from gansn.config import compose, to_plain
from gansn.training import train


def main() -> None:
    run_dir, overrides = sys.argv[1], json.loads(sys.argv[2])
    try:
        train(to_plain(compose(overrides)), run_dir, overrides=overrides)
    finally:
        distributed.teardown()


if __name__ == "__main__":
    main()
