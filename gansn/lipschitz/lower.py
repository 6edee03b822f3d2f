"""Empirical lower bounds on D's Lipschitz constant: input-gradient norms, finite differences.

Every ``||J(x)^T u||`` (unit ``u``) and every ratio ``||D(x) - D(x')|| / ||x - x'||`` is at most
the true constant, so these bound it from below; the tracker's upper bounds close the
bracket (docs/lipschitz.md).  ``forward`` is D as a map ``(N, *input_shape) -> (N, out)`` in
fp32; every random draw comes from the caller's generator, never the global RNG.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

Forward = Callable[[Tensor], Tensor]


def lower_bounds(
    forward: Forward,
    real: Tensor | None,
    fake: Tensor | None,
    device: torch.device,
    gen: torch.Generator,
    fd_step: float,
) -> dict[str, float]:
    """Tags ``lipschitz/grad_{real,fake,interp}_{mean,max}``, ``fd_ratio`` and ``lower``.

    ``interp`` (random points between paired real and fake samples) needs both batches;
    without either there is nothing to measure and the dict is empty.
    """
    out: dict[str, float] = {}
    sets: dict[str, Tensor] = {}
    if real is not None:
        sets["real"] = real.detach().to(device).float()
    if fake is not None:
        sets["fake"] = fake.detach().to(device).float()
    if real is not None and fake is not None:
        n = min(len(sets["real"]), len(sets["fake"]))
        shape = (n,) + (1,) * (sets["real"].dim() - 1)
        alpha = torch.rand(shape, generator=gen).to(device)
        sets["interp"] = alpha * sets["real"][:n] + (1 - alpha) * sets["fake"][:n]
    if not sets:
        return out
    ratios: list[float] = []
    for key, x in sets.items():
        norms, y, g = input_gradients(forward, x, gen)
        out[f"lipschitz/grad_{key}_mean"] = float(norms.mean())
        out[f"lipschitz/grad_{key}_max"] = float(norms.max())
        ratios.append(fd_ratio(forward, x, y, g, fd_step))
    out["lipschitz/fd_ratio"] = max(ratios)
    out["lipschitz/lower"] = max(v for k, v in out.items() if k.endswith(("_max", "ratio")))
    return out


def input_gradients(
    forward: Forward, x: Tensor, gen: torch.Generator
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-sample ``||J(x)^T u||`` for a unit output direction ``u`` (1 for scalar D).

    In eval mode samples do not interact, so the gradient of the summed projections
    w.r.t. the batch holds each sample's own gradient.  Returns ``(norms (N,), D(x)
    (N, out), gradients (N, *input_shape))``.
    """
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        y = forward(x)
        if y.shape[1] == 1:
            u = torch.ones_like(y)
        else:
            u = torch.randn(y.shape, generator=gen).to(y.device)
            u = u / u.norm(dim=1, keepdim=True)
        (g,) = torch.autograd.grad((y * u).sum(), x)
    return g.flatten(1).norm(dim=1), y.detach(), g.detach()


def fd_ratio(forward: Forward, x: Tensor, y: Tensor, g: Tensor, fd_step: float) -> float:
    """max ``||D(x)-D(x')|| / ||x-x'||`` over gradient-direction steps and sample pairs.

    ``fd_step`` is the step as an RMS change per input element; ``y = D(x)``, ``g`` the
    input gradients from :func:`input_gradients`.
    """
    n, d = len(x), x[0].numel()
    with torch.no_grad():
        step = fd_step * math.sqrt(d)
        direction = g / g.flatten(1).norm(dim=1).clamp_min(1e-30).view(-1, *[1] * (x.dim() - 1))
        pairs = [(x + step * direction, y)]
        if n > 1:
            pairs.append((x.roll(1, 0), y.roll(1, 0)))
        best = 0.0
        for x2, y_ref in pairs:
            y2 = forward(x2) if y_ref is y else y_ref
            dist = (x2 - x).flatten(1).norm(dim=1)
            ok = dist > 0
            if ok.any():
                ratio = (y2 - y).norm(dim=1)[ok] / dist[ok]
                best = max(best, float(ratio.max()))
    return best


__all__ = ["fd_ratio", "input_gradients", "lower_bounds"]
