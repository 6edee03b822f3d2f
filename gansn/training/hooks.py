"""The trainer's measurement hooks: Lipschitz tracking and evaluation metrics.

Both run every ``every`` G steps and once at the end, inside ``Trainer._isolated`` (global
RNG forked, G/D buffers and modes restored), so enabling them never changes the weights a
run produces.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import torch

from gansn.training.trainer import Hook

if TYPE_CHECKING:
    from gansn.training.trainer import Trainer

log = logging.getLogger(__name__)


def fixed_real_batch(trainer: Trainer, n: int, seed: int) -> torch.Tensor:
    """``n`` real samples chosen by ``seed`` alone: (n, *shape), the same at every call."""
    data = trainer.dataset
    idx = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n]
    if hasattr(data, "get_batch"):
        return data.get_batch(idx)[0]
    return torch.stack([data[int(i)][0] for i in idx])


class LipschitzHook(Hook):
    """Per-layer sigmas and whole-D Lipschitz bounds (``lipschitz/...``, ``sigma/d/...``).

    The lower bounds use a fixed real batch and G's samples of fixed latents, so curves
    across steps compare like with like.
    """

    name = "lipschitz"

    def __init__(
        self, trainer: Trainer, every: int, n_samples: int = 64, n_iter: int = 3, **options: Any
    ) -> None:
        from gansn.lipschitz import LipschitzTracker

        self.every = every
        seed = int(trainer.cfg["seed"])
        # strict=False: a module the bound does not know (a user plugin) marks the bound
        # invalid (lipschitz/bound_valid = 0) with a warning instead of stopping training
        options.setdefault("strict", False)
        self.tracker = LipschitzTracker(
            trainer.D, trainer.spec.shape, n_iter=n_iter, seed=seed, **options
        )
        self.real = fixed_real_batch(trainer, n_samples, seed + 1)
        self.z = torch.randn(
            len(self.real), trainer.spec.z_dim, generator=torch.Generator().manual_seed(seed + 2)
        )

    def __call__(self, trainer: Trainer, step: int) -> dict[str, float]:
        G = trainer.G
        G.eval()
        with torch.no_grad():
            fake = G(self.z.to(trainer.device)).float()
        # D stays in train mode: the bound then takes feature norms at their worst case,
        # which is what a training-mode D can do (see LipschitzTracker's bound_mode)
        return self.tracker.measure(real=self.real.to(trainer.device), fake=fake)

    def state_dict(self) -> dict[str, Any]:
        return self.tracker.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.tracker.load_state_dict(state)


class EvalHook(Hook):
    """Evaluation metrics (``metrics/...``, ``modes/...``) of the sampling generator.

    Samples come from the EMA generator when the run keeps one.  Real features (and a
    trained classifier) are computed on the first call and reused.
    """

    name = "eval"

    def __init__(self, trainer: Trainer, cfg: dict[str, Any]) -> None:
        from gansn.data import build_dataset
        from gansn.metrics.core import from_config

        self.every = int(cfg["eval_every"])
        held_out = build_dataset(trainer.cfg["dataset"], train=False)
        real = trainer.dataset if cfg.get("real_split", "train") == "train" else held_out
        self.evaluator = from_config(
            cfg,
            real,
            test_dataset=held_out,
            device=trainer.device,
            seed=int(trainer.cfg["seed"]),
            progress=False,
        )

    def __call__(self, trainer: Trainer, step: int) -> dict[str, Any]:
        G = trainer.sampler
        G.eval()
        results, protocol = self.evaluator(G)
        log.info("step %d: %s", step, ", ".join(f"{k}={v:.4g}" for k, v in results.items()))
        return {**results, "protocol": protocol}
