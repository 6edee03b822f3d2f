"""The one TensorBoard writer of a run: scalars, sample grids, config text, hparams."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

from gansn.nn.archs import ModelSpec


class RunWriter:
    """Thin wrapper over ``SummaryWriter`` that knows gansn's tags.

    ``purge_step``: when resuming at step k, events at steps >= k from the interrupted run
    are hidden, so curves do not double back.
    """

    def __init__(self, run_dir: str | Path, purge_step: int | None = None) -> None:
        self.w = SummaryWriter(str(run_dir), purge_step=purge_step)

    def scalars(self, values: dict[str, Any], step: int) -> None:
        for tag, v in values.items():
            if isinstance(v, (int, float)) or (torch.is_tensor(v) and v.numel() == 1):
                self.w.add_scalar(tag, float(v), step)

    def image(self, tag: str, img: torch.Tensor, step: int) -> None:
        self.w.add_image(tag, img, step)

    def config(self, cfg: dict[str, Any], spec: ModelSpec) -> None:
        text = json.dumps(cfg, indent=2, default=str)
        # four-space indent renders as a code block in TensorBoard's markdown
        self.w.add_text("config", "    " + text.replace("\n", "\n    "), 0)
        self.w.add_text("model_spec", "    " + json.dumps(spec.to_dict(), indent=2), 0)

    def hparams(self, cfg: dict[str, Any], spec: ModelSpec, final: dict[str, float]) -> None:
        """One HParams-tab entry: the knobs a normalization study varies -> final values."""
        opt = cfg["optim"]
        hp = {
            "arch": spec.arch,
            "g_norm": spec.g_norm["name"],
            "d_norm": spec.d_norm["name"],
            "loss": cfg["loss"]["name"],
            "dataset": cfg["dataset"]["name"],
            "lr_g": float(opt["g"]["lr"]),
            "lr_d": float(opt["d"]["lr"]),
            "beta1": float(opt["d"].get("betas", [0, 0])[0]),
            "beta2": float(opt["d"].get("betas", [0, 0])[1]),
            "n_dis": int(cfg["n_dis"]),
            "seed": int(cfg["seed"]),
            "setting": str(cfg.get("setting")),
        }
        # the metric tags are existing scalar tags, so the tab shows their last values
        metrics = {
            k: float(v)
            for k, v in final.items()
            if k.split("/")[0] in ("loss", "d", "metrics", "modes", "lipschitz")
        }
        exp, ssi, sei = hparams(hp, metrics)
        fw = self.w._get_file_writer()
        for summary in (exp, ssi, sei):
            fw.add_summary(summary)

    def close(self) -> None:
        self.w.close()

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
