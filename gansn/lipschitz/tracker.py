"""The tracker: per-layer norms and whole-D Lipschitz bounds, measured during training.

What each number means and why ``upper_operator`` is a bound: docs/lipschitz.md.  The trainer
calls :class:`LipschitzTracker` every ``lipschitz_every`` steps; notebooks and the CLI use
:func:`~gansn.lipschitz.summary.lipschitz_report` and
:func:`~gansn.lipschitz.summary.format_table`.  The empirical lower bounds are in
:mod:`~gansn.lipschitz.lower`.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from gansn.lipschitz.lower import lower_bounds
from gansn.lipschitz.operators import (
    WEIGHTED,
    batchnorm_batch_gain,
    effective_weight,
    eval_mode,
    jacobian_norm,
    linear_map,
    norm_function,
    norm_gains,
    power_iteration,
    weight_matrix,
)
from gansn.lipschitz.rules import (
    SHAPE_DEPENDENT_LEAVES,
    LipschitzError,
    container_rule,
    fixed_rule,
    layer_names,
    norm_rule,
    readable_name,
)
from gansn.lipschitz.sn import spectral_norm_view

BoundMode = Literal["auto", "train", "eval"]


def _wrapper_names(layer: nn.Module) -> list[str]:
    """Names of the weight's parametrizations, e.g. ``["SpectralNorm"]``, for the table."""
    if not parametrize.is_parametrized(layer, "weight"):
        return []
    return [type(p).__name__.strip("_") for p in layer.parametrizations.weight]


@dataclass
class _Leaf:
    path: str
    name: str
    module: nn.Module
    kind: _Kind
    in_shape: tuple[int, ...] | None = None
    row: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Pass:
    """What one :meth:`LipschitzTracker.measure` call hands every leaf's handler."""

    mode: str  # the resolved bound mode, "train" or "eval"
    norm_inputs: dict[int, Tensor]  # id(norm layer) -> its input on the batch
    device: torch.device


class LipschitzTracker:
    """Tracks per-layer norms and whole-D Lipschitz bounds of a model during training.

    Args:
        D: any module mapping ``(N, *input_shape)`` to ``(N,)`` or ``(N, ...)`` (G works too).
        input_shape: one sample's shape, e.g. ``(3, 32, 32)`` or ``(2,)``.
        n_iter: power-iteration steps per layer per call (vectors persist between calls).
        n_iter_init: steps the first time a weight's vector is used (it starts random, or
            from a spectral-norm layer's own ``_v``); later calls refine it by ``n_iter``.
        bound_mode: ``"train"``: normalization layers enter the bound with their worst case
            ``max|gamma|/sqrt(eps)``; ``"eval"``: eval-mode batch norm with its exact gain;
            ``"auto"`` (default): ``"train"`` if D is in train mode when measured, else
            ``"eval"``.
        prefix: ``"d"`` -> tags ``sigma/d/<layer>/...``.
        strict: an unknown module type raises :class:`LipschitzError` at construction;
            with ``strict=False`` it warns, and the bounds are NaN (``lipschitz/bound_valid``
            is 0).
        fd_step: finite-difference step, as an RMS change per input element.
        gain_samples: samples used for the per-sample normalizations' ``gain_batch``
            (batch norm's is exact and closed-form on the whole batch).
        seed: seeds the tracker's own RNG (start vectors, interpolation weights, projections);
            the global RNG is never consumed, so measuring does not change training.
    """

    def __init__(
        self,
        D: nn.Module,
        input_shape: tuple[int, ...],
        *,
        n_iter: int = 5,
        n_iter_init: int = 50,
        bound_mode: BoundMode = "auto",
        prefix: str = "d",
        strict: bool = True,
        fd_step: float = 1e-3,
        gain_samples: int = 8,
        seed: int = 0,
    ) -> None:
        if bound_mode not in ("auto", "train", "eval"):
            raise ValueError(f"bound_mode must be 'auto', 'train' or 'eval', got {bound_mode!r}")
        self.D = D
        self.input_shape = tuple(int(s) for s in input_shape)
        self.n_iter, self.n_iter_init = int(n_iter), int(max(n_iter, n_iter_init))
        self.bound_mode, self.prefix, self.strict = bound_mode, prefix, strict
        self.fd_step, self.gain_samples = float(fd_step), int(gain_samples)
        self._gen = torch.Generator().manual_seed(seed)
        self._vectors: dict[str, Tensor] = {}
        self._unknown: list[str] = []
        self._leaves: dict[int, _Leaf] = {}
        self._shapes_ready = False
        names = layer_names(D)
        for path, m in D.named_modules():
            if id(m) in self._leaves or container_rule(m) is not None:
                continue
            if "parametrizations" in path.split("."):
                continue  # the parametrization modules inside a wrapped layer
            self._leaves[id(m)] = _Leaf(path, names.get(path, readable_name(path)), m, _kind_of(m))
        self._check_structure(D)
        self._last: dict[str, float] = {}

    # -- structure ----------------------------------------------------------------------

    def _check_structure(self, module: nn.Module) -> None:
        """Fail at start-up, not hours into training, on a module the bound cannot handle."""
        rule = container_rule(module)
        if rule is not None:
            rule(module, lambda child: (self._check_structure(child), 1.0)[1])
            return
        leaf = self._leaves.get(id(module))
        if leaf is None or leaf.kind is _UNKNOWN:
            path = leaf.path if leaf else type(module).__name__
            msg = (
                f"no Lipschitz constant known for module {path!r} of type "
                f"{type(module).__name__}; register one with "
                "gansn.lipschitz.register_leaf / register_container, or declare it in "
                "its norm's `lipschitz` rules (gansn.nn.norms.LipschitzRule)"
            )
            if self.strict:
                raise LipschitzError(msg)
            warnings.warn(msg + "; the Lipschitz bounds are marked invalid", stacklevel=3)
            self._unknown.append(path)

    def _device(self) -> torch.device:
        for t in self.D.parameters():
            return t.device
        return torch.device("cpu")

    def _record_shapes(self) -> None:
        """A forward on a dummy (1, *input_shape) input records each leaf's input shape."""
        seen: dict[int, set[tuple[int, ...]]] = {}

        def hook(m: nn.Module, args: tuple) -> None:
            seen.setdefault(id(m), set()).add(tuple(args[0].shape))

        handles = [leaf.module.register_forward_pre_hook(hook) for leaf in self._leaves.values()]
        try:
            with torch.no_grad():
                x = torch.zeros(2, *self.input_shape, device=self._device())
                # two samples: group norm on (N, C) vectors refuses a single value per group
                self.D(x)
        finally:
            for h in handles:
                h.remove()
        for key, leaf in self._leaves.items():
            shapes = seen.get(key, set())
            shape_dependent = leaf.kind.shape_dependent or isinstance(
                leaf.module, SHAPE_DEPENDENT_LEAVES
            )
            if len(shapes) > 1 and shape_dependent:
                # one operator norm per module: a module reused on several shapes would need one
                # per call site, which the module tree cannot tell apart
                raise LipschitzError(
                    f"module {leaf.path!r} is called on several input shapes "
                    f"{sorted(shapes)}; use one module per call site"
                )
            leaf.in_shape = next(iter(shapes)) if shapes else None
        self._shapes_ready = True

    # -- persistent vectors ---------------------------------------------------------------

    def _vector(
        self, key: str, shape: tuple[int, ...], device: torch.device, init: Tensor | None = None
    ) -> tuple[Tensor, int]:
        """The stored vector for ``key`` and how many steps to run (more when it is new)."""
        v = self._vectors.get(key)
        if v is not None and tuple(v.shape) == tuple(shape):
            return v.to(device), self.n_iter
        if init is not None and tuple(init.shape) == tuple(shape):
            v = init.detach().float().clone()
        else:
            v = torch.randn(shape, generator=self._gen)
        return v.to(device), self.n_iter_init

    # -- measurement ----------------------------------------------------------------------

    def _resolved_mode(self) -> str:
        if self.bound_mode != "auto":
            return self.bound_mode
        return "train" if self.D.training else "eval"

    def measure(self, real: Tensor | None = None, fake: Tensor | None = None) -> dict[str, float]:
        """Measure everything; returns TensorBoard tags -> floats.

        Args:
            real: ``(N, *input_shape)`` data samples (optional), a small fixed batch.
            fake: ``(N, *input_shape)`` generated samples (optional, detached).

        Tags: ``lipschitz/upper_operator``, ``lipschitz/upper_matrix``,
        ``lipschitz/grad_{real,fake,interp}_{mean,max}`` (when the inputs are given; interp
        needs both), ``lipschitz/fd_ratio``, ``lipschitz/lower`` (max of the lower bounds),
        ``lipschitz/bound_train_mode`` (1: norms at worst case), ``lipschitz/bound_valid``;
        per layer ``sigma/<prefix>/<layer>/{matrix,operator}`` (+ ``raw_sigma`` for SN layers)
        and for normalization layers ``sigma/<prefix>/<layer>/{gain_worst,gain_eval,
        gain_batch}`` (eval only with running stats, batch only when a batch is given).
        Runs in fp32 with autocast off, D in eval mode; D, its buffers and the global RNG are
        left exactly as they were.
        """
        mode = self._resolved_mode()
        device = self._device()
        with contextlib.ExitStack() as stack:
            stack.enter_context(eval_mode(self.D))
            stack.enter_context(torch.autocast(device_type=device.type, enabled=False))
            if not self._shapes_ready:
                self._record_shapes()
            batch = real if real is not None else fake
            norm_inputs = self._norm_inputs(batch.to(device)) if batch is not None else {}
            now = _Pass(mode, norm_inputs, device)
            for leaf in self._leaves.values():
                leaf.row = self._measure_leaf(leaf, now)
            out: dict[str, float] = {}
            if self._unknown:
                upper_m = upper_o = float("nan")
            else:
                upper_m = self._bound(self.D, "lip_matrix")
                upper_o = self._bound(self.D, "lip_operator")
            out["lipschitz/upper_matrix"] = upper_m
            out["lipschitz/upper_operator"] = upper_o
            out["lipschitz/bound_train_mode"] = float(mode == "train")
            out["lipschitz/bound_valid"] = float(not self._unknown)
            out.update(lower_bounds(self._forward, real, fake, device, self._gen, self.fd_step))
            for leaf in self._leaves.values():
                for key in (
                    "matrix",
                    "operator",
                    "raw_sigma",
                    "gain_worst",
                    "gain_eval",
                    "gain_batch",
                ):
                    col = {"matrix": "sigma_matrix", "operator": "sigma_operator"}.get(key, key)
                    if leaf.row.get(col) is not None:
                        out[f"sigma/{self.prefix}/{leaf.name}/{key}"] = float(leaf.row[col])
        self._last = out
        return out

    def _norm_inputs(self, batch: Tensor) -> dict[int, Tensor]:
        """Inputs of the normalization layers on ``batch`` (eval-mode forward, no grad)."""
        captured: dict[int, Tensor] = {}

        def hook(m: nn.Module, args: tuple) -> None:
            captured[id(m)] = args[0].detach().float()

        handles = [
            leaf.module.register_forward_pre_hook(hook)
            for leaf in self._leaves.values()
            if leaf.kind.wants_input
        ]
        try:
            with torch.no_grad():
                self.D(batch.float())
        finally:
            for h in handles:
                h.remove()
        return captured

    def _measure_leaf(self, leaf: _Leaf, now: _Pass) -> dict[str, Any]:
        m = leaf.module
        row: dict[str, Any] = {
            "name": leaf.name,
            "path": leaf.path,
            "type": "+".join([type(m).__name__.removeprefix("Parametrized"), *_wrapper_names(m)]),
            "in_shape": leaf.in_shape,
            "sigma_matrix": None,
            "sigma_operator": None,
            "raw_sigma": None,
            "gain_worst": None,
            "gain_eval": None,
            "gain_batch": None,
            "lip_matrix": None,
            "lip_operator": None,
            "notes": "",
        }
        if leaf.kind.needs_shape and leaf.in_shape is None:
            row["notes"] = "not called in forward"
        else:
            leaf.kind.measure(self, leaf, row, now)
        return row

    def _measure_weight(self, leaf: _Leaf, row: dict[str, Any], now: _Pass) -> None:
        m, device = leaf.module, now.device
        w = effective_weight(m).to(device)
        mat = weight_matrix(m, w)
        sn = spectral_norm_view(m)
        init = None
        if sn is not None:
            # the divisor SN applies, from the layer's own state (read-only)
            row["raw_sigma"] = sn.sigma()
            init = sn.v
        v, steps = self._vector(f"mat/{leaf.path}", (mat.shape[1],), device, init)
        sigma_m, v = power_iteration(lambda x: mat @ x, v, steps)
        self._vectors[f"mat/{leaf.path}"] = v
        shape = (1, *leaf.in_shape[1:])
        x, steps = self._vector(f"op/{leaf.path}", shape, device)
        sigma_o, x = power_iteration(linear_map(m, w), x, steps)
        self._vectors[f"op/{leaf.path}"] = x
        row.update(
            sigma_matrix=sigma_m,
            sigma_operator=sigma_o,
            lip_matrix=sigma_m,
            lip_operator=sigma_o,
        )
        if sn is not None:
            row["notes"] = "sigma of W/raw_sigma"

    def _measure_norm(self, leaf: _Leaf, row: dict[str, Any], now: _Pass) -> None:
        m = leaf.module
        worst, gain_eval = norm_gains(m)
        row.update(gain_worst=worst, gain_eval=gain_eval)
        x = now.norm_inputs.get(id(m))
        if x is not None and isinstance(m, nn.modules.batchnorm._BatchNorm):
            row["gain_batch"] = batchnorm_batch_gain(m, x)
        elif x is not None:
            # per-sample maps: the Jacobian is block diagonal over samples, so a few
            # samples give the max over them.  It moves with every batch, so a long first
            # run buys little: n_iter steps from the previous direction (from below)
            x = x[: self.gain_samples]
            v, _ = self._vector(f"gain/{leaf.path}", tuple(x.shape), now.device)
            gain, v = jacobian_norm(norm_function(m), x, v, self.n_iter)
            self._vectors[f"gain/{leaf.path}"] = v
            row["gain_batch"] = gain
        use_eval = now.mode == "eval" and gain_eval is not None
        lip = gain_eval if use_eval else worst
        row.update(
            lip_matrix=lip,
            lip_operator=lip,
            notes="bound: eval gain" if use_eval else "bound: worst case",
        )

    def _measure_fixed(self, leaf: _Leaf, row: dict[str, Any], now: _Pass) -> None:
        c = fixed_rule(leaf.module)(leaf.module, leaf.in_shape)
        row.update(lip_matrix=c, lip_operator=c)

    def _measure_unknown(self, leaf: _Leaf, row: dict[str, Any], now: _Pass) -> None:
        row["notes"] = "UNKNOWN: bound invalid"

    def _forward(self, x: Tensor) -> Tensor:
        return self.D(x).reshape(len(x), -1).float()

    def _bound(self, module: nn.Module, col: str) -> float:
        rule = container_rule(module)
        if rule is not None:
            return rule(module, lambda child: self._bound(child, col))
        leaf = self._leaves[id(module)]
        value = leaf.row.get(col)
        if value is None:
            raise LipschitzError(f"module {leaf.path!r} has no {col} ({leaf.row['notes']})")
        return float(value)

    # -- reporting and state ---------------------------------------------------------------

    def table(self) -> list[dict[str, Any]]:
        """Per-layer rows from the last :meth:`measure` (runs one without data if none yet).

        Keys: name, path, type, in_shape, sigma_matrix, sigma_operator, raw_sigma, gain_worst,
        gain_eval, gain_batch, lip_matrix, lip_operator (the factor used in each bound),
        notes; ``None`` where not applicable.
        """
        if not self._last:
            self.measure()
        return [dict(leaf.row) for leaf in self._leaves.values()]

    def state_dict(self) -> dict[str, Tensor]:
        """The persistent vectors and the RNG state (tensors only), for exact resume."""
        state = {k: v.detach().cpu().clone() for k, v in self._vectors.items()}
        state["rng"] = self._gen.get_state()
        return state

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        state = dict(state)
        if "rng" in state:
            self._gen.set_state(state.pop("rng").cpu())
        self._vectors = {k: v.detach().float().clone() for k, v in state.items()}


# ----------------------------------------------------------------------------------------
# Leaf kinds: the first row whose ``matches`` accepts a module decides how it is measured


@dataclass(frozen=True)
class _Kind:
    """How the tracker treats one kind of leaf module."""

    name: str
    matches: Callable[[nn.Module], bool]
    # fills the leaf's table row: (tracker, leaf, row, this measurement pass) -> None
    measure: Callable[[LipschitzTracker, _Leaf, dict[str, Any], _Pass], None]
    # without an input shape (never called in forward) there is nothing to measure
    needs_shape: bool
    # the number depends on the input shape, so a module reused on two shapes is refused
    shape_dependent: bool
    # gain_batch needs the layer's input on the current batch
    wants_input: bool = False


_KINDS = (
    _Kind(
        "weight",
        lambda m: isinstance(m, WEIGHTED),
        LipschitzTracker._measure_weight,
        needs_shape=True,
        shape_dependent=True,
    ),
    _Kind(
        "norm",
        # a feature norm, as its registered norm declares (LipschitzRule.feature_norm)
        lambda m: getattr(norm_rule(m), "kind", None) == "feature",
        LipschitzTracker._measure_norm,
        # the worst-case and eval gains need no shape, so an unused norm layer still counts
        needs_shape=False,
        shape_dependent=True,
        wants_input=True,
    ),
    _Kind(
        "fixed",
        # a registered leaf, or a module its norm gives a fixed gain (LipschitzRule.fixed_gain)
        lambda m: fixed_rule(m) is not None,
        LipschitzTracker._measure_fixed,
        needs_shape=True,
        shape_dependent=False,
    ),
)
_UNKNOWN = _Kind(
    "unknown",
    lambda m: True,
    LipschitzTracker._measure_unknown,
    needs_shape=False,
    shape_dependent=False,
)


def _kind_of(module: nn.Module) -> _Kind:
    return next((k for k in _KINDS if k.matches(module)), _UNKNOWN)


__all__ = ["BoundMode", "LipschitzTracker"]
