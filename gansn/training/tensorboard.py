"""The one TensorBoard writer of a run: scalars, sample grids, config text, hparams."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

from gansn.nn.archs import ModelSpec

# flags that are constant over a run: text (written when they change), not curves
TEXT_TAGS = ("lipschitz/bound_valid", "lipschitz/bound_train_mode")


class RunWriter:
    """Thin wrapper over ``SummaryWriter`` that knows gansn's tags.

    ``purge_step``: when resuming at step k, events at steps >= k from the interrupted run
    are hidden, so curves do not double back.
    """

    def __init__(self, run_dir: str | Path, purge_step: int | None = None) -> None:
        self.w = SummaryWriter(str(run_dir), purge_step=purge_step)
        self._text: dict[str, float] = {}

    def scalars(self, values: dict[str, Any], step: int) -> None:
        for tag, v in values.items():
            if not (isinstance(v, (int, float)) or (torch.is_tensor(v) and v.numel() == 1)):
                continue
            if tag in TEXT_TAGS:
                if self._text.get(tag) != float(v):
                    self._text[tag] = float(v)
                    self.w.add_text(tag, f"{tag} = {float(v):g} (from step {step})", step)
                continue
            self.w.add_scalar(tag, float(v), step)

    def layout(self, d_layers: list[str]) -> None:
        """The Custom Scalars tab: D's Lipschitz bracket in one chart, then one chart per
        D layer of sigma_matrix (what SN divides by) against sigma_operator (the map the
        layer applies), and losses / D outputs side by side."""
        esc = re.escape
        self.w.add_custom_scalars(
            {
                "Lipschitz bracket of D": {
                    "upper bounds vs measured lower bounds": [
                        "Multiline",
                        [
                            "lipschitz/upper_operator",
                            "lipschitz/upper_matrix",
                            "lipschitz/lower",
                            r"lipschitz/grad_(real|fake|interp)_max",
                            "lipschitz/fd_ratio",
                        ],
                    ]
                },
                "D layers: sigma_matrix vs sigma_operator": {
                    name: [
                        "Multiline",
                        [f"sigma/d/{esc(name)}/matrix", f"sigma/d/{esc(name)}/operator"],
                    ]
                    for name in d_layers
                },
                "Training": {
                    "losses": ["Multiline", ["loss/d", "loss/g"]],
                    "D outputs": ["Multiline", ["d/real", "d/fake"]],
                },
            }
        )

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
            and k not in TEXT_TAGS  # flags: text, not a metric column
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


class Silent:
    """A :class:`RunWriter` that writes nothing: what ranks other than 0 log to."""

    def __enter__(self) -> Silent:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None
