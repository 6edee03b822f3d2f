"""``gansn-eval``: metrics between a reference and samples, printed and written as JSON.

    gansn-eval real=fashion_mnist fake=runs/quickstart metrics=[fid,kid,prdc,class_modes]
    gansn-eval real=real_images/ fake=samples.npz metrics=[fid,kid] features=inception
    gansn-eval real=cifar10_stats.npz fake=runs/x/checkpoints/best.pt metrics=[fid] \
        features=inception inception_weights=~/pt_inception-2015-12-05-6726825d.pth

real: a dataset name (its conf/dataset/<name>.yaml defaults; ``real_split`` picks the
split), an image folder, a ``.npz`` of samples, or a pytorch-fid ``mu``/``sigma`` ``.npz``.
fake: a checkpoint or run dir (samples from its EMA G unless ``ema=false``), an image folder
or a ``.npz`` of samples (``gansn-sample npz=...`` writes one).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from gansn.cli.args import parse, run_cli
from gansn.errors import ConfigError
from gansn.schema import (
    METRIC_KEYS,
    REQUIRED,
    Bool,
    Device,
    Dict,
    Int,
    Key,
    MetricList,
    Node,
    OutFile,
    Str,
)

log = logging.getLogger("gansn.eval")

USAGE = __doc__
# the metric options are training's (gansn.schema.METRIC_KEYS); a standalone evaluation
# defaults to more samples and the test split
OPTIONS = Node(
    {
        "real": Key(Str(), REQUIRED, "dataset name | image folder | .npz samples | .npz mu/sigma"),
        "fake": Key(Str(), REQUIRED, "checkpoint | run dir | image folder | .npz samples"),
        "metrics": Key(MetricList(), ["fid", "kid", "prdc"], "metric names (gansn.metrics)"),
        "features": METRIC_KEYS["features"],
        "num_real": METRIC_KEYS["num_real"].with_default(10000),
        "num_fake": METRIC_KEYS["num_fake"].with_default(10000),
        "real_split": METRIC_KEYS["real_split"].with_default(
            "test", "dataset split for a dataset name: train | test"
        ),
        "batch_size": METRIC_KEYS["batch_size"],
        "device": Key(Device(), "cpu", "cpu | cuda"),
        "seed": Key(Int(0), 0, "seeds the sampling of fake latents and of subsets"),
        "ema": Key(Bool(), True, "sample the EMA generator of a checkpoint when saved"),
        "inception_weights": METRIC_KEYS["inception_weights"],
        "download": METRIC_KEYS["download"],
        "cache_dir": METRIC_KEYS["cache_dir"],
        "dataset": Key(
            Dict(null=True), {}, "extra dataset options for a dataset name, e.g. {img_size: 32}"
        ),
        "out": Key(
            OutFile((".json",), null=True), None, "JSON file for results + protocol (null: print)"
        ),
    }
)
# the dataset={...} keys an image folder takes (as training's dataset=folder)
FOLDER_OPTIONS = ("img_size", "channels", "interpolation")


def resolve_real(spec: str, split: str, extra: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """-> (reference source, classifier options).

    For a dataset name the classifier extractor trains on the train split and measures its
    accuracy on the test split, whichever split is the reference (the same cached classifier
    the trainer uses).
    """
    path = Path(str(spec)).expanduser()
    if path.is_dir():
        return _folder(path, extra, strict=True), {}
    if path.exists():
        return str(path), {}
    from gansn.config import compose, to_plain
    from gansn.data import DATASETS, build_dataset

    if spec not in DATASETS:
        raise ConfigError(
            f"real={spec}: no such file or folder, and not a dataset name "
            f"({', '.join(DATASETS.names())})"
        )
    cfg = {**to_plain(compose([f"dataset={spec}"]))["dataset"], **extra}
    if "split" in cfg and "split" not in extra:
        cfg["split"] = None  # let train= pick the dataset's own train/test split name
    train, test = build_dataset(cfg, train=True), build_dataset(cfg, train=False)
    return (train if split == "train" else test), {"dataset": train, "test_dataset": test}


def _folder(path: Path, extra: dict[str, Any], strict: bool) -> Any:
    """An image folder as a source; ``dataset={img_size: N}`` resizes it as training does.

    strict: refuse ``dataset`` keys a folder does not take (for the real side; the fake
    side shares the real dataset's options and takes only the folder ones).
    """
    from gansn.metrics.sources import FolderSource

    unknown = sorted(set(extra) - set(FOLDER_OPTIONS))
    if strict and unknown:
        raise ConfigError(
            f"dataset.{unknown[0]} does not apply to the image folder {path}; "
            f"an image folder takes {', '.join(FOLDER_OPTIONS)}"
        )
    return FolderSource(path, **{k: v for k, v in extra.items() if k in FOLDER_OPTIONS})


def resolve_fake(spec: str, ema: bool, device: str, extra: dict[str, Any] | None = None) -> Any:
    path = Path(str(spec)).expanduser()
    if path.is_file() and path.suffix == ".npz":
        return str(path)
    if path.is_dir() and not (path / "checkpoints").is_dir():
        return _folder(path, dict(extra or {}), strict=False)  # an image folder
    from gansn.checkpoint import load_generator

    G, _ = load_generator(path, ema=ema)
    return G.to(device)


def main_args(argv: list[str]) -> dict[str, Any]:
    # imported here (and above): a bad command line is refused before torch loads
    from gansn.metrics.core import check_metrics, evaluate
    from gansn.metrics.features import FEATURES
    from gansn.utils import resolve_device

    a = parse(argv, OPTIONS, USAGE)
    metrics = a["metrics"] if isinstance(a["metrics"], list) else [a["metrics"]]
    # names, options and sample counts first: a typo must not wait for a dataset to load
    # or a classifier to train
    check_metrics(
        metrics, {"real": ("num_real", a["num_real"]), "fake": ("num_fake", a["num_fake"])}
    )
    if a["features"] != "auto":
        FEATURES.get(a["features"])
    resolve_device(a["device"])
    extra = dict(a["dataset"] or {})
    real, classifier_options = resolve_real(a["real"], a["real_split"], extra)
    fake = resolve_fake(a["fake"], bool(a["ema"]), a["device"], extra)
    feature_options = {
        "inception": {"weights": a["inception_weights"], "download": bool(a["download"])},
        "classifier": classifier_options,
    }
    results, protocol = evaluate(
        metrics,
        real,
        fake,
        features=a["features"],
        feature_options=feature_options,
        num_real=a["num_real"],
        num_fake=int(a["num_fake"]),
        batch_size=int(a["batch_size"]),
        device=a["device"],
        cache_dir=a["cache_dir"],
        seed=int(a["seed"]),
    )
    width = max(len(k) for k in results) if results else 0
    print(f"{'metric':<{width}}  value")
    for k, v in results.items():
        print(f"{k:<{width}}  {v:.6g}")
    print(
        f"(N real {protocol.get('num_real')}, N fake {protocol.get('num_fake')}, features "
        f"{protocol.get('features')})"
    )
    record = {
        "results": results,
        "protocol": protocol,
        "real": str(a["real"]),
        "fake": str(a["fake"]),
    }
    if a["out"]:
        Path(a["out"]).parent.mkdir(parents=True, exist_ok=True)
        Path(a["out"]).write_text(json.dumps(record, indent=2, default=str) + "\n")
        log.info("wrote %s", a["out"])
    return record


def main() -> None:
    run_cli(main_args)


if __name__ == "__main__":
    main()
