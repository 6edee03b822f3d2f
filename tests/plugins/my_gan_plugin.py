"""An example user plugin: how to add a norm, an architecture, a loss and a dataset to gansn.

Nothing here lives inside gansn.  Importing this module registers everything by name::

    gansn-train imports=[my_gan_plugin] model.name=tiny_mlp d_norm.name=rms loss=... \\
        dataset.name=line2d

(or ``norm@d_norm=rms`` with ``conf/norm/rms.yaml`` on Hydra's search path, e.g.
``hydra.searchpath=[file:///path/to/my/conf]``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.utils.data import Dataset

from gansn.data import DATASETS
from gansn.errors import ConfigError
from gansn.losses import LOSSES, GANLoss
from gansn.nn import ARCHS, NORMS, LipschitzRule, Norm
from gansn.nn.layers import Discriminator, Generator, linear

# ---------------------------------------------------------------- a feature norm


class RMSNormChannels(nn.Module):
    """Divides each sample by the RMS over its channels (no mean subtraction), then a gain.

    ``(N, C)`` or ``(N, C, H, W)`` -> same shape.
    """

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.gain = nn.Parameter(torch.ones(num_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rms = x.pow(2).mean(dim=1, keepdim=True).add(self.eps).sqrt()
        gain = self.gain.view(1, -1, *([1] * (x.dim() - 2)))
        return x / rms * gain


def rms_gain(m: RMSNormChannels, in_shape: tuple[int, ...]) -> float:
    """The l2 Lipschitz constant of ``m``: ``max|gain| / sqrt(eps)``.

    At one position, with ``s = sqrt(|x|^2 / C + eps)``, the Jacobian of ``x / s`` is
    ``(I - x x^T / (C s^2)) / s``: ``1/s`` across ``x``, ``eps / s^3`` along it, so its norm is
    ``1/s <= 1/sqrt(eps)``, reached at ``x = 0``.  Positions and samples are independent
    (a block-diagonal Jacobian) and the gain scales channels, hence the product.
    """
    return float(m.gain.detach().abs().max()) / math.sqrt(m.eps)


@NORMS.register("rms")
class RMSNorm(Norm):
    """A feature norm: the ``feature`` hook returns the module placed after each layer.

    ``lipschitz`` declares the module's constant, so a D with this norm keeps a valid
    Lipschitz upper bound (without it the bound would be marked invalid).
    """

    name = "rms"
    lipschitz = (LipschitzRule.fixed_gain(rms_gain, RMSNormChannels),)

    def __init__(self, eps: float = 1e-6) -> None:
        if eps <= 0:
            raise ConfigError(f"rms eps must be > 0, got {eps}")
        self.eps = float(eps)

    def feature(self, num_channels: int, spatial: bool = True) -> nn.Module:
        return RMSNormChannels(num_channels, self.eps)

    def _options(self) -> dict:
        return {"eps": self.eps}


# ---------------------------------------------------------------- a weight norm


class Clip(nn.Module):
    """Weight reparametrization ``W -> clamp(W, -c, c)`` (WGAN's weight clipping, as a map)."""

    def __init__(self, c: float) -> None:
        super().__init__()
        self.c = c

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight.clamp(-self.c, self.c)


@NORMS.register("clip")
class ClipNorm(Norm):
    """A weight norm: the ``wrap`` hook reparametrizes each conv/linear weight (the bound
    then uses the clipped weight's operator norm)."""

    name = "clip"
    lipschitz = (LipschitzRule.weight_reparam(),)

    def __init__(self, c: float = 0.01) -> None:
        self.c = float(c)

    def wrap(self, layer: nn.Module) -> nn.Module:
        if isinstance(layer, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            parametrize.register_parametrization(layer, "weight", Clip(self.c))
        return layer

    def _options(self) -> dict:
        return {"c": self.c}


# ---------------------------------------------------------------- an architecture


@ARCHS.register("tiny_mlp")
class TinyMLP:
    """One hidden layer each way; calls ``norm.wrap`` (via ``linear``) and ``norm.feature``."""

    @staticmethod
    def generator(*, shape, z_dim, width, norm, hidden: int = 16) -> Generator:
        if len(shape) != 1:
            raise ConfigError(f"tiny_mlp needs point data (D,), got {tuple(shape)}")
        h = max(1, round(hidden * width))
        net = nn.Sequential(
            linear(norm, _keep, z_dim, h),
            norm.feature(h, spatial=False),
            nn.ReLU(),
            linear(norm, _keep, h, shape[0]),
        )
        return Generator(net, z_dim, shape)

    @staticmethod
    def discriminator(*, shape, width, norm, hidden: int = 16) -> Discriminator:
        h = max(1, round(hidden * width))
        net = nn.Sequential(
            linear(norm, _keep, shape[0], h),
            norm.feature(h, spatial=False),
            nn.LeakyReLU(0.2),
            linear(norm, _keep, h, 1),
        )
        return Discriminator(net, shape)


def _keep(layer: nn.Module) -> None:
    """Keep PyTorch's default initialisation."""


# ---------------------------------------------------------------- a loss


@LOSSES.register("softhinge")
class SoftHingeLoss(GANLoss):
    """Hinge with softplus corners: D softplus(1 - D(x)) + softplus(1 + D(G(z))), G -D(G(z))."""

    name = "softhinge"

    def d_loss(self, d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
        return F.softplus(1.0 - d_real).mean() + F.softplus(1.0 + d_fake).mean()

    def g_loss(self, d_fake: torch.Tensor) -> torch.Tensor:
        return -d_fake.mean()


# ---------------------------------------------------------------- a dataset


class Line2D(Dataset):
    """Points on the segment from (-1, -1) to (1, 1), following gansn.data's contract:
    ``ds[i] -> (x (2,), y 0-d int64)``, ``get_batch``, and ``name``, ``shape``,
    ``num_classes``, ``stacked`` attributes.
    """

    stacked = False

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        t = torch.rand(n, 1, generator=g) * 2 - 1
        self.data = t.repeat(1, 2)
        self.labels = (t.squeeze(1) > 0).to(torch.int64)  # two classes: left / right half
        self.name = "line2d"
        self.shape: tuple[int, ...] = (2,)
        self.num_classes: int | None = 2

    def __len__(self) -> int:
        return self.data.shape[0]

    def get_batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.data[indices], self.labels[indices]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.data[index], self.labels[index]


@DATASETS.register("line2d")
def line2d(*, train: bool = True, n: int = 256, seed: int = 0) -> Line2D:
    """Keyword options plus ``train`` (the held-out split draws with ``seed + 1``)."""
    if n < 1:
        raise ConfigError(f"dataset line2d: n must be positive, got {n}")
    return Line2D(n, seed + (0 if train else 1))
