"""Feature extractors (the ``FEATURES`` registry): images or points -> feature vectors.

An extractor is called on a batch ``x`` (B, C, H, W) images in [-1, 1] or (B, D) points and
returns ``{"features": (B, d) float tensor}``, plus ``"labels"`` ((B,) or, for a stacked
dataset, (B, C) integer class predictions) and ``"confidence"`` (the predicted class's softmax
probability, same shape) when it is a classifier.  ``describe()`` is what
the evaluation protocol records; ``cache_tag`` names cached statistics.

Built in:

``inception``
    FID Inception-v3 pool3 features (2048-d).  Grayscale is repeated to 3 channels; images
    are quantized to 8 bits (as when saved to PNG, like stylegan2-ada / clean-fid), then
    resized to 299×299 with ``resize``:

    * ``bilinear`` (default) — ``F.interpolate(mode="bilinear", align_corners=False)`` on the
      float image, exactly pytorch-fid's ``resize_input`` and stylegan2-ada's detector;
    * ``pil_bicubic`` — clean-fid's "clean" resize: PIL bicubic per channel in float mode;
    * ``none`` — feed the image at its own size (the network is fully convolutional).

    ``normalize`` maps [0, 1] to the network input: ``pytorch_fid`` is 2x − 1 (pytorch-fid),
    ``tf`` is (255x − 128)/128 (the TF graph, stylegan2-ada, clean-fid); ``auto`` picks the
    convention of the weights file that was loaded.
``classifier``
    gansn's :class:`~gansn.metrics.classifier.SmallCNN` trained on the real dataset (128-d
    penultimate features, argmax labels).
``raw``
    The flattened input itself; the natural choice for 2-D points.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from gansn.errors import ConfigError
from gansn.metrics.classifier import get_classifier, is_stacked
from gansn.metrics.inception import load_fid_inception
from gansn.registry import Registry

log = logging.getLogger(__name__)

FEATURES: Registry[Any] = Registry("feature extractor")

RESIZES = ("bilinear", "pil_bicubic", "none")
NORMALIZATIONS = ("auto", "pytorch_fid", "tf")


class FeatureExtractor:
    """Base class: subclasses set ``name`` and ``dim`` and implement ``__call__``."""

    name: str = "base"
    dim: int = 0
    # True when features depend only on fixed weights, so real statistics may be cached on
    # disk; a trained-per-dataset classifier's may not
    cacheable: bool = False

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "dim": self.dim}

    @property
    def cache_tag(self) -> str:
        return self.name


def build_extractor(
    name: str, options: dict[str, Any] | None = None, **context: Any
) -> FeatureExtractor:
    """Build ``FEATURES[name](**options, **context)``.

    ``context`` holds what evaluate() knows (device, cache_dir, seed, dataset, test_dataset,
    progress); each key is passed only if the factory accepts it, so user extractors need
    not take them all.  Unknown ``options`` fail with the accepted names.
    """
    factory = FEATURES.get(name)
    params = inspect.signature(factory).parameters
    takes_all = any(p.kind is p.VAR_KEYWORD for p in params.values())
    options = dict(options or {})
    unknown = [k for k in options if k not in params and not takes_all]
    if unknown:
        raise ConfigError(
            f"feature extractor {name!r} has no option(s) {unknown}; accepted: "
            f"{sorted(k for k in params if k not in context)}"
        )
    kwargs = {k: v for k, v in context.items() if k in params or takes_all}
    kwargs.update(options)
    return factory(**kwargs)


@FEATURES.register("raw")
class RawFeatures(FeatureExtractor):
    """(B, ...) -> (B, prod(...)): the samples themselves."""

    name = "raw"
    cacheable = True

    def __init__(self, dim: int | None = None) -> None:
        self.dim = dim or 0

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.dim = int(x[0].numel())
        return {"features": x.flatten(1).float()}


def _pil_bicubic(x255: torch.Tensor, size: int) -> torch.Tensor:
    """clean-fid's resize: each channel as a float PIL image, bicubic, clipped to [0, 255]."""
    arr = x255.cpu().numpy().astype(np.float32)
    out = np.empty((*arr.shape[:2], size, size), dtype=np.float32)
    for i in range(arr.shape[0]):
        for c in range(arr.shape[1]):
            img = Image.fromarray(arr[i, c], mode="F")
            out[i, c] = np.asarray(img.resize((size, size), resample=Image.BICUBIC))
    return torch.from_numpy(out.clip(0, 255)).to(x255.device)


def inception_input(
    x: torch.Tensor,
    *,
    resize: str = "bilinear",
    normalize: str = "pytorch_fid",
    quantize: bool = True,
    size: int = 299,
) -> torch.Tensor:
    """(B, C, H, W) in [-1, 1], C ∈ {1, 3} -> (B, 3, size, size) network input."""
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ConfigError(f"Inception features need (B, 1 or 3, H, W) images, got {tuple(x.shape)}")
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    x255 = ((x.float() + 1) * 127.5).clamp(0, 255)
    if quantize:
        x255 = x255.round()
    if x255.shape[-2:] != (size, size):
        if resize == "bilinear":
            x255 = F.interpolate(x255, size=(size, size), mode="bilinear", align_corners=False)
        elif resize == "pil_bicubic":
            x255 = _pil_bicubic(x255, size)
        elif resize != "none":
            raise ConfigError(f"unknown resize {resize!r}; valid: {', '.join(RESIZES)}")
    if normalize == "pytorch_fid":
        return x255 / 127.5 - 1
    if normalize == "tf":
        return (x255 - 128) / 128
    raise ConfigError(f"unknown normalize {normalize!r}; valid: {', '.join(NORMALIZATIONS)}")


@FEATURES.register("inception")
class InceptionFeatures(FeatureExtractor):
    """FID Inception pool3 features; see the module docstring for the preprocessing."""

    name = "inception"
    dim = 2048
    cacheable = True

    def __init__(
        self,
        weights: str | None = None,
        download: bool = False,
        resize: str = "bilinear",
        normalize: str = "auto",
        quantize: bool = True,
        device: str | torch.device = "cpu",
    ) -> None:
        if resize not in RESIZES:
            raise ConfigError(f"unknown resize {resize!r}; valid: {', '.join(RESIZES)}")
        if normalize not in NORMALIZATIONS:
            raise ConfigError(
                f"unknown normalize {normalize!r}; valid: {', '.join(NORMALIZATIONS)}"
            )
        self.model, self.info = load_fid_inception(weights, download)
        self.model.to(device)
        self.device = torch.device(device)
        self.resize, self.quantize = resize, quantize
        if normalize == "auto":
            normalize = "tf" if self.info["format"] == "torchscript" else "pytorch_fid"
        self.normalize = normalize

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        inp = inception_input(
            x.to(self.device), resize=self.resize, normalize=self.normalize, quantize=self.quantize
        )
        features = self.model(inp)
        if not self.info.get("has_classifier"):
            return {"features": features}
        # the 1008-way logits of the 2015 Inception graph, for the Inception Score
        return {"features": features, "logits": self.model.fc(features)}

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dim": self.dim,
            "resize": self.resize,
            "size": 299,
            "normalize": self.normalize,
            "quantize": self.quantize,
            **self.info,
        }

    @property
    def cache_tag(self) -> str:
        return f"inception-{self.info['format']}-{self.resize}-{self.normalize}" + (
            "-q" if self.quantize else ""
        )


@FEATURES.register("classifier")
class ClassifierFeatures(FeatureExtractor):
    """Penultimate features and predicted labels of gansn's small CNN.

    The CNN comes from ``path`` or is trained on ``dataset`` (cached under ``cache_dir``).
    For a stacked dataset it is a 1-channel CNN applied to each channel: features are the
    channels' features concatenated (B, C·128) and labels are (B, C).
    """

    name = "classifier"

    def __init__(
        self,
        dataset: Any = None,
        test_dataset: Any = None,
        path: str | None = None,
        cache_dir: str | None = None,
        epochs: float = 2,
        max_steps: int | None = None,
        width: int = 32,
        seed: int = 0,
        device: str | torch.device = "cpu",
        progress: bool = True,
    ) -> None:
        if dataset is None and path is None:
            raise ConfigError("the classifier extractor needs a labelled dataset or a path")
        self.model, self.info = get_classifier(
            dataset,
            test_dataset,
            cache_dir=cache_dir,
            path=path,
            epochs=epochs,
            max_steps=max_steps,
            width=width,
            seed=seed,
            device=device,
            progress=progress,
        )
        self.device = torch.device(device)
        self.num_classes = int(self.info["num_classes"])
        self.stacked = dataset is not None and is_stacked(dataset)
        self.feature_dim = self.model.head.in_features
        self.dim = self.feature_dim

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = x.to(self.device).float()
        cin = self.info["in_channels"]
        if x.shape[1] == cin:
            feats = self.model.features(x)
            conf, labels = self.model.head(feats).softmax(1).max(1)
            return {"features": feats, "labels": labels, "confidence": conf}
        if cin == 1:
            # stacked samples: the 1-channel classifier looks at every channel on its own
            b, c = x.shape[:2]
            feats = self.model.features(x.reshape(b * c, 1, *x.shape[2:]))
            conf, labels = self.model.head(feats).softmax(1).max(1)
            return {
                "features": feats.reshape(b, -1),
                "labels": labels.reshape(b, c),
                "confidence": conf.reshape(b, c),
            }
        raise ConfigError(f"classifier trained on {cin}-channel images got {x.shape[1]} channels")

    def describe(self) -> dict[str, Any]:
        keep = ("test_accuracy", "dataset", "path", "num_classes", "width", "steps")
        return {
            "name": self.name,
            "dim": self.dim,
            "stacked": self.stacked,
            **{k: self.info[k] for k in keep if k in self.info},
        }

    @property
    def cache_tag(self) -> str:
        return "classifier"
