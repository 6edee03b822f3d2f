"""GAN objectives, registered in ``LOSSES``.

A loss turns D's logits into the two scalars the trainer minimises::

    d_loss(d_real: (N,), d_fake: (N,)) -> ()      # minimised by D
    g_loss(d_fake: (N,)) -> ()                     # minimised by G
    penalty(D, real, fake) -> () | None            # extra D term (gradient penalty)

Register your own with ``@LOSSES.register("name")`` on a ``GANLoss`` subclass.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gansn.errors import ConfigError
from gansn.registry import Registry, check_options

LOSSES: Registry[type[GANLoss]] = Registry("loss")


class GANLoss:
    """Base class; subclasses implement ``d_loss`` and ``g_loss``."""

    name = "base"

    def d_loss(self, d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def g_loss(self, d_fake: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def penalty(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor | None:
        return None


@LOSSES.register("hinge")
class HingeLoss(GANLoss):
    """Hinge loss (Lim & Ye 2017; SNGAN ResNet): D max(0,1-D(x)) + max(0,1+D(G(z))), G -D(G(z))."""

    name = "hinge"

    def d_loss(self, d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
        return F.relu(1.0 - d_real).mean() + F.relu(1.0 + d_fake).mean()

    def g_loss(self, d_fake: torch.Tensor) -> torch.Tensor:
        return -d_fake.mean()


@LOSSES.register("nonsaturating")
class NonSaturatingLoss(GANLoss):
    """The standard GAN loss (Goodfellow et al. 2014) with G's non-saturating objective.

    D minimises BCE with logits: softplus(-D(x)) + softplus(D(G(z))); G minimises
    softplus(-D(G(z))) = -log sigmoid(D(G(z))).
    """

    name = "nonsaturating"

    def d_loss(self, d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
        return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()

    def g_loss(self, d_fake: torch.Tensor) -> torch.Tensor:
        return F.softplus(-d_fake).mean()


def gradient_penalty(
    D: nn.Module, real: torch.Tensor, fake: torch.Tensor, target: float = 1.0
) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017): E[(||grad_x D(x_hat)||_2 - target)^2].

    x_hat = eps * real + (1 - eps) * fake with eps ~ U(0, 1) per sample; real, fake: (N, ...).
    """
    eps = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), device=real.device)
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - target) ** 2).mean()


@LOSSES.register("wasserstein")
class WassersteinLoss(GANLoss):
    """WGAN critic loss D(G(z)) - D(x), G -D(G(z)), with an optional gradient penalty."""

    name = "wasserstein"

    def __init__(self, gp_weight: float = 0.0) -> None:
        if gp_weight < 0:
            raise ConfigError(f"loss.gp_weight must be >= 0, got {gp_weight}")
        self.gp_weight = float(gp_weight)

    def d_loss(self, d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
        return d_fake.mean() - d_real.mean()

    def g_loss(self, d_fake: torch.Tensor) -> torch.Tensor:
        return -d_fake.mean()

    def penalty(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor | None:
        if self.gp_weight == 0:
            return None
        return self.gp_weight * gradient_penalty(D, real, fake)


@LOSSES.register("lsgan")
class LeastSquaresLoss(GANLoss):
    """Least-squares GAN (Mao et al. 2017), 0-1 coding.

    D minimises ½(D(x)-1)² + ½D(G(z))², G minimises ½(D(G(z))-1)².
    """

    name = "lsgan"

    def d_loss(self, d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((d_real - 1.0) ** 2).mean() + 0.5 * (d_fake**2).mean()

    def g_loss(self, d_fake: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((d_fake - 1.0) ** 2).mean()


def build_loss(cfg: dict[str, Any] | str) -> GANLoss:
    """``{"name": "wasserstein", "gp_weight": 10}`` (or a name) -> a ``GANLoss``."""
    cfg = {"name": cfg} if isinstance(cfg, str) else dict(cfg)
    name = cfg.pop("name")
    cls = LOSSES.get(name)
    check_options(f"loss {name!r}", cls, cfg)
    try:
        return cls(**cfg)
    except TypeError as err:
        raise ConfigError(f"loss {name!r}: {err} (options given: {sorted(cfg)})") from None
