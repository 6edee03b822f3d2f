"""Building blocks shared by the architectures.

Every conv/linear layer is created, initialised, then handed to ``norm.wrap`` (the order
matters: weight norm derives its g and v from the weight at wrap time).  Networks are plain
``nn.Sequential`` chains of these layers, activations, pooling and :class:`ResBlock` so that
tools that walk a network (the Lipschitz tracker) see every map the input goes through.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from gansn.errors import ConfigError
from gansn.nn.norms import Norm

Init = Callable[[nn.Module], None]


def normal_init(std: float = 0.02) -> Init:
    """N(0, std) weights, zero bias: the DCGAN / chainer-gan-lib initialisation."""

    def init(layer: nn.Module) -> None:
        nn.init.normal_(layer.weight, 0.0, std)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)

    return init


def xavier_init(gain: float = 1.0) -> Init:
    """Glorot-uniform weights with ``gain``, zero bias: the SNGAN ResNet initialisation."""

    def init(layer: nn.Module) -> None:
        nn.init.xavier_uniform_(layer.weight, gain)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)

    return init


def default_init(layer: nn.Module) -> None:
    """Leave PyTorch's own initialisation in place."""


def conv(
    norm: Norm,
    init: Init,
    c_in: int,
    c_out: int,
    k: int,
    stride: int = 1,
    padding: int | None = None,
    bias: bool = True,
) -> nn.Module:
    """Conv2d (padding k//2 by default): (N, c_in, H, W) -> (N, c_out, H', W')."""
    layer = nn.Conv2d(c_in, c_out, k, stride, k // 2 if padding is None else padding, bias=bias)
    init(layer)
    return norm.wrap(layer)


def deconv(
    norm: Norm,
    init: Init,
    c_in: int,
    c_out: int,
    k: int = 4,
    stride: int = 2,
    padding: int = 1,
    bias: bool = True,
) -> nn.Module:
    """ConvTranspose2d: (N, c_in, H, W) -> (N, c_out, H*stride, W*stride) for k=4, p=1."""
    layer = nn.ConvTranspose2d(c_in, c_out, k, stride, padding, bias=bias)
    init(layer)
    return norm.wrap(layer)


def linear(norm: Norm, init: Init, f_in: int, f_out: int, bias: bool = True) -> nn.Module:
    """Linear: (N, f_in) -> (N, f_out)."""
    layer = nn.Linear(f_in, f_out, bias=bias)
    init(layer)
    return norm.wrap(layer)


class Maxout(nn.Module):
    """Maxout over groups of ``pieces`` consecutive features: (N, h * pieces) -> (N, h).

    Feature ``j`` of the output is the max of inputs ``j * pieces ... (j + 1) * pieces - 1``,
    the grouping of Theano/Blocks' ``LinearMaxout`` (Goodfellow et al. 2013).  It is
    1-Lipschitz w.r.t. the l2 norm: |max a - max b| <= max |a_i - b_i| per group, and the
    groups are disjoint.
    """

    def __init__(self, pieces: int) -> None:
        super().__init__()
        self.pieces = int(pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (-1, self.pieces)).amax(-1)

    def extra_repr(self) -> str:
        return f"pieces={self.pieces}"


class SumPool2d(nn.Module):
    """Global sum pooling (SNGAN ResNet D): (N, C, H, W) -> (N, C).

    Its Lipschitz constant w.r.t. the l2 norm is sqrt(H * W).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(dim=(2, 3))


class ResBlock(nn.Module):
    """``residual(x) + shortcut(x)``; an empty ``shortcut`` is the identity.

    Both branches are ``nn.Sequential`` so their layers can be inspected one by one.
    """

    def __init__(self, residual: nn.Sequential, shortcut: nn.Sequential) -> None:
        super().__init__()
        self.residual = residual
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.residual(x) + self.shortcut(x)


class Generator(nn.Module):
    """Wraps a network mapping latents to samples: (N, z_dim) -> (N, *shape)."""

    def __init__(self, net: nn.Sequential, z_dim: int, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.net = net
        self.z_dim = z_dim
        self.shape = tuple(shape)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)

    def sample_latent(
        self,
        n: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """Standard normal latents: -> (n, z_dim)."""
        return torch.randn(n, self.z_dim, generator=generator, device=device)


class Discriminator(nn.Module):
    """Wraps a network mapping samples to one logit each: (N, *shape) -> (N,)."""

    def __init__(self, net: nn.Sequential, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.net = net
        self.shape = tuple(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).view(-1)


def scaled(channels: int, width: float) -> int:
    """Channel count scaled by the ``width`` knob, rounded; refused below one channel.

    A width that rounds a layer to no channels used to be clamped to 1, which built nets
    of 1-channel layers that train to nothing without a word.
    """
    n = math.floor(channels * width + 0.5)
    if n < 1:
        raise ConfigError(
            f"model.width={width:g} scales a {channels}-channel layer to {channels * width:.3g} "
            f"channels, which rounds to none; expected model.width >= {0.5 / channels:.3g} for it "
            "(every layer needs at least one channel)"
        )
    return n
