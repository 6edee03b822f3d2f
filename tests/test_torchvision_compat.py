"""Both paths of gansn._torchvision_compat, each in a fresh interpreter.

A subprocess per case because the module's effect (operator schemas registered with torch,
torchvision in ``sys.modules``) is process-global and cannot be undone inside pytest.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap

import pytest

# not importorskip: a plain ``import torchvision`` is exactly what fails on this machine
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("torchvision") is None, reason="torchvision is not installed"
)


def run_python(code: str) -> dict:
    """Run ``code`` in a fresh interpreter; it must print one JSON object as its last line."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


# Defines torchvision::nms/qnms with a real (CPU) kernel, as an installed extension would.
PROVIDE_OPS = """
import torch
lib = torch.library.Library("torchvision", "DEF")
for op in ("nms", "qnms"):
    lib.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.impl(op, lambda dets, scores, iou_threshold: torch.arange(dets.shape[0]),
             "CompositeExplicitAutograd")
"""


def extension_loads_here() -> bool:
    """Ground truth, independent of the module under test: can torch load torchvision's _C?"""
    return run_python(
        """
        import importlib.util, json, pathlib, torch
        pkg = pathlib.Path(next(iter(importlib.util.find_spec("torchvision")
                                     .submodule_search_locations)))
        libs = sorted(pkg.glob("_C*.so")) + sorted(pkg.glob("_C*.pyd"))
        try:
            torch.ops.load_library(str(libs[0]))
            ok = True
        except (IndexError, OSError, RuntimeError):
            ok = False
        print(json.dumps({"ok": ok}))
        """
    )["ok"]


def test_real_environment_imports_and_patches_iff_extension_missing() -> None:
    out = run_python(
        """
        import json, torch
        import gansn._torchvision_compat as compat
        tv = compat.import_torchvision()
        grid = tv.utils.make_grid(torch.rand(5, 3, 8, 8), nrow=3, padding=2)
        nms_error = None
        if compat.patched:
            try:
                tv.ops.nms(torch.rand(4, 4), torch.rand(4), 0.5)
            except Exception as err:
                nms_error = type(err).__name__
        again = compat.import_torchvision() is tv and not compat.define_missing_schemas()
        print(json.dumps({"patched": compat.patched, "grid": list(grid.shape),
                          "nms_error": nms_error, "idempotent": again,
                          "datasets": hasattr(tv.datasets, "MNIST")}))
        """
    )
    assert out["grid"] == [3, 2 * 10 + 2, 3 * 10 + 2]
    assert out["datasets"] and out["idempotent"]
    assert out["patched"] is (not extension_loads_here())
    if out["patched"]:
        # the stubs are schemas only: calling the op must fail loudly, never return garbage
        assert out["nms_error"] in ("RuntimeError", "NotImplementedError")


def test_normal_install_path_does_nothing() -> None:
    """Extension 'loads' and provides the ops: no schema defined, no Library kept."""
    out = run_python(
        PROVIDE_OPS
        + """
import json
import gansn._torchvision_compat as compat
compat._extension_loads = lambda: True
tv = compat.import_torchvision()
res = torch.ops.torchvision.nms(torch.rand(3, 4), torch.rand(3), 0.5)
grid = tv.utils.make_grid(torch.rand(2, 3, 4, 4))
print(json.dumps({"patched": compat.patched, "library": compat._library is not None,
                  "res": res.tolist(), "grid": list(grid.shape)}))
"""
    )
    assert out == {"patched": False, "library": False, "res": [0, 1, 2], "grid": [3, 8, 14]}


def test_schemas_with_kernels_are_left_alone() -> None:
    """Even if the extension check fails, ops that already have kernels are not redefined."""
    out = run_python(
        PROVIDE_OPS
        + """
import json
import gansn._torchvision_compat as compat
compat._extension_loads = lambda: False
defined = compat.define_missing_schemas()
compat.import_torchvision()
print(json.dumps({"defined": defined, "patched": compat.patched,
                  "library": compat._library is not None}))
"""
    )
    assert out == {"defined": False, "patched": False, "library": False}


def test_already_imported_torchvision_is_returned_untouched() -> None:
    out = run_python(
        """
        import json, sys, types
        fake = types.ModuleType("torchvision")
        sys.modules["torchvision"] = fake
        import gansn._torchvision_compat as compat
        compat._extension_loads = lambda: (_ for _ in ()).throw(AssertionError("checked"))
        print(json.dumps({"same": compat.import_torchvision() is fake,
                          "patched": compat.patched}))
        """
    )
    assert out == {"same": True, "patched": False}
