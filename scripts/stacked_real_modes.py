"""The ceiling of the stacked mode count: real Stacked Fashion-MNIST through the same classifier.

    python scripts/stacked_real_modes.py [--n 26000] [--split test]

Draws ``n`` stacked triplets of real Fashion-MNIST images (the held-out split by default, the
preset's 32x32 layout), labels every channel with gansn's cached classifier (trained on first
use) and prints the modes covered (of 1,000) and KL(mode histogram || uniform), i.e. what a
perfect generator would score under the stacked_fmnist protocol, classifier errors included.
"""

from __future__ import annotations

import json

import numpy as np
import torch


def main() -> int:
    from gansn.cli.args import ArgumentParser, typed
    from gansn.config import compose, to_plain
    from gansn.data import build_dataset
    from gansn.metrics.features import ClassifierFeatures
    from gansn.metrics.modes import stacked_modes
    from gansn.schema import Int

    p = ArgumentParser(prog="stacked_real_modes", description=__doc__.splitlines()[0])
    p.add_argument("--n", type=typed(Int(1)), default=26_000, help="stacked samples (26,000)")
    p.add_argument("--split", default="test", choices=("train", "test"))
    p.add_argument("--seed", type=typed(Int(0)), default=0, help="seed of the triplet draw")
    a = p.parse_args()
    cfg = to_plain(compose(["experiment=stacked_fmnist"]))
    ds_cfg = {**cfg["dataset"], "split": a.split, "n": a.n, "seed": a.seed}
    ds = build_dataset(ds_cfg, train=a.split == "train")
    # the classifier trains on (and is scored on) the base images under the stacked sets:
    # the drawn set already holds its split's
    other = "train" if a.split == "test" else "test"
    rest = build_dataset({**cfg["dataset"], "split": other}, train=other == "train")
    train, test = (rest, ds) if a.split == "test" else (ds, rest)
    ext = ClassifierFeatures(train, test, cache_dir=cfg["metrics"]["cache_dir"])
    labels = []
    with torch.no_grad():
        for i in range(0, len(ds), 500):
            x, _ = ds.get_batch(torch.arange(i, min(i + 500, len(ds))))
            labels.append(ext(x)["labels"].numpy())
    out = stacked_modes(np.concatenate(labels), ext.num_classes)
    out.update(n=len(ds), split=a.split, classifier_test_accuracy=ext.info.get("test_accuracy"))
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    from gansn.cli.args import run_script

    run_script(main, "stacked_real_modes")
