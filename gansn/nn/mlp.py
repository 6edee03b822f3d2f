"""MLP generator and discriminator for 2-D toy data (ring8, grid25).

Sizes follow the toy experiments of Unrolled GAN / PacGAN (ReLU MLPs, a few hundred units).
Initialisation: PyTorch's default (Kaiming-uniform, a=sqrt(5)).  Feature norms sit after
every hidden layer of G, and after every hidden layer of D but the first.
"""

from __future__ import annotations

from torch import nn

from gansn.errors import ConfigError
from gansn.nn.archs import ARCHS
from gansn.nn.layers import Discriminator, Generator, default_init, linear, scaled
from gansn.nn.norms import Norm


def _dim(shape: tuple[int, ...]) -> int:
    if len(shape) != 1:
        raise ConfigError(
            f"the mlp architecture is for point data of shape (D,), got {tuple(shape)}; "
            "use dcgan or resnet for images"
        )
    return shape[0]


@ARCHS.register("mlp")
class MLP:
    """G: z -> [linear, norm, ReLU] x depth -> linear -> point; D: mirror -> 1 logit."""

    @staticmethod
    def generator(
        *,
        shape: tuple[int, ...],
        z_dim: int,
        width: float,
        norm: Norm,
        hidden: int = 128,
        depth: int = 3,
    ) -> Generator:
        h = scaled(hidden, width)
        layers: list[nn.Module] = []
        f_in = z_dim
        for _ in range(depth):
            layers += [
                linear(norm, default_init, f_in, h),
                norm.feature(h, spatial=False),
                nn.ReLU(),
            ]
            f_in = h
        layers.append(linear(norm, default_init, f_in, _dim(shape)))
        return Generator(nn.Sequential(*layers), z_dim, shape)

    @staticmethod
    def discriminator(
        *, shape: tuple[int, ...], width: float, norm: Norm, hidden: int = 128, depth: int = 3
    ) -> Discriminator:
        h = scaled(hidden, width)
        layers: list[nn.Module] = []
        f_in = _dim(shape)
        for i in range(depth):
            layers.append(linear(norm, default_init, f_in, h))
            if i > 0:
                layers.append(norm.feature(h, spatial=False))
            layers.append(nn.ReLU())
            f_in = h
        layers.append(linear(norm, default_init, f_in, 1))
        return Discriminator(nn.Sequential(*layers), shape)
