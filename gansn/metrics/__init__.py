"""Evaluation metrics: FID, KID, precision/recall/density/coverage and mode-collapse metrics.

Import cost matters (the CLI and the trainer import ``gansn.metrics`` early), so names are
resolved lazily; the Lipschitz analysis of D is its own package, :mod:`gansn.lipschitz`.

The stateless functions live in their modules and take numpy arrays, for notebooks:
``gansn.metrics.fid`` (frechet_distance, feature_stats, StreamingStats, kid, fid_infinity),
``gansn.metrics.prdc`` (precision_recall, density_coverage, prdc) and
``gansn.metrics.modes`` (mixture_modes, class_modes, stacked_modes, ndb).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "METRICS": "gansn.metrics.core",
    "EvalContext": "gansn.metrics.core",
    "Evaluator": "gansn.metrics.core",
    "evaluate": "gansn.metrics.core",
    "from_config": "gansn.metrics.core",
    "metric_mode": "gansn.metrics.core",
    "metric_tags": "gansn.metrics.core",
    "tag_info": "gansn.metrics.core",
    "describe": "gansn.metrics.core",
    "TagInfo": "gansn.metrics.core",
    "FEATURES": "gansn.metrics.features",
    "FeatureExtractor": "gansn.metrics.features",
    "build_extractor": "gansn.metrics.features",
    "as_source": "gansn.metrics.sources",
    "Source": "gansn.metrics.sources",
    "frechet_distance": "gansn.metrics.fid",
    "feature_stats": "gansn.metrics.fid",
    "kid": "gansn.metrics.fid",
    "prdc": "gansn.metrics.prdc",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gansn.metrics' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
