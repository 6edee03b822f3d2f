"""The architecture registry and the spec that rebuilds a model without Hydra.

An architecture is any object with two methods::

    generator(*, shape, z_dim, width, norm, **options) -> nn.Module     # (N, z_dim) -> (N, *shape)
    discriminator(*, shape, width, norm, **options) -> nn.Module        # (N, *shape) -> (N,)

registered in ``ARCHS``.  ``shape`` is the data shape, ``(C, H, W)`` for images or ``(D,)``
for points; an architecture that cannot produce it raises ``ConfigError``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from torch import nn

from gansn.errors import ConfigError
from gansn.nn.norms import build_norm
from gansn.registry import Registry, check_options

ARCHS: Registry[Any] = Registry("architecture")


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild G and D: stored in every checkpoint."""

    arch: str
    shape: tuple[int, ...]
    z_dim: int
    width: float = 1.0
    g_norm: dict[str, Any] = field(default_factory=lambda: {"name": "batch"})
    d_norm: dict[str, Any] = field(default_factory=lambda: {"name": "spectral"})
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["shape"] = list(self.shape)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelSpec:
        d = dict(d)
        d["shape"] = tuple(d["shape"])
        return cls(**d)

    def differences(self, other: ModelSpec) -> list[str]:
        """Human-readable fields that differ, e.g. ``["d_norm: spectral -> batch"]``."""
        return _diff(self.to_dict(), other.to_dict(), "")


def _diff(a: Any, b: Any, prefix: str) -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        if prefix and a.get("name", b.get("name")) != b.get("name", a.get("name")):
            return [f"{prefix}: {a.get('name')} -> {b.get('name')}"]  # another norm entirely
        out = []
        for key in list(a) + [k for k in b if k not in a]:
            out += _diff(a.get(key), b.get(key), f"{prefix}.{key}" if prefix else key)
        return out
    return [] if a == b else [f"{prefix}: {a} -> {b}"]


def _arch(spec: ModelSpec) -> Any:
    import gansn.nn  # noqa: F401 - registers the built-in architectures

    return ARCHS.get(spec.arch)


def _call(fn: Any, what: str, spec: ModelSpec, **kwargs: Any) -> nn.Module:
    check_options(f"architecture {spec.arch!r} {what} (model.options)", fn, spec.options, kwargs)
    try:
        return fn(**kwargs, **spec.options)
    except TypeError as err:
        if "unexpected keyword" in str(err):
            raise ConfigError(f"architecture {spec.arch!r} {what}: {err}") from None
        raise


def build_generator(spec: ModelSpec) -> nn.Module:
    """Build G from a spec: (N, z_dim) -> (N, *spec.shape)."""
    return _call(
        _arch(spec).generator,
        "generator",
        spec,
        shape=spec.shape,
        z_dim=spec.z_dim,
        width=spec.width,
        norm=build_norm(spec.g_norm),
    )


def build_discriminator(spec: ModelSpec) -> nn.Module:
    """Build D from a spec: (N, *spec.shape) -> (N,)."""
    return _call(
        _arch(spec).discriminator,
        "discriminator",
        spec,
        shape=spec.shape,
        width=spec.width,
        norm=build_norm(spec.d_norm),
    )


def build_models(spec: ModelSpec) -> tuple[nn.Module, nn.Module]:
    return build_generator(spec), build_discriminator(spec)


def image_shape(shape: tuple[int, ...], arch: str) -> tuple[int, int]:
    """Check an image shape ``(C, H, W)`` with H == W; return ``(C, size)``."""
    if len(shape) != 3 or shape[1] != shape[2]:
        raise ConfigError(
            f"architecture {arch!r} needs square images (C, H, W), but the dataset gives "
            f"shape {tuple(shape)}; use the mlp architecture for point data"
        )
    return shape[0], shape[1]
