"""Fail loudly if installing gansn replaced the pinned torch (e.g. by a CUDA build)."""

import sys
from pathlib import Path

import torch

pins = dict(
    line.split("==")
    for line in (Path(__file__).parent.parent / "constraints.txt").read_text().splitlines()
    if "==" in line and not line.startswith("#")
)
if torch.__version__.split("+")[0] != pins["torch"]:
    sys.exit(f"torch {torch.__version__} is installed, but constraints.txt pins {pins['torch']}")
from gansn._torchvision_compat import import_torchvision  # noqa: E402

tv = import_torchvision()
print(f"torch {torch.__version__}, torchvision {tv.__version__}, python {sys.version.split()[0]}")
