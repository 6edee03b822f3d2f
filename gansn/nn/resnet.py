"""The SNGAN ResNets (Miyato et al. 2018, Tables 4-6; pfnet-research/sngan_projection).

Layouts by image size (channels before the ``width`` knob):

* 32 (CIFAR-10): G z -> 4x4x256, 3 up-blocks of 256; D optimized block 128 (down),
  block 128 (down), 2 blocks 128, ReLU, global sum pooling, linear.
* 48 (STL-10): G z -> 6x6x512, up-blocks 256, 128, 64; D optimized 64, blocks 128, 256, 512
  (down), 1024, ReLU, sum pooling, linear.
* 64: G z -> 4x4x1024, up-blocks 512, 256, 128, 64; D optimized 64, down-blocks 128, 256,
  512, 1024 (as Mimicry's SNGAN-64).

G blocks: norm-ReLU-up-conv3-norm-ReLU-conv3, shortcut up-conv1; G ends with
norm-ReLU-conv3-tanh.  D blocks: [norm]-ReLU-conv3-[norm]-ReLU-conv3-[avgpool], shortcut
conv1-[avgpool] when the shape changes, identity otherwise.  D's optimized first block
(conv3-ReLU-conv3-avgpool, shortcut avgpool-conv1) never normalizes raw pixels.

Initialisation as in sngan_projection: Glorot-uniform with gain sqrt(2) for the convs in the
residual branches, gain 1 for shortcuts, G's first linear, G's last conv and D's linear;
biases 0.
"""

from __future__ import annotations

import itertools
import math

from torch import nn

from gansn.errors import ConfigError
from gansn.nn.archs import ARCHS, image_shape
from gansn.nn.layers import (
    Discriminator,
    Generator,
    ResBlock,
    SumPool2d,
    conv,
    linear,
    scaled,
    xavier_init,
)
from gansn.nn.norms import Norm

# size -> (G bottom resolution, G channels: first is the linear's, one up-block per step)
_G_LAYOUT = {
    32: (4, [256, 256, 256, 256]),
    48: (6, [512, 256, 128, 64]),
    64: (4, [1024, 512, 256, 128, 64]),
}
# size -> D blocks after the optimized one: (channels of optimized block, [(c_out, down)])
_D_LAYOUT = {
    32: (128, [(128, True), (128, False), (128, False)]),
    48: (64, [(128, True), (256, True), (512, True), (1024, False)]),
    64: (64, [(128, True), (256, True), (512, True), (1024, True)]),
}

_RES, _SC = xavier_init(math.sqrt(2)), xavier_init(1.0)


def _layout(size: int, table: dict) -> tuple:
    if size not in table:
        raise ConfigError(
            f"resnet has layouts for image sizes {sorted(table)} only, got {size}; "
            "set dataset.img_size to one of them"
        )
    return table[size]


def g_block(norm: Norm, c_in: int, c_out: int) -> ResBlock:
    """Up-block: (N, c_in, H, W) -> (N, c_out, 2H, 2W)."""
    residual = nn.Sequential(
        norm.feature(c_in),
        nn.ReLU(),
        nn.Upsample(scale_factor=2, mode="nearest"),
        conv(norm, _RES, c_in, c_out, 3),
        norm.feature(c_out),
        nn.ReLU(),
        conv(norm, _RES, c_out, c_out, 3),
    )
    shortcut = nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"), conv(norm, _SC, c_in, c_out, 1)
    )
    return ResBlock(residual, shortcut)


def d_block(norm: Norm, c_in: int, c_out: int, down: bool) -> ResBlock:
    """(N, c_in, H, W) -> (N, c_out, H/2, W/2) when ``down``, else same size."""
    pool = [nn.AvgPool2d(2)] if down else []
    residual = nn.Sequential(
        norm.feature(c_in),
        nn.ReLU(),
        conv(norm, _RES, c_in, c_out, 3),
        norm.feature(c_out),
        nn.ReLU(),
        conv(norm, _RES, c_out, c_out, 3),
        *pool,
    )
    learnable = down or c_in != c_out
    shortcut = (
        nn.Sequential(conv(norm, _SC, c_in, c_out, 1), *pool) if learnable else nn.Sequential()
    )
    return ResBlock(residual, shortcut)


def d_block_optimized(norm: Norm, c_in: int, c_out: int) -> ResBlock:
    """D's first block on raw pixels: (N, c_in, H, W) -> (N, c_out, H/2, W/2)."""
    residual = nn.Sequential(
        conv(norm, _RES, c_in, c_out, 3),
        nn.ReLU(),
        conv(norm, _RES, c_out, c_out, 3),
        nn.AvgPool2d(2),
    )
    shortcut = nn.Sequential(nn.AvgPool2d(2), conv(norm, _SC, c_in, c_out, 1))
    return ResBlock(residual, shortcut)


@ARCHS.register("resnet")
class ResNet:
    """SNGAN ResNet G and D for 32x32, 48x48 and 64x64 images."""

    @staticmethod
    def generator(*, shape: tuple[int, ...], z_dim: int, width: float, norm: Norm) -> Generator:
        channels, size = image_shape(shape, "resnet")
        bottom, chs = _layout(size, _G_LAYOUT)
        chs = [scaled(c, width) for c in chs]
        layers: list[nn.Module] = [
            linear(norm, _SC, z_dim, bottom * bottom * chs[0]),
            nn.Unflatten(1, (chs[0], bottom, bottom)),
        ]
        layers += [g_block(norm, a, b) for a, b in itertools.pairwise(chs)]
        layers += [
            norm.feature(chs[-1]),
            nn.ReLU(),
            conv(norm, _SC, chs[-1], channels, 3),
            nn.Tanh(),
        ]
        return Generator(nn.Sequential(*layers), z_dim, shape)

    @staticmethod
    def discriminator(*, shape: tuple[int, ...], width: float, norm: Norm) -> Discriminator:
        channels, size = image_shape(shape, "resnet")
        first, blocks = _layout(size, _D_LAYOUT)
        c = scaled(first, width)
        layers: list[nn.Module] = [d_block_optimized(norm, channels, c)]
        for c_out, down in blocks:
            layers.append(d_block(norm, c, scaled(c_out, width), down))
            c = scaled(c_out, width)
        layers += [nn.ReLU(), SumPool2d(), linear(norm, _SC, c, 1)]
        return Discriminator(nn.Sequential(*layers), shape)
