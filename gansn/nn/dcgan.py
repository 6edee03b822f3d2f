"""The standard CNN of the SNGAN paper (Miyato et al. 2018, Table 3; chainer-gan-lib).

Initialisation, as in chainer-gan-lib's DCGAN models: every conv/linear weight ~ N(0, 0.02),
biases 0; normalization gains start at 1.

Feature norms (batch, instance, layer, group) sit after every G layer but the last, and
after every D conv but the first (the DCGAN convention: D never normalizes raw pixels).
"""

from __future__ import annotations

import itertools

from torch import nn

from gansn.errors import ConfigError
from gansn.nn.archs import ARCHS, image_shape
from gansn.nn.layers import Discriminator, Generator, conv, deconv, linear, normal_init, scaled
from gansn.nn.norms import Norm


def _bottom(size: int) -> int:
    if size % 8 or size < 16:
        raise ConfigError(
            f"dcgan upsamples a (size/8)x(size/8) map three times, so the image size must be "
            f"a multiple of 8 and at least 16 (e.g. 32, 48, 64); got {size}. Set "
            "dataset.img_size accordingly."
        )
    return size // 8


@ARCHS.register("dcgan")
class DCGAN:
    """G: z -> linear (s/8)^2 x 512 -> 3 x deconv4 s2 (halving) -> conv3 -> tanh.

    D: conv3 64, conv4 s2 128, conv3 128, conv4 s2 256, conv3 256, conv4 s2 512, conv3 512,
    linear -> 1, LeakyReLU(0.1).  Channel counts are multiplied by ``width``.
    """

    @staticmethod
    def generator(
        *, shape: tuple[int, ...], z_dim: int, width: float, norm: Norm, init_std: float = 0.02
    ) -> Generator:
        channels, size = image_shape(shape, "dcgan")
        b, init = _bottom(size), normal_init(init_std)
        ch = [scaled(c, width) for c in (512, 256, 128, 64)]
        layers: list[nn.Module] = [
            linear(norm, init, z_dim, b * b * ch[0]),
            nn.Unflatten(1, (ch[0], b, b)),
            norm.feature(ch[0]),
            nn.ReLU(),
        ]
        for c_in, c_out in itertools.pairwise(ch):
            layers += [deconv(norm, init, c_in, c_out, 4, 2, 1), norm.feature(c_out), nn.ReLU()]
        layers += [conv(norm, init, ch[-1], channels, 3), nn.Tanh()]
        return Generator(nn.Sequential(*layers), z_dim, shape)

    @staticmethod
    def discriminator(
        *, shape: tuple[int, ...], width: float, norm: Norm, init_std: float = 0.02
    ) -> Discriminator:
        channels, size = image_shape(shape, "dcgan")
        b, init = _bottom(size), normal_init(init_std)
        c64, c128, c256, c512 = (scaled(c, width) for c in (64, 128, 256, 512))
        plan = [  # (c_in, c_out, kernel, stride)
            (channels, c64, 3, 1),
            (c64, c128, 4, 2),
            (c128, c128, 3, 1),
            (c128, c256, 4, 2),
            (c256, c256, 3, 1),
            (c256, c512, 4, 2),
            (c512, c512, 3, 1),
        ]
        layers: list[nn.Module] = []
        for i, (c_in, c_out, k, s) in enumerate(plan):
            layers.append(conv(norm, init, c_in, c_out, k, s, padding=1))
            if i > 0:
                layers.append(norm.feature(c_out))
            layers.append(nn.LeakyReLU(0.1))
        layers += [nn.Flatten(), linear(norm, init, b * b * c512, 1)]
        return Discriminator(nn.Sequential(*layers), shape)
