"""Measurement hooks the training loop runs every ``every`` G steps and once at the end.

A hook is built from explicit inputs (D, the data shape, a fixed real batch, seeds, the
device) by :func:`build_hooks`, outside the trainer, and handed to it.  The trainer calls
``hook(host, step)`` inside its isolation context (global RNG forked, G/D buffers and modes
restored afterwards), so measuring never changes the weights a run produces.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

import torch
from torch import nn

from gansn.checkpoint import BEST
from gansn.data import build_dataset
from gansn.lipschitz import LipschitzTracker
from gansn.sampling import reestimate_batch_norm

log = logging.getLogger(__name__)


class HookHost(Protocol):
    """What a hook may read from the loop that calls it, and ask of it."""

    G: nn.Module
    device: torch.device

    @property
    def sampler(self) -> nn.Module:
        """The generator to evaluate: the EMA copy when the run keeps one, else G."""
        ...

    def save(self, name: str) -> Path:
        """Save the run's checkpoint as ``checkpoints/<name>``."""
        ...


class Hook:
    """Something the trainer runs every ``every`` G steps (and once at the end).

    ``__call__(host, step)`` returns TensorBoard-tag -> float values, which the trainer logs
    and appends to ``metrics.jsonl``; ``after(host, step, values)`` then runs outside the
    isolation (where a hook may save a checkpoint); ``state_dict``/``load_state_dict``
    carry whatever must survive a resume (saved in the checkpoint under the hook's
    ``name``).  ``summary`` and ``objective`` are what the command line asks of a hook at
    the end of a run.
    """

    every: int = 0
    name: str = "hook"
    # under torchrun: True runs the hook on every rank (it uses collectives, as evaluation
    # does); False runs it on rank 0 only while the other ranks train on
    collective: bool = False
    # the tag a hook keeps ``best.pt`` by (None: it keeps none), and {"tag", "value",
    # "step"} of the best value so far: the checkpoint's ``best`` entry
    best_tag: str | None = None
    best: Mapping[str, Any] = MappingProxyType({})

    def __call__(self, host: HookHost, step: int) -> dict[str, Any]:
        raise NotImplementedError

    def after(self, host: HookHost, step: int, values: dict[str, Any]) -> None:
        """Act on this call's ``values`` once training state is restored (save a checkpoint)."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def summary(self, values: dict[str, float]) -> list[str]:
        """Lines of the run's terminal summary about what this hook measured (``values``:
        the last value of every tag), e.g. ``"  metrics      FID 12.3"``."""
        return []

    def objective(self, values: dict[str, float]) -> float | None:
        """The number a Hydra sweeper optimises, when this hook measures it."""
        return None


def fixed_real_batch(dataset: Any, n: int, seed: int) -> torch.Tensor:
    """``n`` real samples chosen by ``seed`` alone: (n, *shape), the same at every call."""
    idx = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:n]
    if hasattr(dataset, "get_batch"):
        return dataset.get_batch(idx)[0]
    return torch.stack([dataset[int(i)][0] for i in idx])


class LipschitzHook(Hook):
    """Per-layer sigmas and whole-D Lipschitz bounds (``lipschitz/...``, ``sigma/d/...``).

    The lower bounds use a fixed real batch and G's samples of fixed latents, so curves
    across steps compare like with like.
    """

    name = "lipschitz"

    def __init__(
        self,
        D: nn.Module,
        shape: tuple[int, ...],
        *,
        real: torch.Tensor,
        z: torch.Tensor,
        every: int,
        seed: int,
        **options: Any,
    ) -> None:
        self.every = every
        # options: the tracker's keyword arguments, the config's lipschitz group less
        # n_samples (a run's defaults, gansn.schema.LIPSCHITZ: strict=false marks the bound
        # invalid with a warning on a module it does not know, rather than stopping)
        self.tracker = LipschitzTracker(D, shape, seed=seed, **options)
        self.real, self.z = real, z

    def summary(self, values: dict[str, float]) -> list[str]:
        if "lipschitz/upper_operator" not in values or "lipschitz/lower" not in values:
            return []
        return [
            f"  Lipschitz    D: measured {values['lipschitz/lower']:.3g} <= Lip(D) <= "
            f"{values['lipschitz/upper_operator']:.3g} (product of operator norms)"
        ]

    def __call__(self, host: HookHost, step: int) -> dict[str, float]:
        G = host.G
        G.eval()
        with torch.no_grad():
            fake = G(self.z.to(host.device)).float()
        # D stays in train mode: the bound then takes feature norms at their worst case,
        # which is what a training-mode D can do (see LipschitzTracker's bound_mode)
        return self.tracker.measure(real=self.real.to(host.device), fake=fake)

    def state_dict(self) -> dict[str, Any]:
        return self.tracker.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.tracker.load_state_dict(state)


class EvalHook(Hook):
    """Evaluation metrics (``metrics/...``, ``modes/...``) of the sampling generator, and
    ``best.pt``, the checkpoint of the best ``best_tag`` so far (None: no ``best.pt``).

    Samples come from the EMA generator when the run keeps one.  Real features (and a
    trained classifier) are computed on the first call and reused.
    """

    name = "eval"
    collective = True  # every rank generates and extracts its share of the fake samples

    def __init__(
        self,
        evaluator: Any,
        every: int,
        bn_updates: int = 0,
        bn_batch: int = 100,
        seed: int = 0,
        best_tag: str | None = None,
    ) -> None:
        self.evaluator, self.every = evaluator, every
        self.bn_updates, self.bn_batch, self.seed = bn_updates, bn_batch, seed
        self.best_tag = best_tag
        self.best: dict[str, Any] = {}

    def after(self, host: HookHost, step: int, values: dict[str, Any]) -> None:
        tag = self.best_tag
        if not tag or tag not in values:
            return
        from gansn.metrics.core import metric_mode  # loaded already: the evaluator's package

        higher = metric_mode(tag) == "max"
        v = float(values[tag])
        old = self.best.get("value")
        if math.isfinite(v) and (old is None or (v > old if higher else v < old)):
            self.best = {"tag": tag, "value": v, "step": step}
            host.save(BEST)
            log.info("new best %s = %.4f at step %d", tag, v, step)

    def summary(self, values: dict[str, float]) -> list[str]:
        from gansn.metrics.core import metric_tags

        shown = [
            f"{info.label} {values[tag]:.4g}"
            for tag, info in metric_tags().items()
            if info.table and tag in values
        ]
        if not shown:
            return []
        features = getattr(self.evaluator, "features", None)
        return [f"  metrics      ({features} features) " + ", ".join(shown)]

    def objective(self, values: dict[str, float]) -> float | None:
        tag = self.best_tag or "metrics/fid"
        return values.get(tag)

    def __call__(self, host: HookHost, step: int) -> dict[str, Any]:
        G = host.sampler
        if self.bn_updates:
            # PacGAN re-estimates G's population statistics before each evaluation; on a
            # copy, so the run's own state (and its exact resume) is untouched
            G = copy.deepcopy(G)
            reestimate_batch_norm(G, self.bn_updates, self.bn_batch, seed=self.seed + step)
        G.eval()
        results, protocol = self.evaluator(G)
        if self.bn_updates:
            protocol = {**protocol, "bn_updates": self.bn_updates, "bn_batch": self.bn_batch}
        log.info("step %d: %s", step, ", ".join(f"{k}={v:.4g}" for k, v in results.items()))
        return {**results, "protocol": protocol}


def build_hooks(
    cfg: dict[str, Any],
    *,
    D: nn.Module,
    dataset: Any,
    shape: tuple[int, ...],
    z_dim: int,
    device: torch.device,
) -> list[Hook]:
    """The hooks a run's config asks for (``lipschitz_every``, ``metrics``), in call order.

    cfg: the plain-dict training config, complete (:func:`gansn.schema.complete`);
    D: the discriminator the Lipschitz hook measures; dataset: the training set (fixed
    real batches, and the evaluator's real samples).
    """
    hooks: list[Hook] = []
    seed = int(cfg["seed"])
    every = int(cfg["lipschitz_every"])
    if every > 0:
        options = dict(cfg["lipschitz"])
        real = fixed_real_batch(dataset, int(options.pop("n_samples")), seed + 1)
        z = torch.randn(len(real), z_dim, generator=torch.Generator().manual_seed(seed + 2))
        hooks.append(LipschitzHook(D, shape, real=real, z=z, every=every, seed=seed, **options))
    metrics_cfg = cfg["metrics"]
    if int(metrics_cfg["eval_every"]) > 0 and metrics_cfg["list"]:
        # imported here: the metrics package (scipy, the extractors) costs start-up time
        # that runs without evaluation never pay
        from gansn.metrics.core import from_config

        held_out = build_dataset(cfg["dataset"], train=False)
        real = dataset if metrics_cfg["real_split"] == "train" else held_out
        evaluator = from_config(
            metrics_cfg, real, test_dataset=held_out, device=device, seed=seed, progress=False
        )
        hooks.append(
            EvalHook(
                evaluator,
                int(metrics_cfg["eval_every"]),
                bn_updates=int(metrics_cfg["bn_updates"]),
                bn_batch=int(cfg["batch_size"]),
                seed=seed,
                best_tag=metrics_cfg["best"],
            )
        )
    return hooks
