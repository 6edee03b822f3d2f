"""The one reader of torch's private spectral-norm state, against numpy and torch's own output.

If a torch upgrade renames ``_SpectralNorm``, ``_u``, ``_v`` or ``_reshape_weight_to_matrix``,
``test_this_torch_has_the_internals_gansn_reads`` fails with a message naming the version.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import parametrizations

from gansn.lipschitz.sn import (
    SpectralNormInternalsError,
    check_spectral_norm_internals,
    spectral_norm_view,
)

PACKAGE = Path(__file__).resolve().parents[2] / "gansn"
VERSION = re.escape(torch.__version__)


def test_this_torch_has_the_internals_gansn_reads():
    check_spectral_norm_internals()
    check_spectral_norm_internals(parametrizations.spectral_norm(nn.ConvTranspose2d(3, 5, 4)))


def _converged(kind: str) -> tuple[nn.Module, np.ndarray]:
    """A spectrally normalized layer after ~1000 power-iteration steps, and the numpy matrix
    SN normalizes: ``(out, in*k*k)``; a transposed conv's ``(in, out, k, k)`` weight has its
    ``dim=1`` moved first."""
    torch.manual_seed(0)
    layer, x = {
        "linear": (nn.Linear(7, 5), torch.randn(2, 7)),
        "conv": (nn.Conv2d(3, 4, 3), torch.randn(2, 3, 6, 6)),
        "deconv": (nn.ConvTranspose2d(4, 3, 4, 2, 1), torch.randn(2, 4, 3, 3)),
    }[kind]
    layer = parametrizations.spectral_norm(layer, n_power_iterations=50)
    layer.train()
    with torch.no_grad():
        for _ in range(20):  # each train-mode forward runs and stores 50 steps
            layer(x)
    w = layer.parametrizations.weight.original.detach().double().numpy()
    if kind == "deconv":
        w = w.swapaxes(0, 1)
    return layer, w.reshape(w.shape[0], -1)


@pytest.mark.parametrize("kind", ["linear", "conv", "deconv"])
def test_u_v_give_torch_sigma_and_the_top_singular_pair(kind):
    layer, mat = _converged(kind)
    u_buf = layer.parametrizations.weight[0]._u.clone()
    view = spectral_norm_view(layer)
    assert view is not None
    u, v = view.u.double().numpy(), view.v.double().numpy()
    np.testing.assert_array_equal(view.matrix.double().numpy(), mat)

    # torch's sigma: the divisor its eval-mode forward applies, W = W_orig / sigma
    layer.eval()
    with torch.no_grad():
        w_eff = layer.weight.double()
    w_orig = layer.parametrizations.weight.original.detach().double()
    torch_sigma = float(w_orig.norm() / w_eff.norm())
    assert u @ mat @ v == pytest.approx(torch_sigma, rel=1e-5)
    assert view.sigma() == pytest.approx(torch_sigma, rel=1e-5)

    # converged: the top singular value and vectors of numpy's SVD (up to a common sign)
    left, s, right_t = np.linalg.svd(mat)
    assert torch_sigma == pytest.approx(s[0], rel=1e-5)
    assert abs(u @ left[:, 0]) == pytest.approx(1.0, abs=1e-4)
    assert abs(v @ right_t[0]) == pytest.approx(1.0, abs=1e-4)
    assert torch.equal(layer.parametrizations.weight[0]._u, u_buf)  # reading changed nothing


def test_layers_without_spectral_norm_have_no_view():
    assert spectral_norm_view(nn.Linear(3, 2)) is None
    assert spectral_norm_view(parametrizations.weight_norm(nn.Linear(3, 2))) is None


def test_missing_attributes_fail_loudly():
    layer = parametrizations.spectral_norm(nn.Linear(3, 2))
    del layer.parametrizations.weight[0]._u
    with pytest.raises(SpectralNormInternalsError, match=rf"torch {VERSION}.*has no _u"):
        check_spectral_norm_internals(layer)
    # at run time a changed torch degrades the tracker (no raw_sigma) instead of training
    with pytest.warns(UserWarning, match=rf"torch {VERSION}.*has no _u"):
        assert spectral_norm_view(layer) is None


def test_a_renamed_parametrization_fails_loudly():
    with pytest.raises(SpectralNormInternalsError, match=rf"torch {VERSION}.*not _SpectralNorm"):
        check_spectral_norm_internals(parametrizations.weight_norm(nn.Linear(3, 2)))
    with pytest.raises(SpectralNormInternalsError, match="not parametrized"):
        check_spectral_norm_internals(nn.Linear(3, 2))


def test_only_sn_py_reads_the_private_names():
    private = re.compile(r"\._u\b|\._v\b|_reshape_weight_to_matrix|_SpectralNorm")
    readers = sorted(
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if private.search(path.read_text())
    )
    # norms.py subclasses torch's class to keep the power iteration in fp32 under autocast;
    # it reads no private attribute, and check_spectral_norm_internals covers the class name
    assert readers == ["lipschitz/sn.py", "nn/norms.py"]
