"""Normalizations as registered objects with two hooks.

Every architecture calls, for every layer it builds, ``norm.wrap(layer)`` (which may
reparametrize the layer's weight: spectral, weight) and ``norm.feature(channels)`` at each
point where a feature normalization may sit (which returns a module: batch, instance,
layer, group, or ``nn.Identity``).  Architectures never ask which norm they were given.

Each norm also declares, in its class attribute ``lipschitz``, how the modules it places in
a network enter the discriminator's Lipschitz upper bound (:class:`LipschitzRule`;
:mod:`gansn.lipschitz` reads it).  Register your own::

    from torch import nn
    from gansn.nn.norms import NORMS, LipschitzRule, Norm

    @NORMS.register("rms")
    class RMSNorm(Norm):
        # MyRMSNorm's l2 Lipschitz constant; without a rule D's bound is marked invalid
        lipschitz = (LipschitzRule.fixed_gain(my_rms_gain, MyRMSNorm),)

        def feature(self, num_channels, spatial=True):
            return MyRMSNorm(num_channels)

and select it with ``norm@d_norm=...`` (a YAML file in your config path) or
``d_norm.name=rms imports=[my_module]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn
from torch.nn.utils import parametrizations, parametrize

from gansn.errors import ConfigError
from gansn.registry import Registry, check_options

NORMS: Registry[type[Norm]] = Registry("normalization")

_WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.Linear)

# (module, its input shape (1, ...)) -> its l2 Lipschitz constant
GainFn = Callable[[nn.Module, tuple[int, ...]], float]


@dataclass(frozen=True)
class LipschitzRule:
    """How the modules a norm builds enter D's Lipschitz upper bound (docs/lipschitz.md).

    A norm lists its rules in its class attribute ``Norm.lipschitz``; the tracker in
    :mod:`gansn.lipschitz` looks a module's type up among the registered norms' rules (along
    the MRO), so a plugin's norm is bounded without edits to gansn.  Three kinds:

    ``weight``
        ``wrap`` reparametrizes conv/linear weights (``torch.nn.utils.parametrize``): the
        layer's factor is the operator norm of the weight its forward uses, whatever the
        parametrization, so there are no module types to name.
    ``feature``
        ``feature`` returns a standardizing normalization with attributes ``eps``, an optional
        affine ``weight`` and optional ``running_var`` (torch's batch / instance / layer /
        group norm): its factor is ``max|weight| / sqrt(eps)`` (any statistics), or with
        ``bound_mode="eval"`` and running statistics the exact eval-mode gain.
    ``gain``
        ``feature`` returns modules whose l2 Lipschitz constant is ``gain(module, in_shape)``.

    A module that no rule (and no ``gansn.lipschitz.register_leaf``) covers is unknown: the
    run's upper bound is marked invalid (NaN), never silently wrong.
    """

    kind: Literal["weight", "feature", "gain"]
    modules: tuple[type[nn.Module], ...] = ()  # the module types ``feature`` returns
    gain: GainFn | None = None  # the constant, for kind "gain"

    def __post_init__(self) -> None:
        if self.kind not in ("weight", "feature", "gain"):
            raise ValueError(f"LipschitzRule kind must be weight, feature or gain: {self.kind!r}")
        if (self.kind == "gain") != (self.gain is not None):
            raise ValueError("a LipschitzRule has a gain function exactly when its kind is gain")
        if self.kind != "weight" and not self.modules:
            raise ValueError(f"a {self.kind!r} LipschitzRule names the module types it covers")

    @classmethod
    def weight_reparam(cls) -> LipschitzRule:
        """``wrap`` only reparametrizes weights: bounded by the effective weight's norm."""
        return cls("weight")

    @classmethod
    def feature_norm(cls, *modules: type[nn.Module]) -> LipschitzRule:
        """``modules`` standardize with ``eps`` (+ optional ``weight``, ``running_var``)."""
        return cls("feature", tuple(modules))

    @classmethod
    def fixed_gain(cls, gain: GainFn, *modules: type[nn.Module]) -> LipschitzRule:
        """``modules`` have the l2 Lipschitz constant ``gain(module, in_shape)``."""
        return cls("gain", tuple(modules), gain)


class Norm:
    """Base class: the identity normalization.

    ``wrap(layer) -> layer`` reparametrizes a conv/linear layer's weight in place;
    ``feature(num_channels, spatial) -> nn.Module`` builds the module placed after a layer:
    on ``(N, C, H, W)`` maps when ``spatial`` is true, on ``(N, C)`` vectors otherwise.
    ``lipschitz`` declares how the modules it builds enter D's Lipschitz bound
    (:class:`LipschitzRule`); the identity builds only ``nn.Identity``, which is known.
    """

    name = "none"
    lipschitz: tuple[LipschitzRule, ...] = ()

    def __init__(self, **options: Any) -> None:
        if options:
            raise ConfigError(
                f"normalization {self.name!r} takes no options, got {sorted(options)}"
            )

    def wrap(self, layer: nn.Module) -> nn.Module:
        return layer

    def feature(self, num_channels: int, spatial: bool = True) -> nn.Module:
        return nn.Identity()

    def spec(self) -> dict[str, Any]:
        """A plain dict that rebuilds this norm with :func:`build_norm`."""
        return {"name": self.name, **self._options()}

    def _options(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self._options().items())
        return f"{type(self).__name__}({opts})"


@NORMS.register("none")
class NoNorm(Norm):
    """No normalization at all."""

    name = "none"


class SpectralNormFP32(parametrizations._SpectralNorm):
    """torch's spectral-norm parametrization, with the power iteration and sigma in fp32.

    Under autocast ``torch.mv`` runs in fp16/bf16, whose rounding (and ``F.normalize``'s
    eps, which underflows in fp16) corrupts ``u``, ``v`` and sigma; the division
    ``W / sigma`` then no longer gives sigma(W) = 1.  Autocast is switched off for this
    parametrization only, so the layer's own conv/matmul still runs in low precision.
    Without autocast it computes exactly what torch's class does (same buffers, same
    state-dict keys).
    """

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        with torch.autocast(weight.device.type, enabled=False):
            return super().forward(weight.float()).to(weight.dtype)


@NORMS.register("spectral")
class SpectralNorm(Norm):
    """Spectral normalization (Miyato et al. 2018): W / sigma(W), sigma by power iteration.

    Uses ``torch.nn.utils.parametrizations.spectral_norm``: its u/v vectors are buffers, so
    ``deepcopy`` (EMA) and ``state_dict`` carry them.  Transposed convs are normalized over
    dim 1, as torch does by default.
    """

    name = "spectral"
    lipschitz = (LipschitzRule.weight_reparam(),)

    def __init__(self, n_power_iterations: int = 1, eps: float = 1e-12) -> None:
        if n_power_iterations < 1:
            raise ConfigError(f"spectral n_power_iterations must be >= 1, got {n_power_iterations}")
        self.n_power_iterations = int(n_power_iterations)
        self.eps = float(eps)

    def wrap(self, layer: nn.Module) -> nn.Module:
        if not isinstance(layer, _WEIGHTED):
            return layer
        # what parametrizations.spectral_norm does, with the fp32 subclass below
        dim = 1 if isinstance(layer, nn.ConvTranspose2d) else 0
        parametrize.register_parametrization(
            layer,
            "weight",
            SpectralNormFP32(layer.weight, self.n_power_iterations, dim, self.eps),
        )
        return layer

    def _options(self) -> dict[str, Any]:
        return {"n_power_iterations": self.n_power_iterations, "eps": self.eps}


@NORMS.register("weight")
class WeightNorm(Norm):
    """Weight normalization (Salimans & Kingma 2016): W = g * V / ||V||, per output unit."""

    name = "weight"
    lipschitz = (LipschitzRule.weight_reparam(),)

    def wrap(self, layer: nn.Module) -> nn.Module:
        if not isinstance(layer, _WEIGHTED):
            return layer
        # output units are dim 1 of a ConvTranspose weight (in, out, kh, kw)
        dim = 1 if isinstance(layer, nn.ConvTranspose2d) else 0
        return parametrizations.weight_norm(layer, dim=dim)


@NORMS.register("batch")
class BatchNorm(Norm):
    """Batch normalization (Ioffe & Szegedy 2015)."""

    name = "batch"
    lipschitz = (LipschitzRule.feature_norm(nn.modules.batchnorm._BatchNorm),)

    def __init__(self, momentum: float = 0.1, eps: float = 1e-5, affine: bool = True) -> None:
        self.momentum, self.eps, self.affine = float(momentum), float(eps), bool(affine)

    def feature(self, num_channels: int, spatial: bool = True) -> nn.Module:
        cls = nn.BatchNorm2d if spatial else nn.BatchNorm1d
        return cls(num_channels, eps=self.eps, momentum=self.momentum, affine=self.affine)

    def _options(self) -> dict[str, Any]:
        return {"momentum": self.momentum, "eps": self.eps, "affine": self.affine}


@NORMS.register("instance")
class InstanceNorm(Norm):
    """Instance normalization (Ulyanov et al. 2016), with a learned per-channel affine.

    On ``(N, C)`` vectors a channel has a single value per sample, so "per instance, per
    channel" is degenerate (always 0); there it normalizes each sample over its features,
    which is what instance norm computes when the whole vector is one instance.
    """

    name = "instance"
    lipschitz = (LipschitzRule.feature_norm(nn.modules.instancenorm._InstanceNorm, nn.LayerNorm),)

    def __init__(self, eps: float = 1e-5, affine: bool = True) -> None:
        self.eps, self.affine = float(eps), bool(affine)

    def feature(self, num_channels: int, spatial: bool = True) -> nn.Module:
        if spatial:
            return nn.InstanceNorm2d(num_channels, eps=self.eps, affine=self.affine)
        return nn.LayerNorm(num_channels, eps=self.eps, elementwise_affine=self.affine)

    def _options(self) -> dict[str, Any]:
        return {"eps": self.eps, "affine": self.affine}


@NORMS.register("layer")
class LayerNorm(Norm):
    """Layer normalization (Ba et al. 2016) over (C, H, W) with a per-channel affine.

    On maps it is ``GroupNorm(1, C)``: the statistics cover the whole layer, but the gain
    and bias are per channel, so one module works at every resolution (4x4 to 64x64).
    """

    name = "layer"
    lipschitz = (LipschitzRule.feature_norm(nn.GroupNorm, nn.LayerNorm),)

    def __init__(self, eps: float = 1e-5, affine: bool = True) -> None:
        self.eps, self.affine = float(eps), bool(affine)

    def feature(self, num_channels: int, spatial: bool = True) -> nn.Module:
        if spatial:
            return nn.GroupNorm(1, num_channels, eps=self.eps, affine=self.affine)
        return nn.LayerNorm(num_channels, eps=self.eps, elementwise_affine=self.affine)

    def _options(self) -> dict[str, Any]:
        return {"eps": self.eps, "affine": self.affine}


@NORMS.register("group")
class GroupNorm(Norm):
    """Group normalization (Wu & He 2018).

    When ``num_groups`` does not divide the channel count (narrow test models), the largest
    divisor of the channel count not above ``num_groups`` is used, so any width builds.
    """

    name = "group"
    lipschitz = (LipschitzRule.feature_norm(nn.GroupNorm),)

    def __init__(self, num_groups: int = 32, eps: float = 1e-5, affine: bool = True) -> None:
        if num_groups < 1:
            raise ConfigError(f"group num_groups must be >= 1, got {num_groups}")
        self.num_groups, self.eps, self.affine = int(num_groups), float(eps), bool(affine)

    def groups_for(self, num_channels: int, spatial: bool = True) -> int:
        """Largest divisor of ``num_channels`` not above ``num_groups``.

        On ``(N, C)`` vectors a group of one channel holds a single value, which group norm
        maps to its bias whatever the input (zero gradient); there groups keep >= 2 channels.
        """
        min_size = 1 if spatial else min(2, num_channels)
        return max(
            g
            for g in range(1, min(self.num_groups, num_channels) + 1)
            if num_channels % g == 0 and num_channels // g >= min_size
        )

    def feature(self, num_channels: int, spatial: bool = True) -> nn.Module:
        # GroupNorm accepts (N, C) and (N, C, H, W) alike
        return nn.GroupNorm(
            self.groups_for(num_channels, spatial), num_channels, eps=self.eps, affine=self.affine
        )

    def _options(self) -> dict[str, Any]:
        return {"num_groups": self.num_groups, "eps": self.eps, "affine": self.affine}


def build_norm(cfg: dict[str, Any] | str | Norm) -> Norm:
    """``{"name": "group", "num_groups": 16}`` (or just ``"group"``) -> a ``Norm``."""
    if isinstance(cfg, Norm):
        return cfg
    if isinstance(cfg, str):
        cfg = {"name": cfg}
    cfg = dict(cfg)
    name = cfg.pop("name")
    cls = NORMS.get(name)
    check_options(f"normalization {name!r}", cls, cfg)
    try:
        norm = cls(**cfg)
    except TypeError as err:  # an unknown option key: a config mistake, not a crash
        raise ConfigError(f"normalization {name!r}: {err}") from None
    norm.name = name  # a user class registered under another name still reports it
    return norm


def uses_batch_stats(module: nn.Module) -> bool:
    """Whether ``module`` contains batch norm (its forward depends on the whole batch)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


__all__ = ["NORMS", "LipschitzRule", "Norm", "build_norm", "uses_batch_stats"]
