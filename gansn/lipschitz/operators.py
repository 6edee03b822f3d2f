"""Layers as linear maps: effective weights, their matrices and operators, and their norms.

Also the gains of feature normalizations (batch / instance / layer / group norm, and any
module a registered norm declares a ``feature`` rule for), which are maps too.  Every
function here is read-only: it never changes a layer's weights or buffers.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

# layers whose map is a weight applied to the input (bias aside)
WEIGHTED = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    nn.Linear,
)
TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[None]:
    """Put every submodule in eval mode, restoring each one's own flag afterwards."""
    flags = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag


def effective_weight(layer: nn.Module) -> Tensor:
    """The weight ``layer``'s forward uses, detached, in fp32, without side effects.

    Reading ``layer.weight`` evaluates the parametrizations; a spectral-norm parametrization
    in train mode would also run (and store) a power-iteration step, so parametrizations are
    evaluated in eval mode: ``W_orig / (u^T W_orig v)`` with the stored ``u``, ``v``.
    """
    with torch.no_grad():
        if parametrize.is_parametrized(layer, "weight"):
            with eval_mode(layer.parametrizations):
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
    if isinstance(layer, TRANSPOSED):
        w = w.transpose(0, 1)
    return w.reshape(w.shape[0], -1)


def linear_map(layer: nn.Module, weight: Tensor) -> Callable[[Tensor], Tensor]:
    """The bias-free linear map ``layer`` applies with ``weight``: input -> output."""
    if isinstance(layer, nn.Linear):
        return lambda x: F.linear(x, weight)
    if isinstance(layer, TRANSPOSED):
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


def jacobian_norm(
    fn: Callable[[Tensor], Tensor], x: Tensor, v: Tensor, n_iter: int
) -> tuple[float, Tensor]:
    """Spectral norm of the Jacobian of ``fn`` at ``x`` (same shapes) by power iteration.

    ``J^T c`` is a VJP through the retained graph of ``fn(x)``; ``J v`` is the VJP of that
    VJP w.r.t. its (dummy) cotangent (the double-backward trick), so no forward-mode support
    is needed from the normalization kernels.  Returns ``(gain, v)``.
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


def norm_function(m: nn.Module) -> Callable[[Tensor], Tensor]:
    """The normalization as training computes it (batch statistics), with detached params.

    torch's norms by their functional forms; a plugin's feature norm by its own forward.
    """
    w = m.weight.detach().float() if getattr(m, "weight", None) is not None else None
    b = m.bias.detach().float() if getattr(m, "bias", None) is not None else None
    if isinstance(m, nn.modules.batchnorm._BatchNorm):
        return lambda x: F.batch_norm(x, None, None, w, b, True, 0.0, m.eps)
    if isinstance(m, nn.modules.instancenorm._InstanceNorm):
        return lambda x: F.instance_norm(x, None, None, w, b, True, 0.0, m.eps)
    if isinstance(m, nn.LayerNorm):
        return lambda x: F.layer_norm(x, m.normalized_shape, w, b, m.eps)
    if isinstance(m, nn.GroupNorm):
        return lambda x: F.group_norm(x, m.num_groups, w, b, m.eps)
    return m


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


__all__ = [
    "TRANSPOSED",
    "WEIGHTED",
    "batchnorm_batch_gain",
    "effective_weight",
    "eval_mode",
    "jacobian_norm",
    "linear_map",
    "norm_function",
    "norm_gains",
    "power_iteration",
    "weight_matrix",
]
