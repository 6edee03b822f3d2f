"""The one place that reads torch's private spectral-norm parametrization.

``torch.nn.utils.parametrizations.spectral_norm`` keeps its power-iteration state in a private
``_SpectralNorm`` module: buffers ``_u`` (out,) and ``_v`` (in*prod(kernel),) and a method
``_reshape_weight_to_matrix`` that moves its ``dim`` first.  None of that is public API, so a
torch release may rename it; everything gansn reads from it goes through
:func:`spectral_norm_view`, and :func:`check_spectral_norm_internals` (run by the test suite)
says loudly, naming the torch version, when it no longer matches.  (``gansn.nn.norms``
subclasses the class, to keep its power iteration in fp32 under autocast, and reads nothing
of it; a subclass is recognised here by its base's name.)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrizations, parametrize

_CLASS_NAME = "_SpectralNorm"
_ATTRIBUTES = ("_u", "_v", "_reshape_weight_to_matrix")


class SpectralNormInternalsError(RuntimeError):
    """This torch's spectral-norm parametrization no longer has what gansn reads."""


@dataclass(frozen=True)
class SpectralNormView:
    """Read-only view of a layer's spectral-norm state.

    ``u (out,)`` and ``v (in*prod(kernel),)`` are the layer's own buffers (detached, not
    copied: never write to them); ``matrix`` is the raw weight ``W_orig`` in fp32 reshaped as
    SN reshapes it, ``(out, in*prod(kernel))`` with SN's ``dim`` first.
    """

    parametrization: nn.Module
    u: Tensor
    v: Tensor
    matrix: Tensor

    def sigma(self) -> float:
        """``u^T W_orig v``: the divisor SN applies in eval mode (no power-iteration step)."""
        with torch.no_grad():
            return float(torch.vdot(self.u.float(), self.matrix @ self.v.float()))


def _is_spectral(p: nn.Module) -> bool:
    """torch's class or a subclass (gansn's fp32 one), recognised by name: importing the
    private class itself would break gansn's import when torch renames it."""
    return any(c.__name__ == _CLASS_NAME for c in type(p).__mro__)


def _problems(p: nn.Module) -> list[str]:
    problems = []
    if not _is_spectral(p):
        problems.append(f"its class is {type(p).__qualname__}, not {_CLASS_NAME}")
    problems += [f"it has no {a}" for a in _ATTRIBUTES if not hasattr(p, a)]
    return problems


def _message(problems: list[str]) -> str:
    return (
        f"torch {torch.__version__} changed the spectral-norm parametrization "
        f"({'; '.join(problems)}); gansn/lipschitz/sn.py must be updated"
    )


def spectral_norm_view(layer: nn.Module) -> SpectralNormView | None:
    """The spectral-norm state of ``layer``'s weight, or ``None`` if it has none.

    Vector weights get ``None`` too: torch divides them by their norm and keeps no ``u``/``v``.
    A parametrization named like torch's whose attributes are gone warns (with the torch
    version) and gets ``None``, so a torch upgrade degrades the tracker rather than training.
    """
    if not parametrize.is_parametrized(layer, "weight"):
        return None
    for p in layer.parametrizations.weight:
        if not _is_spectral(p):
            continue
        original = layer.parametrizations.weight.original
        if original.dim() <= 1:
            return None
        problems = _problems(p)
        if problems:
            warnings.warn(_message(problems), stacklevel=2)
            return None
        with torch.no_grad():
            matrix = p._reshape_weight_to_matrix(original.detach().float())
        return SpectralNormView(p, p._u.detach(), p._v.detach(), matrix)
    return None


def check_spectral_norm_internals(layer: nn.Module | None = None) -> None:
    """Raise :class:`SpectralNormInternalsError` unless SN's internals are as gansn reads them.

    ``layer``: a spectrally normalized layer to inspect (default: a fresh ``Linear(3, 2)``).
    Checks the class name, the attributes, and that ``u (out,)``, ``v (in,)`` and the matrix
    ``(out, in)`` agree with each other and with the weight's size.
    """
    if layer is None:
        layer = parametrizations.spectral_norm(nn.Linear(3, 2))
    if not parametrize.is_parametrized(layer, "weight"):
        raise SpectralNormInternalsError(_message(["the layer's weight is not parametrized"]))
    p = layer.parametrizations.weight[0]
    problems = _problems(p)
    if not problems:
        w = layer.parametrizations.weight.original.detach()
        u, v, mat = p._u, p._v, p._reshape_weight_to_matrix(w)
        expected = (1, 1, (u.numel(), v.numel()), w.numel())
        if (u.dim(), v.dim(), tuple(mat.shape), mat.numel()) != expected:
            problems.append(
                f"u {tuple(u.shape)}, v {tuple(v.shape)} and the matrix {tuple(mat.shape)} "
                f"of a {tuple(w.shape)} weight disagree"
            )
    if problems:
        raise SpectralNormInternalsError(_message(problems))


__all__ = [
    "SpectralNormInternalsError",
    "SpectralNormView",
    "check_spectral_norm_internals",
    "spectral_norm_view",
]
