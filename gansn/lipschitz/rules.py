"""How a bound walks D's module tree: constants of parameter-free leaves, container rules,
and the rules registered norms declare for the modules they build.

All are keyed by module type and looked up along the MRO, so a subclass inherits its
parent's rule unless it has its own.  Register a plugin's modules with
:func:`register_leaf` / :func:`register_container`; a norm declares its modules' rules in
its ``lipschitz`` attribute (:class:`gansn.nn.norms.LipschitzRule`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from torch import nn

from gansn.nn.layers import Discriminator, Generator, Maxout, ResBlock, SumPool2d
from gansn.nn.norms import NORMS, LipschitzRule


class LipschitzError(TypeError):
    """D contains a module whose Lipschitz constant gansn does not know.

    Register one with :func:`register_leaf` (or :func:`register_container` for a module
    whose children the bound must walk), or pass ``strict=False`` to mark the bound invalid.
    """


# (module, its input shape (1, ...)) -> its l2 Lipschitz constant
LeafRule = Callable[[nn.Module, tuple[int, ...]], float]
# (container, bound of a child) -> the container's constant
ContainerRule = Callable[[nn.Module, Callable[[nn.Module], float]], float]

_LEAF_RULES: dict[type, LeafRule] = {}
_CONTAINER_RULES: dict[type, ContainerRule] = {}

# leaves whose constant depends on the input shape, so one module called on two shapes
# would need two constants
SHAPE_DEPENDENT_LEAVES = (SumPool2d, nn.Upsample)


def register_leaf(cls: type, rule: LeafRule) -> None:
    """Declare the l2 Lipschitz constant of a parameter-free module type.

    ``rule(module, in_shape)`` gets the module and its input shape ``(1, ...)``.
    """
    _LEAF_RULES[cls] = rule


def register_container(cls: type, rule: ContainerRule) -> None:
    """Declare how a container's bound combines its children's.

    ``rule(module, bound)`` returns the container's constant, calling ``bound(child)`` for the
    children its forward uses (e.g. a product for a chain, a sum for parallel branches).
    """
    _CONTAINER_RULES[cls] = rule


def _lookup(table: dict[type, Any], module: nn.Module) -> Any:
    for cls in type(module).__mro__:
        if cls in table:
            return table[cls]
    return None


def leaf_rule(module: nn.Module) -> LeafRule | None:
    """The registered rule of ``module``'s type (or the nearest base class), or ``None``."""
    return _lookup(_LEAF_RULES, module)


def container_rule(module: nn.Module) -> ContainerRule | None:
    """The registered container rule of ``module``'s type (or a base class), or ``None``."""
    return _lookup(_CONTAINER_RULES, module)


def norm_rule(module: nn.Module) -> LipschitzRule | None:
    """The rule a registered norm declares for ``module``'s type (or a base class), or ``None``.

    Read from the registry at each call, so a norm registered by a plugin after import
    counts; where two norms name one type, the first by name wins (built-ins agree).
    """
    table: dict[type, LipschitzRule] = {}
    for _, norm in NORMS.entries():
        for rule in getattr(norm, "lipschitz", ()):
            for cls in rule.modules:
                table.setdefault(cls, rule)
    return _lookup(table, module)


def fixed_rule(module: nn.Module) -> LeafRule | None:
    """``module``'s constant: the gain its norm declares, else a registered leaf rule."""
    rule = norm_rule(module)
    if rule is not None and rule.kind == "gain":
        return rule.gain
    return leaf_rule(module)


def readable_name(path: str) -> str:
    """``net.1.residual.2`` -> ``net1/residual2``: indices glued to their container."""
    out: list[str] = []
    for part in path.split("."):
        if part.isdigit() and out:
            out[-1] += part
        elif part:
            out.append(part)
    return "/".join(out) or "root"


def _kind_and_suffix(m: nn.Module) -> tuple[str, str]:
    """A layer's kind (what it is numbered as) and what it says about its shape."""
    if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d)):
        k = "x".join(str(v) for v in _pair(m.kernel_size, 2))
        stride = max(_pair(m.stride, 2))
        kind = "deconv" if isinstance(m, nn.ConvTranspose2d) else "conv"
        return kind, f"_{k}" + (f"_s{stride}" if stride > 1 else "")
    if isinstance(m, nn.Linear):
        return "linear", ""
    if isinstance(m, nn.modules.batchnorm._BatchNorm):
        return "bn", ""
    if isinstance(m, nn.modules.instancenorm._InstanceNorm):
        return "in", ""
    if isinstance(m, nn.LayerNorm) or (isinstance(m, nn.GroupNorm) and m.num_groups == 1):
        return "ln", ""
    if isinstance(m, nn.GroupNorm):
        return "gn", ""
    if isinstance(m, nn.Sequential):  # an empty one: an identity shortcut
        return "identity", ""
    return type(m).__name__.lower(), ""


def layer_names(module: nn.Module) -> dict[str, str]:
    """``{module path: name}`` for every leaf, names that say what the layer is.

    Layers are numbered per kind in forward order (``conv1_3x3``, ``conv2_4x4_s2``, ``bn1``,
    ``linear``; the number is left out when the kind occurs once); inside residual blocks
    the block comes first and the shortcut is marked (``block2/conv1_3x3``,
    ``block2/shortcut_conv1_1x1``).  Leaves of a spectral/weight-norm wrapper's
    parametrization are skipped; a name that still collides gets its path appended.
    """
    blocks = [p for p, m in module.named_modules() if isinstance(m, ResBlock)]
    leaves = [
        (p, m)
        for p, m in module.named_modules()
        if p
        and not list(m.children())
        and "parametrizations" not in p.split(".")
        and not isinstance(m, ResBlock)
    ]
    # also wrapped layers: their children are the parametrization modules
    leaves += [
        (p, m)
        for p, m in module.named_modules()
        if hasattr(m, "parametrizations") and "parametrizations" not in p.split(".")
    ]
    order = {p: i for i, (p, _) in enumerate(module.named_modules())}
    leaves = sorted(dict(leaves).items(), key=lambda pm: order[pm[0]])

    def scope(path: str) -> tuple[str, str]:
        owner = max((b for b in blocks if path.startswith(b + ".")), key=len, default="")
        prefix = f"block{blocks.index(owner) + 1}/" if owner else ""
        inner = path[len(owner) + 1 :]
        shortcut = owner and (inner == "shortcut" or inner.startswith("shortcut."))
        return prefix, "shortcut_" if shortcut else ""

    counts: dict[tuple[str, str, str], int] = {}
    for path, m in leaves:
        key = (*scope(path), _kind_and_suffix(m)[0])
        counts[key] = counts.get(key, 0) + 1
    seen: dict[tuple[str, str, str], int] = {}
    names: dict[str, str] = {}
    for path, m in leaves:
        kind, suffix = _kind_and_suffix(m)
        key = (*scope(path), kind)
        seen[key] = seen.get(key, 0) + 1
        number = str(seen[key]) if counts[key] > 1 else ""
        names[path] = f"{key[0]}{key[1]}{kind}{number}{suffix}"
    taken: dict[str, int] = {}
    for name in names.values():
        taken[name] = taken.get(name, 0) + 1
    return {p: n if taken[n] == 1 else f"{n}@{readable_name(p)}" for p, n in names.items()}


# ----------------------------------------------------------------------------------------
# Parameter-free layers


def _pair(v: Any, n: int = 2) -> tuple[int, ...]:
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * n


def _avgpool_constant(m: nn.Module, in_shape: tuple[int, ...]) -> float:
    # Each output is the mean of a kh x kw window: a matrix A with row sums 1 and entries
    # 1/(kh*kw).  By Schur's test ||A||_2 <= sqrt(||A||_1 ||A||_inf); ||A||_inf = 1 and a
    # pixel lies in at most ceil(kh/sh)*ceil(kw/sw) windows, so ||A||_1 <= that / (kh*kw).
    # Non-overlapping k x k (stride k) pooling: rows are disjoint, each of norm
    # sqrt(k^2)/k^2 = 1/k, so the bound is attained: exactly 1/k.
    k, s = _pair(m.kernel_size), _pair(m.stride if m.stride is not None else m.kernel_size)
    pad = _pair(m.padding)
    if (
        getattr(m, "ceil_mode", False)
        or (any(pad) and not m.count_include_pad)
        or getattr(m, "divisor_override", None)
    ):
        raise LipschitzError(
            f"{m}: only AvgPool2d without ceil_mode/divisor_override and "
            "with count_include_pad=True (if padded) is supported"
        )
    overlap = math.ceil(k[0] / s[0]) * math.ceil(k[1] / s[1])
    return math.sqrt(overlap / (k[0] * k[1]))


def _maxpool_constant(m: nn.Module, in_shape: tuple[int, ...]) -> float:
    # Max picks one input per window; a pixel feeds at most ceil(k/s)^2 outputs.
    k = _pair(m.kernel_size)
    s = _pair(m.stride if m.stride is not None else m.kernel_size)
    return math.sqrt(math.ceil(k[0] / s[0]) * math.ceil(k[1] / s[1]))


def _upsample_constant(m: nn.Module, in_shape: tuple[int, ...]) -> float:
    # Nearest upsampling by integer factors copies each input s_h * s_w times.
    if m.mode != "nearest" or m.scale_factor is None:
        raise LipschitzError(f"{m}: only nearest Upsample with a scale_factor is supported")
    factors = _pair(m.scale_factor, len(in_shape) - 2)
    if any(float(f) != int(f) for f in factors):
        raise LipschitzError(f"{m}: only integer scale factors are supported")
    return math.sqrt(math.prod(int(f) for f in factors))


def _leaky_constant(m: nn.Module, in_shape: tuple[int, ...]) -> float:
    return max(1.0, abs(m.negative_slope))


for _cls in (
    nn.ReLU,
    nn.Tanh,
    nn.Flatten,
    nn.Unflatten,
    nn.Identity,
    nn.Hardtanh,
    nn.ReLU6,
    nn.Softplus,
):
    register_leaf(_cls, lambda m, s: 1.0)
register_leaf(nn.Sigmoid, lambda m, s: 0.25)
# max over disjoint groups: |max a - max b| <= max |a_i - b_i| <= the group's l2 distance
register_leaf(Maxout, lambda m, s: 1.0)
register_leaf(nn.LeakyReLU, _leaky_constant)
register_leaf(nn.ELU, lambda m, s: max(1.0, m.alpha))
register_leaf(nn.Dropout, lambda m, s: 1.0 / (1.0 - m.p) if m.training else 1.0)
register_leaf(nn.AvgPool2d, _avgpool_constant)
register_leaf(nn.MaxPool2d, _maxpool_constant)
register_leaf(nn.Upsample, _upsample_constant)
# global sum over H*W positions: a row of H*W ones per channel, norm sqrt(H*W)
register_leaf(SumPool2d, lambda m, s: math.sqrt(s[-1] * s[-2]))


# ----------------------------------------------------------------------------------------
# Containers


def _product(m: nn.Module, bound: Callable[[nn.Module], float]) -> float:
    out = 1.0
    for child in m:  # an empty Sequential is the identity
        out *= bound(child)
    return out


register_container(nn.Sequential, _product)
register_container(ResBlock, lambda m, bound: bound(m.residual) + bound(m.shortcut))
# the wrappers only reshape the net's output (view(-1)), an isometry
register_container(Discriminator, lambda m, bound: bound(m.net))
register_container(Generator, lambda m, bound: bound(m.net))


__all__ = [
    "SHAPE_DEPENDENT_LEAVES",
    "ContainerRule",
    "LeafRule",
    "LipschitzError",
    "container_rule",
    "fixed_rule",
    "layer_names",
    "leaf_rule",
    "norm_rule",
    "readable_name",
    "register_container",
    "register_leaf",
]
