"""Models: normalizations (NORMS), architectures (ARCHS) and their building blocks."""

from gansn.nn import dcgan, mlp, resnet  # noqa: F401 - register the built-in architectures
from gansn.nn.archs import ARCHS, ModelSpec, build_discriminator, build_generator, build_models
from gansn.nn.norms import NORMS, LipschitzRule, Norm, build_norm

__all__ = [
    "ARCHS",
    "NORMS",
    "LipschitzRule",
    "ModelSpec",
    "Norm",
    "build_discriminator",
    "build_generator",
    "build_models",
    "build_norm",
]
