"""MLP generator and discriminator for 2-D toy data (ring8, grid25).

Defaults: ReLU MLPs of ``hidden`` units, ``depth`` hidden layers each, PyTorch's default
initialisation (Kaiming-uniform, a=sqrt(5)).  Feature norms sit after every hidden linear
layer of G, and after every hidden linear layer of D but the first (D never normalizes the
raw points), always before the nonlinearity.

Options for PacGAN's synthetic-data networks (``experiment=pacgan_ring8``):
``g_hidden``/``g_depth`` and ``d_hidden``/``d_depth`` size each side separately;
``maxout=k`` replaces D's ReLUs by maxout units of ``k`` pieces (each hidden layer is then
a linear map to ``d_hidden * k`` features, its norm, and a max over groups of ``k``);
``init=normal`` draws weights from N(0, ``init_std``) with zero biases; ``g_bias=false``
drops the bias of G's hidden layers (their feature norm, when it has a shift, replaces it).
Every option works with every normalization.
"""

from __future__ import annotations

from torch import nn

from gansn.errors import ConfigError
from gansn.nn.archs import ARCHS
from gansn.nn.layers import (
    Discriminator,
    Generator,
    Init,
    Maxout,
    default_init,
    linear,
    normal_init,
    scaled,
)
from gansn.nn.norms import Norm

INITS = ("default", "normal")


def _dim(shape: tuple[int, ...]) -> int:
    if len(shape) != 1:
        raise ConfigError(
            f"the mlp architecture is for point data of shape (D,), got {tuple(shape)}; "
            "use dcgan or resnet for images"
        )
    return shape[0]


def _init(init: str, init_std: float) -> Init:
    if init == "default":
        return default_init
    if init == "normal":
        if not init_std > 0:
            raise ConfigError(f"model.options.init_std must be > 0, got {init_std!r}")
        return normal_init(float(init_std))
    raise ConfigError(f"model.options.init must be one of {', '.join(INITS)}, got {init!r}")


def _size(name: str, value: int | None, default: int, minimum: int) -> int:
    value = default if value is None else value
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"model.options.{name} must be an integer >= {minimum}, got {value!r}")
    return value


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
        g_hidden: int | None = None,
        g_depth: int | None = None,
        g_bias: bool = True,
        init: str = "default",
        init_std: float = 0.02,
        d_hidden: int | None = None,  # D's options: one options dict serves both sides
        d_depth: int | None = None,
        maxout: int = 1,
    ) -> Generator:
        """(N, z_dim) -> (N, D)."""
        h = scaled(_size("g_hidden", g_hidden, hidden, 1), width)
        depth = _size("g_depth", g_depth, depth, 0)
        init_fn = _init(init, init_std)
        out_dim = _dim(shape)
        layers: list[nn.Module] = []
        f_in = z_dim
        for _ in range(depth):
            layers += [
                linear(norm, init_fn, f_in, h, bias=bool(g_bias)),
                norm.feature(h, spatial=False),
                nn.ReLU(),
            ]
            f_in = h
        layers.append(linear(norm, init_fn, f_in, out_dim))
        return Generator(nn.Sequential(*layers), z_dim, shape)

    @staticmethod
    def discriminator(
        *,
        shape: tuple[int, ...],
        width: float,
        norm: Norm,
        hidden: int = 128,
        depth: int = 3,
        d_hidden: int | None = None,
        d_depth: int | None = None,
        maxout: int = 1,
        init: str = "default",
        init_std: float = 0.02,
        g_hidden: int | None = None,  # G's options: one options dict serves both sides
        g_depth: int | None = None,
        g_bias: bool = True,
    ) -> Discriminator:
        """(N, D) -> (N,) logits."""
        h = scaled(_size("d_hidden", d_hidden, hidden, 1), width)
        depth = _size("d_depth", d_depth, depth, 0)
        pieces = _size("maxout", maxout, 1, 1)
        init_fn = _init(init, init_std)
        layers: list[nn.Module] = []
        f_in = _dim(shape)
        for i in range(depth):
            layers.append(linear(norm, init_fn, f_in, h * pieces))
            if i > 0:
                layers.append(norm.feature(h * pieces, spatial=False))
            layers.append(Maxout(pieces) if pieces > 1 else nn.ReLU())
            f_in = h
        layers.append(linear(norm, init_fn, f_in, 1))
        return Discriminator(nn.Sequential(*layers), shape)
