"""Import torchvision even when its compiled extension cannot load.

The only torchvision build paired with torch 2.13.0 on some machines is a CUDA build.  With a
CPU-only torch its C extension fails to load, and ``import torchvision`` then dies while
registering fake kernels for ``torchvision::nms`` ("operator torchvision::nms does not
exist").  gansn needs only torchvision's pure-Python parts (datasets, transforms,
``utils.make_grid``), so when -- and only when -- the extension is missing we define the two
operator schemas that torchvision's import-time registrations look up.  The ops themselves
stay unimplemented: calling ``torchvision.ops.nms`` still raises, as it should.

On a normal install (extension loads, or torchvision already imported) this does nothing.
Every gansn module imports torchvision through :func:`import_torchvision`.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path
from types import ModuleType

log = logging.getLogger(__name__)

_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_library = None  # keeps the torch.library.Library alive; dropping it unregisters the ops
patched = False  # True once the schemas were defined by this module


def _extension_loads() -> bool:
    """Whether torchvision's ``_C`` extension can be loaded by torch, without importing it."""
    import torch

    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return True  # not installed: let the real import raise the real error
    pkg = Path(next(iter(spec.submodule_search_locations)))
    candidates = sorted(pkg.glob("_C*.so")) + sorted(pkg.glob("_C*.pyd"))
    if not candidates:
        return False
    try:
        torch.ops.load_library(str(candidates[0]))
    except (OSError, RuntimeError) as err:
        log.debug("torchvision extension failed to load: %s", err)
        return False
    return True


def define_missing_schemas() -> bool:
    """Define ``torchvision::nms``/``qnms`` schemas if no kernel library provides them.

    Returns True when it had to define them.
    """
    global _library, patched
    import torch

    if patched or all(torch._C._dispatch_has_kernel(f"torchvision::{op}") for op in _SCHEMAS):
        return False
    _library = torch.library.Library("torchvision", "DEF")
    for schema in _SCHEMAS.values():
        _library.define(schema)
    patched = True
    log.debug("torchvision C extension unavailable; defined stub op schemas %s", list(_SCHEMAS))
    return True


def import_torchvision() -> ModuleType:
    """Return the ``torchvision`` module, applying the schema fix first if needed."""
    if "torchvision" in sys.modules:
        return sys.modules["torchvision"]
    if not _extension_loads():
        define_missing_schemas()
    import torchvision

    return torchvision
