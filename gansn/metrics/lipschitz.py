"""Where the discriminator's Lipschitz constant actually is, for any normalization.

Three kinds of numbers, all w.r.t. the l2 norm of one sample (a (C, H, W) image flattened):

* **Per-layer norms** of the *effective* weight each conv / linear / deconv layer uses in its
  forward (``layer.weight``, which evaluates any parametrization: spectral norm, weight norm):

  - ``sigma_matrix``: largest singular value of the weight reshaped to ``(out, in*kh*kw)``.
    ``ConvTranspose2d`` weights are ``(in, out, kh, kw)``; they are permuted to
    ``(out, in, kh, kw)`` first, which is the matrix torch's ``spectral_norm`` normalizes for
    transposed convs (its default ``dim=1``), so a spectrally normalized deconv reports ~1.
    Grouped convs use torch's ``(out, in/groups*kh*kw)`` weight as is.
  - ``sigma_operator``: the operator norm of the linear map the layer really applies to its
    input shape (stride, padding, padding mode, dilation, groups included; bias excluded since
    it does not change a Lipschitz constant), by power iteration with the map and its adjoint.
    For a 3x3 stride-1 conv it can be up to 3x ``sigma_matrix``.

  Both are power iterations whose vectors persist in the tracker between calls (never in the
  model), so a few iterations per call track the slowly moving weights.  For a spectrally
  normalized layer the effective weight is ``W / s`` with ``s = u^T W_mat v`` from the layer's
  own ``_u``/``_v`` buffers, read without running torch's in-place update; we report
  ``sigma_matrix`` of that effective weight (~1 once torch's iteration has converged; above 1
  while it lags), our iteration starting from the layer's ``_v``, and ``sn_sigma = s`` (the
  divisor SN uses, an estimate of the raw weight's sigma).

* **Normalization layers** are maps too.  Eval-mode batch norm (and instance norm with
  running statistics) is a per-channel affine map with gain ``|gamma| / sqrt(running_var+eps)``
  (``gain_eval``).  Layer / instance / group norm, and batch norm in train mode, divide by a
  statistic of their input: their Jacobian is ``diag(gamma) (I - z z^T / (n s^2)) P / s``
  with ``s = sqrt(var + eps) >= sqrt(eps)``, so the worst case is ``max|gamma| / sqrt(eps)``
  (``gain_worst``).  ``gain_batch`` is the spectral norm of the layer's Jacobian at its input
  on the current batch: what the layer amplifies in practice.  For batch norm (train-mode
  statistics of the batch) it is exact, ``max |gamma| / sqrt(batch_var + eps)``; for the
  per-sample norms it comes from Jacobian-vector power iteration on the first
  ``gain_samples`` samples.

* **Whole-D numbers**:

  - ``lipschitz/upper_operator``: product over ``nn.Sequential`` and sum over the two branches
    of a :class:`~gansn.nn.layers.ResBlock` of per-layer ``sigma_operator`` and the constants
    of fixed layers.  It is an upper bound on D's Lipschitz constant provided (1) the power
    iterations have converged (they approach each sigma from below), (2) D's forward is the
    composition this module tree describes (``nn.Sequential`` order, ResBlock = residual +
    shortcut, a ``Discriminator``/``Generator`` wrapper = its ``net``), and (3) each sample
    is processed independently (true in eval mode).
    Normalization layers enter with ``gain_worst`` when the bound mode is ``"train"`` and with
    ``gain_eval`` for eval-mode batch norm when it is ``"eval"``; since
    ``gain_eval <= gain_worst``, the train-mode bound also bounds the eval-mode function.
  - ``lipschitz/upper_matrix``: the same product with ``sigma_matrix``: the number SN's
    reasoning implicitly uses.  It is *not* a valid bound for convs (it ignores that a conv
    applies its kernel at overlapping positions); it is reported to show the gap.
  - Lower bounds (empirical, always valid for the function evaluated): per-sample input
    gradient norms on real, generated and WGAN-GP interpolated samples, and a
    finite-difference ratio ``max ||D(x)-D(x')|| / ||x-x'||`` over pairs (gradient-direction
    perturbations and pairs of distinct samples).  They are computed with D in **eval mode**:
    in train mode batch norm makes D(x) depend on the rest of the batch, so a per-sample
    gradient is not a property of a function of x; in eval mode SN does not update its
    vectors and BN does not update its running statistics, so measuring never changes D.

Invariant (tested): every lower bound <= ``upper_operator`` (up to float error and power
iteration convergence), for every normalization and both bound modes.

The trainer calls :class:`LipschitzTracker` every ``lipschitz_every`` steps; notebooks use
:func:`lipschitz_report`; the SNGAN-paper figure 2 uses :func:`singular_value_spectra`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from gansn.nn.layers import Discriminator, Generator, Maxout, ResBlock, SumPool2d

log = logging.getLogger(__name__)

BoundMode = Literal["auto", "train", "eval"]

_WEIGHTED = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    nn.Linear,
)
_TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_FEATURE_NORMS = (
    nn.modules.batchnorm._BatchNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.LayerNorm,
    nn.GroupNorm,
)


class LipschitzError(TypeError):
    """D contains a module whose Lipschitz constant gansn does not know.

    Register one with :func:`register_leaf` (or :func:`register_container` for a module
    whose children the bound must walk), or pass ``strict=False`` to mark the bound invalid.
    """


# ----------------------------------------------------------------------------------------
# Constants of parameter-free layers.  Each rule: (module, input shape (1, ...)) -> float.

LeafRule = Callable[[nn.Module, tuple[int, ...]], float]
ContainerRule = Callable[[nn.Module, Callable[[nn.Module], float]], float]

_LEAF_RULES: dict[type, LeafRule] = {}
_CONTAINER_RULES: dict[type, ContainerRule] = {}


def register_leaf(cls: type, rule: LeafRule) -> None:
    """Declare the l2 Lipschitz constant of a parameter-free module type.

    ``rule(module, in_shape)`` gets the module and its input shape ``(1, ...)``.
    """
    _LEAF_RULES[cls] = rule


def register_container(cls: type, rule: ContainerRule) -> None:
    """Declare how a container's bound combines its children's.

    ``rule(module, bound)`` returns the container's constant, calling ``bound(child)`` for the
    children its forward uses (e.g. a product for a chain, a sum for parallel branches).
    """
    _CONTAINER_RULES[cls] = rule


def _pair(v: Any, n: int = 2) -> tuple[int, ...]:
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * n


def _avgpool_constant(m: nn.Module, in_shape: tuple[int, ...]) -> float:
    # Each output is the mean of a kh x kw window: a matrix A with row sums 1 and entries
    # 1/(kh*kw).  By Schur's test ||A||_2 <= sqrt(||A||_1 ||A||_inf); ||A||_inf = 1 and a
    # pixel lies in at most ceil(kh/sh)*ceil(kw/sw) windows, so ||A||_1 <= that / (kh*kw).
    # Non-overlapping k x k (stride k) pooling: rows are disjoint, each of norm
    # sqrt(k^2)/k^2 = 1/k, so the bound is attained: exactly 1/k.
    k, s = _pair(m.kernel_size), _pair(m.stride if m.stride is not None else m.kernel_size)
    pad = _pair(m.padding)
    if (
        getattr(m, "ceil_mode", False)
        or (any(pad) and not m.count_include_pad)
        or getattr(m, "divisor_override", None)
    ):
        raise LipschitzError(
            f"{m}: only AvgPool2d without ceil_mode/divisor_override and "
            "with count_include_pad=True (if padded) is supported"
        )
    overlap = math.ceil(k[0] / s[0]) * math.ceil(k[1] / s[1])
    return math.sqrt(overlap / (k[0] * k[1]))


def _maxpool_constant(m: nn.Module, in_shape: tuple[int, ...]) -> float:
    # Max picks one input per window; a pixel feeds at most ceil(k/s)^2 outputs.
    k = _pair(m.kernel_size)
    s = _pair(m.stride if m.stride is not None else m.kernel_size)
    return math.sqrt(math.ceil(k[0] / s[0]) * math.ceil(k[1] / s[1]))


def _upsample_constant(m: nn.Module, in_shape: tuple[int, ...]) -> float:
    # Nearest upsampling by integer factors copies each input s_h * s_w times.
    if m.mode != "nearest" or m.scale_factor is None:
        raise LipschitzError(f"{m}: only nearest Upsample with a scale_factor is supported")
    factors = _pair(m.scale_factor, len(in_shape) - 2)
    if any(float(f) != int(f) for f in factors):
        raise LipschitzError(f"{m}: only integer scale factors are supported")
    return math.sqrt(math.prod(int(f) for f in factors))


def _leaky_constant(m: nn.Module, in_shape: tuple[int, ...]) -> float:
    return max(1.0, abs(m.negative_slope))


for _cls in (
    nn.ReLU,
    nn.Tanh,
    nn.Flatten,
    nn.Unflatten,
    nn.Identity,
    nn.Hardtanh,
    nn.ReLU6,
    nn.Softplus,
):
    register_leaf(_cls, lambda m, s: 1.0)
register_leaf(nn.Sigmoid, lambda m, s: 0.25)
# max over disjoint groups: |max a - max b| <= max |a_i - b_i| <= the group's l2 distance
register_leaf(Maxout, lambda m, s: 1.0)
register_leaf(nn.LeakyReLU, _leaky_constant)
register_leaf(nn.ELU, lambda m, s: max(1.0, m.alpha))
register_leaf(nn.Dropout, lambda m, s: 1.0 / (1.0 - m.p) if m.training else 1.0)
register_leaf(nn.AvgPool2d, _avgpool_constant)
register_leaf(nn.MaxPool2d, _maxpool_constant)
register_leaf(nn.Upsample, _upsample_constant)
# global sum over H*W positions: a row of H*W ones per channel, norm sqrt(H*W)
register_leaf(SumPool2d, lambda m, s: math.sqrt(s[-1] * s[-2]))


def _product(m: nn.Module, bound: Callable[[nn.Module], float]) -> float:
    out = 1.0
    for child in m:  # an empty Sequential is the identity
        out *= bound(child)
    return out


register_container(nn.Sequential, _product)
register_container(ResBlock, lambda m, bound: bound(m.residual) + bound(m.shortcut))
# the wrappers only reshape the net's output (view(-1)), an isometry
register_container(Discriminator, lambda m, bound: bound(m.net))
register_container(Generator, lambda m, bound: bound(m.net))


def _lookup(table: dict[type, Any], module: nn.Module) -> Any:
    for cls in type(module).__mro__:
        if cls in table:
            return table[cls]
    return None


# ----------------------------------------------------------------------------------------
# Effective weights and their linear maps


def readable_name(path: str) -> str:
    """``net.1.residual.2`` -> ``net1/residual2``: indices glued to their container."""
    out: list[str] = []
    for part in path.split("."):
        if part.isdigit() and out:
            out[-1] += part
        elif part:
            out.append(part)
    return "/".join(out) or "root"


@contextlib.contextmanager
def _eval_mode(module: nn.Module) -> Iterator[None]:
    """Put every submodule in eval mode, restoring each one's own flag afterwards."""
    flags = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag


def _spectral_norm_of(layer: nn.Module) -> nn.Module | None:
    if not parametrize.is_parametrized(layer, "weight"):
        return None
    for p in layer.parametrizations.weight:
        if type(p).__name__ == "_SpectralNorm" and hasattr(p, "_u"):
            return p
    return None


def _wrapper_names(layer: nn.Module) -> list[str]:
    if not parametrize.is_parametrized(layer, "weight"):
        return []
    return [type(p).__name__.strip("_") for p in layer.parametrizations.weight]


def effective_weight(layer: nn.Module) -> Tensor:
    """The weight ``layer``'s forward uses, detached, in fp32, without side effects.

    Reading ``layer.weight`` evaluates the parametrizations; a spectral-norm parametrization
    in train mode would also run (and store) a power-iteration step, so parametrizations are
    evaluated in eval mode: ``W_orig / (u^T W_orig v)`` with the stored ``u``, ``v``.
    """
    with torch.no_grad():
        if parametrize.is_parametrized(layer, "weight"):
            with _eval_mode(layer.parametrizations):
                w = layer.weight
        else:
            w = layer.weight
        return w.detach().float()


def weight_matrix(layer: nn.Module, weight: Tensor | None = None) -> Tensor:
    """Effective weight as a matrix ``(out, in*prod(kernel))``.

    Transposed convs store ``(in, out, *kernel)``: we permute to ``(out, in, *kernel)``, the
    matrix torch's ``spectral_norm`` (``dim=1``) normalizes.
    """
    w = effective_weight(layer) if weight is None else weight
    if isinstance(layer, _TRANSPOSED):
        w = w.transpose(0, 1)
    return w.reshape(w.shape[0], -1)


def linear_map(layer: nn.Module, weight: Tensor) -> Callable[[Tensor], Tensor]:
    """The bias-free linear map ``layer`` applies with ``weight``: input -> output."""
    if isinstance(layer, nn.Linear):
        return lambda x: F.linear(x, weight)
    if isinstance(layer, _TRANSPOSED):
        fn = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[weight.dim() - 2]
        return lambda x: fn(
            x,
            weight,
            None,
            layer.stride,
            layer.padding,
            layer.output_padding,
            layer.groups,
            layer.dilation,
        )
    # _conv_forward handles padding_mode ('circular', 'reflect', ...) like forward does
    return lambda x: layer._conv_forward(x, weight, None)


def _normalize(x: Tensor) -> Tensor:
    return x / x.norm().clamp_min(1e-30)


def power_iteration(
    forward: Callable[[Tensor], Tensor], v: Tensor, n_iter: int
) -> tuple[float, Tensor]:
    """Largest singular value of the linear map ``forward`` from ``n_iter`` steps.

    ``v`` (any shape the map accepts) is the start vector; returns ``(sigma, v)`` with the
    updated unit vector.  ``sigma = ||A v||`` with unit ``v`` approaches the true value from
    below.  The adjoint is a VJP through one retained graph of the map: for a linear map the
    VJP is the same at every point, so one graph serves every step (and covers padding modes,
    strides and output padding without hand-written transposes).
    """
    v = _normalize(v.detach().float())
    with torch.enable_grad():
        x0 = torch.zeros_like(v, requires_grad=True)
        y0 = forward(x0)
        for _ in range(n_iter):
            with torch.no_grad():
                y = forward(v)
            (v,) = torch.autograd.grad(y0, x0, y, retain_graph=True)
            v = _normalize(v)
    with torch.no_grad():
        sigma = float(forward(v).norm())
    return sigma, v


def _jacobian_norm(
    fn: Callable[[Tensor], Tensor], x: Tensor, v: Tensor, n_iter: int
) -> tuple[float, Tensor]:
    """Spectral norm of the Jacobian of ``fn`` at ``x`` (same shapes) by power iteration.

    ``J^T c`` is a VJP through the retained graph of ``fn(x)``; ``J v`` is the VJP of that
    VJP w.r.t. its (dummy) cotangent (the double-backward trick), so no forward-mode support
    is needed from the normalization kernels.
    """
    v = _normalize(v.detach().float())
    with torch.enable_grad():
        x = x.detach().float().requires_grad_(True)
        y = fn(x)
        c = torch.zeros_like(y, requires_grad=True)
        (vjp_c,) = torch.autograd.grad(y, x, c, create_graph=True)

        def jvp(t: Tensor) -> Tensor:
            return torch.autograd.grad(vjp_c, c, t, retain_graph=True)[0]

        for _ in range(n_iter):
            (v,) = torch.autograd.grad(y, x, jvp(v), retain_graph=True)
            v = _normalize(v)
        gain = float(jvp(v).norm())
    return gain, v.detach()


def _norm_function(m: nn.Module) -> Callable[[Tensor], Tensor]:
    """The normalization as training computes it (batch statistics), with detached params."""
    w = m.weight.detach().float() if getattr(m, "weight", None) is not None else None
    b = m.bias.detach().float() if getattr(m, "bias", None) is not None else None
    if isinstance(m, nn.modules.batchnorm._BatchNorm):
        return lambda x: F.batch_norm(x, None, None, w, b, True, 0.0, m.eps)
    if isinstance(m, nn.modules.instancenorm._InstanceNorm):
        return lambda x: F.instance_norm(x, None, None, w, b, True, 0.0, m.eps)
    if isinstance(m, nn.LayerNorm):
        return lambda x: F.layer_norm(x, m.normalized_shape, w, b, m.eps)
    return lambda x: F.group_norm(x, m.num_groups, w, b, m.eps)


def batchnorm_batch_gain(m: nn.Module, x: Tensor) -> float:
    """Exact spectral norm of train-mode batch norm's Jacobian on the batch ``x``.

    Per channel, over its ``n = N*H*W`` values with ``s = sqrt(var + eps)`` and normalized
    values ``z`` (zero mean, ``|z|^2 = n var / s^2``), the Jacobian is
    ``gamma / s * (I - 1 1^T / n - z z^T / n)``: 1 on the complement of ``{1, z}``, 0 on 1,
    ``eps / s^2`` on ``z``; so its norm is ``|gamma| / s`` (for ``n >= 3``).  ``x (N, C, ...)``.
    """
    dims = [0, *range(2, x.dim())]
    var = x.detach().float().var(dim=dims, unbiased=False)
    gain = 1.0 / torch.sqrt(var + m.eps)
    if getattr(m, "weight", None) is not None:
        gain = gain * m.weight.detach().float().abs()
    return float(gain.max())


def norm_gains(m: nn.Module) -> tuple[float, float | None]:
    """``(gain_worst, gain_eval)`` of a feature normalization layer.

    ``gain_worst = max|gamma| / sqrt(eps)``, valid whatever the statistic; ``gain_eval`` is the
    exact eval-mode gain ``max |gamma| / sqrt(running_var + eps)`` of batch norm (and instance
    norm tracking running stats), ``None`` for layers without running statistics.
    """
    w = getattr(m, "weight", None)
    gamma = w.detach().float().abs() if w is not None else None
    g_max = float(gamma.max()) if gamma is not None else 1.0
    worst = g_max / math.sqrt(m.eps)
    rv = getattr(m, "running_var", None)
    if rv is None:
        return worst, None
    per_channel = 1.0 / torch.sqrt(rv.detach().float() + m.eps)
    if gamma is not None:
        per_channel = per_channel * gamma
    return worst, float(per_channel.max())


# ----------------------------------------------------------------------------------------
# The tracker


@dataclass
class _Leaf:
    path: str
    name: str
    module: nn.Module
    kind: str  # "weight" | "norm" | "fixed"
    in_shape: tuple[int, ...] | None = None
    row: dict[str, Any] = field(default_factory=dict)


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
        for path, m in D.named_modules():
            if id(m) in self._leaves or _lookup(_CONTAINER_RULES, m) is not None:
                continue
            if "parametrizations" in path.split("."):
                continue  # the parametrization modules inside a wrapped layer
            if isinstance(m, _WEIGHTED):
                kind = "weight"
            elif isinstance(m, _FEATURE_NORMS):
                kind = "norm"
            elif _lookup(_LEAF_RULES, m) is not None:
                kind = "fixed"
            else:
                kind = "unknown"
            self._leaves[id(m)] = _Leaf(path, readable_name(path), m, kind)
        self._check_structure(D)
        self._last: dict[str, float] = {}

    # -- structure ----------------------------------------------------------------------

    def _check_structure(self, module: nn.Module) -> None:
        """Fail at start-up, not hours into training, on a module the bound cannot handle."""
        rule = _lookup(_CONTAINER_RULES, module)
        if rule is not None:
            rule(module, lambda child: (self._check_structure(child), 1.0)[1])
            return
        leaf = self._leaves.get(id(module))
        if leaf is None or leaf.kind == "unknown":
            path = leaf.path if leaf else type(module).__name__
            msg = (
                f"no Lipschitz constant known for module {path!r} of type "
                f"{type(module).__name__}; register one with "
                "gansn.metrics.lipschitz.register_leaf / register_container"
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
            shape_dependent = leaf.kind in ("weight", "norm") or isinstance(
                leaf.module, (SumPool2d, nn.Upsample)
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
        per layer ``sigma/<prefix>/<layer>/{matrix,operator}`` (+ ``sn_sigma`` for SN layers)
        and for normalization layers ``sigma/<prefix>/<layer>/{gain_worst,gain_eval,
        gain_batch}`` (eval only with running stats, batch only when a batch is given).
        Runs in fp32 with autocast off, D in eval mode; D, its buffers and the global RNG are
        left exactly as they were.
        """
        mode = self._resolved_mode()
        device = self._device()
        with contextlib.ExitStack() as stack:
            stack.enter_context(_eval_mode(self.D))
            stack.enter_context(torch.autocast(device_type=device.type, enabled=False))
            if not self._shapes_ready:
                self._record_shapes()
            batch = real if real is not None else fake
            norm_inputs = self._norm_inputs(batch.to(device)) if batch is not None else {}
            for leaf in self._leaves.values():
                leaf.row = self._measure_leaf(leaf, mode, norm_inputs, device)
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
            out.update(self._lower_bounds(real, fake, device))
            for leaf in self._leaves.values():
                for key in (
                    "matrix",
                    "operator",
                    "sn_sigma",
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
            if leaf.kind == "norm"
        ]
        try:
            with torch.no_grad():
                self.D(batch.float())
        finally:
            for h in handles:
                h.remove()
        return captured

    def _measure_leaf(
        self, leaf: _Leaf, mode: str, norm_inputs: dict[int, Tensor], device: torch.device
    ) -> dict[str, Any]:
        m = leaf.module
        row: dict[str, Any] = {
            "name": leaf.name,
            "path": leaf.path,
            "type": "+".join([type(m).__name__.removeprefix("Parametrized"), *_wrapper_names(m)]),
            "in_shape": leaf.in_shape,
            "sigma_matrix": None,
            "sigma_operator": None,
            "sn_sigma": None,
            "gain_worst": None,
            "gain_eval": None,
            "gain_batch": None,
            "lip_matrix": None,
            "lip_operator": None,
            "notes": "",
        }
        if leaf.kind == "weight":
            if leaf.in_shape is None:
                row["notes"] = "not called in forward"
                return row
            w = effective_weight(m).to(device)
            mat = weight_matrix(m, w)
            sn = _spectral_norm_of(m)
            init = None
            if sn is not None:
                # the divisor SN applies, from the layer's own state (read-only)
                with torch.no_grad():
                    w_orig = m.parametrizations.weight.original.detach().float()
                    s = torch.vdot(
                        sn._u.float(), sn._reshape_weight_to_matrix(w_orig) @ sn._v.float()
                    )
                row["sn_sigma"] = float(s)
                init = sn._v
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
                row["notes"] = "sigma of W/sn_sigma"
        elif leaf.kind == "norm":
            worst, gain_eval = norm_gains(m)
            row.update(gain_worst=worst, gain_eval=gain_eval)
            x = norm_inputs.get(id(m))
            if x is not None and isinstance(m, nn.modules.batchnorm._BatchNorm):
                row["gain_batch"] = batchnorm_batch_gain(m, x)
            elif x is not None:
                # per-sample maps: the Jacobian is block diagonal over samples, so a few
                # samples give the max over them.  It moves with every batch, so a long first
                # run buys little: n_iter steps from the previous direction (from below)
                x = x[: self.gain_samples]
                v, _ = self._vector(f"gain/{leaf.path}", tuple(x.shape), device)
                gain, v = _jacobian_norm(_norm_function(m), x, v, self.n_iter)
                self._vectors[f"gain/{leaf.path}"] = v
                row["gain_batch"] = gain
            use_eval = mode == "eval" and gain_eval is not None
            lip = gain_eval if use_eval else worst
            row.update(
                lip_matrix=lip,
                lip_operator=lip,
                notes="bound: eval gain" if use_eval else "bound: worst case",
            )
        elif leaf.kind == "fixed":
            if leaf.in_shape is None:
                row["notes"] = "not called in forward"
            else:
                c = _lookup(_LEAF_RULES, m)(m, leaf.in_shape)
                row.update(lip_matrix=c, lip_operator=c)
        else:
            row["notes"] = "UNKNOWN: bound invalid"
        return row

    def _bound(self, module: nn.Module, col: str) -> float:
        rule = _lookup(_CONTAINER_RULES, module)
        if rule is not None:
            return rule(module, lambda child: self._bound(child, col))
        leaf = self._leaves[id(module)]
        value = leaf.row.get(col)
        if value is None:
            raise LipschitzError(f"module {leaf.path!r} has no {col} ({leaf.row['notes']})")
        return float(value)

    def _lower_bounds(
        self, real: Tensor | None, fake: Tensor | None, device: torch.device
    ) -> dict[str, float]:
        out: dict[str, float] = {}
        sets: dict[str, Tensor] = {}
        if real is not None:
            sets["real"] = real.detach().to(device).float()
        if fake is not None:
            sets["fake"] = fake.detach().to(device).float()
        if real is not None and fake is not None:
            n = min(len(sets["real"]), len(sets["fake"]))
            shape = (n,) + (1,) * (sets["real"].dim() - 1)
            alpha = torch.rand(shape, generator=self._gen).to(device)
            sets["interp"] = alpha * sets["real"][:n] + (1 - alpha) * sets["fake"][:n]
        if not sets:
            return out
        ratios: list[float] = []
        for key, x in sets.items():
            norms, y, g = self._input_gradients(x)
            out[f"lipschitz/grad_{key}_mean"] = float(norms.mean())
            out[f"lipschitz/grad_{key}_max"] = float(norms.max())
            ratios.append(self._fd_ratio(x, y, g))
        out["lipschitz/fd_ratio"] = max(ratios)
        out["lipschitz/lower"] = max(v for k, v in out.items() if k.endswith(("_max", "ratio")))
        return out

    def _forward(self, x: Tensor) -> Tensor:
        return self.D(x).reshape(len(x), -1).float()

    def _input_gradients(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Per-sample ``||J(x)^T u||`` for a unit output direction ``u`` (1 for scalar D).

        In eval mode samples do not interact, so the gradient of the summed projections
        w.r.t. the batch holds each sample's own gradient.  Returns ``(norms (N,), D(x)
        (N, out), gradients (N, *input_shape))``.
        """
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            y = self._forward(x)
            if y.shape[1] == 1:
                u = torch.ones_like(y)
            else:
                u = torch.randn(y.shape, generator=self._gen).to(y.device)
                u = u / u.norm(dim=1, keepdim=True)
            (g,) = torch.autograd.grad((y * u).sum(), x)
        return g.flatten(1).norm(dim=1), y.detach(), g.detach()

    def _fd_ratio(self, x: Tensor, y: Tensor, g: Tensor) -> float:
        """max ``||D(x)-D(x')|| / ||x-x'||`` over gradient-direction steps and sample pairs."""
        n, d = len(x), x[0].numel()
        with torch.no_grad():
            step = self.fd_step * math.sqrt(d)
            direction = g / g.flatten(1).norm(dim=1).clamp_min(1e-30).view(-1, *[1] * (x.dim() - 1))
            pairs = [(x + step * direction, y)]
            if n > 1:
                pairs.append((x.roll(1, 0), y.roll(1, 0)))
            best = 0.0
            for x2, y_ref in pairs:
                y2 = self._forward(x2) if y_ref is y else y_ref
                dist = (x2 - x).flatten(1).norm(dim=1)
                ok = dist > 0
                if ok.any():
                    ratio = (y2 - y).norm(dim=1)[ok] / dist[ok]
                    best = max(best, float(ratio.max()))
        return best

    # -- reporting and state ---------------------------------------------------------------

    def table(self) -> list[dict[str, Any]]:
        """Per-layer rows from the last :meth:`measure` (runs one without data if none yet).

        Keys: name, path, type, in_shape, sigma_matrix, sigma_operator, sn_sigma, gain_worst,
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
# Standalone API


def lipschitz_report(
    D: nn.Module,
    input_shape: tuple[int, ...],
    *,
    real: Tensor | None = None,
    fake: Tensor | None = None,
    n_iter: int = 200,
    bound_mode: BoundMode = "auto",
    prefix: str = "d",
    strict: bool = True,
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """One-shot analysis from a notebook: ``(per-layer table, tags -> values)``.

    ``D`` maps ``(N, *input_shape)`` to ``(N,)``; ``real``/``fake`` are optional batches for
    the empirical lower bounds.  ``n_iter`` power-iteration steps from random starts.
    """
    tracker = LipschitzTracker(
        D,
        input_shape,
        n_iter=n_iter,
        n_iter_init=n_iter,
        bound_mode=bound_mode,
        prefix=prefix,
        strict=strict,
    )
    values = tracker.measure(real, fake)
    return tracker.table(), values


def format_table(rows: list[dict[str, Any]], *, all_layers: bool = False) -> str:
    """Plain-text table of :meth:`LipschitzTracker.table` rows (weighted and norm layers,
    or every leaf with ``all_layers``)."""

    def f(v: Any) -> str:
        return "-" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)

    cols = [
        "name",
        "type",
        "in_shape",
        "sigma_matrix",
        "sigma_operator",
        "sn_sigma",
        "gain_worst",
        "gain_eval",
        "gain_batch",
        "lip_operator",
        "notes",
    ]
    keep = [
        r
        for r in rows
        if all_layers or r["sigma_matrix"] is not None or r["gain_worst"] is not None
    ]
    cells = [cols] + [
        [f(tuple(r[c][1:]) if c == "in_shape" and r[c] else r[c]) for c in cols] for r in keep
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells)


def singular_value_spectra(module: nn.Module, *, normalized: bool = True) -> dict[str, np.ndarray]:
    """Full singular value spectrum of every conv/linear/deconv effective weight matrix.

    Returns ``{layer name: (min(out, in*k*k),) array}``, sorted descending, divided by the
    largest when ``normalized`` (the SNGAN paper's figure 2).  Matrices are the
    ``(out, in*kh*kw)`` reshapes of :func:`weight_matrix`.
    """
    out: dict[str, np.ndarray] = {}
    for path, m in module.named_modules():
        if isinstance(m, _WEIGHTED) and "parametrizations" not in path.split("."):
            s = torch.linalg.svdvals(weight_matrix(m).double().cpu()).numpy()
            out[readable_name(path)] = s / s[0] if normalized and s[0] > 0 else s
    return out


def circular_conv_singular_values(weight: Tensor, n: int) -> Tensor:
    """All singular values of a stride-1 circular 2-D conv on ``n x n`` inputs.

    Sedghi, Gupta & Long (2019): the conv is block-diagonalised by the 2-D DFT, so its
    singular values are those of the ``(c_out, c_in)`` matrices of the kernel's FFT, zero
    padded to ``n x n``, at each of the ``n^2`` frequencies.  ``weight (c_out, c_in, k, k)``
    -> ``(n*n*min(c_out, c_in),)`` descending.  (torch's conv is a correlation; that flips
    the kernel, which conjugates each matrix and leaves singular values unchanged.)
    """
    transfer = torch.fft.fft2(weight.double(), s=(n, n))  # (c_out, c_in, n, n)
    mats = transfer.permute(2, 3, 0, 1)  # (n, n, c_out, c_in)
    return torch.linalg.svdvals(mats).flatten().sort(descending=True).values


__all__ = [
    "LipschitzError",
    "LipschitzTracker",
    "circular_conv_singular_values",
    "effective_weight",
    "format_table",
    "linear_map",
    "lipschitz_report",
    "norm_gains",
    "power_iteration",
    "readable_name",
    "register_container",
    "register_leaf",
    "singular_value_spectra",
    "weight_matrix",
]
