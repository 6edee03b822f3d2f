"""The console scripts work from a real (non-editable) install, away from the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# builds a wheel and installs it: tens of seconds
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """``pip install --no-deps --target`` of a wheel built from this checkout."""
    tmp = tmp_path_factory.mktemp("install")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp / "dist"),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    wheel = next((tmp / "dist").glob("gansn-*.whl"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(tmp / "site"),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    return tmp / "site"


def _run(site: Path, script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(site))
    return subprocess.run(
        [str(site / "bin" / script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_wheel_ships_the_configs(installed):
    conf = installed / "gansn" / "conf"
    for rel in (
        "train.yaml",
        "norm/spectral.yaml",
        "experiment/quickstart.yaml",
        "dataset/fashion_mnist.yaml",
        "model/resnet.yaml",
    ):
        assert (conf / rel).is_file(), rel


def test_installed_gansn_train_composes_outside_the_checkout(installed, tmp_path):
    proc = _run(installed, "gansn-train", "norm@d_norm=layer", "--cfg", "job", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "name: layer" in proc.stdout and "name: dcgan" in proc.stdout
    where = subprocess.run(
        [sys.executable, "-c", "import gansn.config as c; print(c.config_dir())"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(installed)),
    )
    assert where.stdout.strip() == str(installed / "gansn" / "conf")


def test_installed_gansn_train_trains(installed, tmp_path):
    proc = _run(
        installed,
        "gansn-train",
        "experiment=quick",
        "steps=2",
        "batch_size=4",
        "dataset.n=8",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "run" / "checkpoints" / "last.pt").is_file()


def test_every_subpackage_is_listed_in_pyproject():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "gansn").rglob("__init__.py")
    }
    groups = {
        "gansn.conf." + ".".join(p.relative_to(ROOT / "conf").parts)
        for p in (ROOT / "conf").rglob("*")
        if p.is_dir()
    }
    assert found | {"gansn.conf"} | groups == listed
