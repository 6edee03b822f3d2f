"""Bad input to every console script (issue 12): one line on stderr, exit code 2, no traceback,
and nothing that was already on disk touched.

One table per script, one case per bad input.  Most cases run in-process (the scripts' main
functions with an argv); the ``slow`` ones start ``gansn-train`` as a user does, to show the
real entry point and the errors only the Hydra app can find.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

import gansn.cli.train as train_cli
from gansn.cli.args import run_cli
from gansn.cli.eval import main_args as eval_main
from gansn.cli.lipschitz import main as lipschitz_main
from gansn.cli.report import main as report_main
from gansn.cli.sample import main_args as sample_main
from gansn.data import BatchStream, build_dataset
from gansn.errors import ConfigError
from gansn.metrics.sources import FolderSource, as_source
from gansn.schema import TRAIN, problems, validate_train_config

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- helpers


def snapshot(*paths: Path) -> dict[str, tuple[bytes, int] | None]:
    """Every file under ``paths`` with its bytes and mtime (dirs listed, as None)."""
    out: dict[str, tuple[bytes, int] | None] = {}
    for root in paths:
        for p in [root, *sorted(root.rglob("*"))] if root.is_dir() else [root]:
            out[str(p)] = (p.read_bytes(), p.stat().st_mtime_ns) if p.is_file() else None
    return out


def refused(capsys: pytest.CaptureFixture[str], call: Callable[[], Any]) -> str:
    """Run ``call``; assert exit code 2 and one line on stderr, no traceback; return it."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        call()
    assert stop.value.code == 2
    err = capsys.readouterr().err
    # what a terminal shows: a progress bar erased with "\r" before the error is gone
    lines = [ln.rsplit("\r", 1)[-1] for ln in err.split("\n")]
    lines = [ln for ln in lines if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    # the line is the error itself: no progress bar or log output glued in front of it
    assert re.match(r"^([\w.-]+: )?error: ", lines[0]), lines[0]
    return lines[0]


def assert_has(line: str, fragments: list[str]) -> None:
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"


def _png(path: Path, w: int, h: int, seed: int = 0, mode: str = "RGB") -> Path:
    rng = np.random.default_rng(seed)
    shape = (h, w, 3) if mode == "RGB" else (h, w)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(path)
    return path


def _truncated(path: Path) -> Path:
    _png(path, 64, 64)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # the header survives, the pixel data does not
    return path


@pytest.fixture
def disk(tmp_path: Path) -> dict[str, Path]:
    """Files a user already has: a run dir, outputs of an earlier command, inputs."""
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "notes.txt").write_text("keep me")
    (run_dir / "config.yaml").write_text("steps: 3\n")
    out_png = tmp_path / "grid.png"
    _png(out_png, 8, 8)
    out_json = tmp_path / "results.json"
    out_json.write_text('{"keep": true}\n')
    images = tmp_path / "images"
    for i in range(4):
        _png(images / f"{i}.png", 8, 8, seed=i)
    npz = tmp_path / "fake.npz"
    np.savez(npz, x=np.random.default_rng(0).integers(0, 256, (4, 8, 8, 3), dtype=np.uint8))
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    (tmp_path / "adir.png").mkdir()  # folders named like the files a script writes
    (tmp_path / "adir.json").mkdir()
    return {
        "tmp": tmp_path,
        "run": run_dir,
        "png": out_png,
        "json": out_json,
        "images": images,
        "npz": npz,
        "blocker": blocker,
    }


# ------------------------------------------------------------------------ gansn-train

# (extra overrides, fragments the one line must hold)
TRAIN_CASES: list[tuple[list[str], list[str]]] = [
    # unknown keys, with and without Hydra's +, and typos of group options
    (["foo=1"], ["unknown key foo", "valid keys: amp, batch_size"]),
    (["+foo=1"], ["unknown key foo", "valid keys: amp, batch_size"]),
    (["modl=dcgan"], ["unknown key modl", "did you mean model?"]),
    (["model.options.bogus=1"], ["unknown key model.options.bogus", "init_std"]),
    (["dataset.nn=5"], ["unknown key dataset.nn", "did you mean dataset.n?"]),
    (["ema.decay.x=1"], ["ema.decay is a value, not a config group"]),
    (["+ema.foo=1"], ["unknown key ema.foo", "valid keys of ema: decay, enabled, start"]),
    (["+lipschitz.n_sample=1"], ["unknown key lipschitz.n_sample", "mean lipschitz.n_samples"]),
    (["+grid.rows=2"], ["unknown key grid.rows", "did you mean grid.nrow?"]),
    (["+metrics.every=2"], ["unknown key metrics.every", "metrics.eval_every?"]),
    (["hydra.run.dri=x"], ["unknown key hydra.run.dri", "did you mean hydra.run.dir?"]),
    (["norm@d_norm=spectrl"], ["norm@d_norm=spectrl", "did you mean 'spectral'?"]),
    (["norm@g_norm=bacth"], ["norm@g_norm=bacth", "did you mean 'batch'?"]),
    (["dataset=cifar100"], ["dataset=cifar100", "'cifar10'"]),
    (["experiment=quik"], ["experiment=quik", "did you mean 'quick'?"]),
    (["-m", "norm@d_norm=spectral,spectrl"], ["did you mean 'spectral'?"]),
    # malformed overrides
    (["foo"], ["cannot parse 'foo'", "key=value"]),
    (["steps=[1"], ["cannot parse 'steps=[1'"]),
    (["seed=0,1"], ["seed=0,1", "add -m"]),
    (["steps=${nope}"], ["steps: nope is not set", "add +nope=<value> or set steps=<value>"]),
    (
        ["experiment=norm_study_fmnist", "setting=D"],
        ["steps: steps_by_setting.D is not set", "add +steps_by_setting.D=<value> or set steps"],
    ),
    (["--cfg", "job", "dataset.nn=5"], ["unknown key dataset.nn"]),
    # types and ranges of every numeric key
    (["steps=0"], ["steps must be a positive integer, got 0"]),
    (["steps=-1"], ["steps must be a positive integer, got -1"]),
    (["steps=1.5"], ["steps must be a positive integer, got 1.5"]),
    (["steps=abc"], ["steps must be a positive integer, got 'abc'"]),
    (["steps=true"], ["steps must be a positive integer, got True"]),
    (["batch_size=0"], ["batch_size must be a positive integer"]),
    (["g_batch_size=0"], ["g_batch_size must be null or a positive integer"]),
    (["n_dis=0"], ["n_dis must be a positive integer"]),
    (["seed=-1"], ["seed must be an integer >= 0"]),
    (["threads=-1"], ["threads must be an integer >= 0"]),
    (["+num_workers=-2"], ["num_workers must be an integer >= 0"]),
    (["log_every=-1"], ["log_every must be an integer >= 0"]),
    (["sample_every=-1"], ["sample_every must be an integer >= 0"]),
    (["ckpt_every=-1"], ["ckpt_every must be an integer >= 0"]),
    (["keep_every=-5"], ["keep_every must be an integer >= 0"]),
    (["lipschitz_every=-1"], ["lipschitz_every must be an integer >= 0"]),
    (["lipschitz.n_samples=0"], ["lipschitz.n_samples must be a positive integer"]),
    (["lipschitz.n_iter=0"], ["lipschitz.n_iter must be a positive integer"]),
    (["grid.n=0"], ["grid.n must be a positive integer"]),
    (["grid.nrow=0"], ["grid.nrow must be a positive integer"]),
    (["ema.decay=1"], ["ema.decay must be a number in [0, 1), got 1"]),
    (["ema.decay=-0.1"], ["ema.decay must be a number in [0, 1)"]),
    (["ema.start=-1"], ["ema.start must be an integer >= 0"]),
    (["ema.enabled=maybe"], ["ema.enabled must be true or false"]),
    (["model.width=0"], ["model.width must be a positive number, got 0"]),
    (["model.width=-1"], ["model.width must be a positive number, got -1"]),
    (["model.z_dim=0"], ["model.z_dim must be a positive integer"]),
    (["dataset.n=0"], ["dataset.n must be null or a positive integer"]),
    (["dataset.img_size=0"], ["dataset.img_size must be a positive integer"]),
    (["dataset.channels=0"], ["dataset.channels must be null or a positive integer"]),
    (["dataset.num_classes=0"], ["dataset.num_classes must be a positive integer"]),
    (["experiment=toy_ring8", "dataset.std=-1"], ["dataset.std must be a number >= 0"]),
    (["experiment=toy_ring8", "dataset.modes=0"], ["dataset.modes must be a positive integer"]),
    (["experiment=toy_ring8", "dataset.radius=0"], ["dataset.radius must be a positive number"]),
    (["experiment=toy_grid25", "dataset.side=0"], ["dataset.side must be a positive integer"]),
    (["g_norm.eps=0"], ["g_norm.eps must be a positive number"]),
    (["g_norm.momentum=2"], ["g_norm.momentum must be null or a number in [0, 1], got 2"]),
    (["d_norm.n_power_iterations=0"], ["d_norm.n_power_iterations must be a positive integer"]),
    (["norm@d_norm=group", "d_norm.num_groups=0"], ["d_norm.num_groups must be a positive"]),
    (["loss=wasserstein", "loss.gp_weight=-1"], ["loss.gp_weight must be a number >= 0"]),
    (["optim.g.lr=0"], ["optim.g.lr must be a positive number"]),
    (["optim.d.lr=-1"], ["optim.d.lr must be a positive number"]),
    (["optim.d.lr=inf"], ["optim.d.lr must be a positive number, got inf"]),
    (["optim.g.betas=[0.5,1.0]"], ["optim.g.betas must be two numbers in [0, 1)"]),
    (["optim.d.betas=[0.5]"], ["optim.d.betas must be two numbers in [0, 1)"]),
    (["+optim.d.weight_decay=-1"], ["optim.d.weight_decay must be a number >= 0"]),
    (["optim.lr_decay=linar"], ["optim.lr_decay must be one of none, linear", "'linear'"]),
    (["metrics.eval_every=-1"], ["metrics.eval_every must be an integer >= 0"]),
    (["metrics.num_real=0"], ["metrics.num_real must be null or a positive integer"]),
    (["metrics.num_fake=0"], ["metrics.num_fake must be a positive integer"]),
    (["metrics.batch_size=0"], ["metrics.batch_size must be a positive integer"]),
    (["metrics.real_split=val"], ["metrics.real_split must be one of train, test"]),
    (["update=alternate"], ["update must be one of alternating, simultaneous", "'alternating'"]),
    (["update=simultaneous", "n_dis=2"], ["n_dis must be 1"]),
    (["device=gpu"], ["device must be auto, cpu, cuda, cuda:N or mps, got 'gpu'"]),
    (["-m", "seed=0,1", "n_dis=0"], ["n_dis must be a positive integer"]),
]


@pytest.mark.parametrize(
    ("args", "fragments"), TRAIN_CASES, ids=[" ".join(c[0]) for c in TRAIN_CASES]
)
def test_train_refuses_bad_command_lines(disk, monkeypatch, capsys, args, fragments):
    def never(*a: Any, **k: Any) -> None:  # a case that slipped through must not train
        raise AssertionError("the command line reached the Hydra app")

    monkeypatch.setattr(train_cli, "_app", never)
    monkeypatch.chdir(disk["tmp"])
    before = snapshot(disk["tmp"])
    argv = ["gansn-train", "experiment=quick", *args, f"hydra.run.dir={disk['run']}"]
    monkeypatch.setattr(sys, "argv", argv)
    line = refused(capsys, train_cli.main)
    assert line.startswith("error: ")
    assert_has(line, fragments)
    assert snapshot(disk["tmp"]) == before


def test_train_refuses_an_output_dir_below_a_file(disk, monkeypatch, capsys):
    monkeypatch.setattr(train_cli, "_app", lambda: pytest.fail("reached the Hydra app"))
    monkeypatch.chdir(disk["tmp"])
    before = snapshot(disk["tmp"])
    run_dir = disk["blocker"] / "run"
    monkeypatch.setattr(sys, "argv", ["gansn-train", f"hydra.run.dir={run_dir}"])
    line = refused(capsys, train_cli.main)
    assert_has(line, ["hydra.run.dir", str(disk["blocker"]), "is not a directory"])
    assert snapshot(disk["tmp"]) == before


LONG_NAME = "a" * 300  # longer than the 255 bytes a file name may have (NAME_MAX)
RUN_DIR_CASES = [
    ("", ["hydra.run.dir is empty", "leave it out for outputs/<date>/<time>"]),
    ("''", ["hydra.run.dir is empty"]),
    ("{tmp}/" + LONG_NAME, ["is 300 bytes long", "at most 255", "choose another hydra.run.dir"]),
    ("/proc/x", ["hydra.run.dir=/proc/x", "/proc", "choose another hydra.run.dir"]),
]


@pytest.mark.parametrize(
    ("value", "fragments"), RUN_DIR_CASES, ids=["empty", "quotes", "long", "proc"]
)
@pytest.mark.parametrize("resume", [False, True], ids=["new", "resume"])
def test_train_refuses_a_run_dir_it_cannot_make(
    disk, monkeypatch, capsys, value, fragments, resume
):
    if value.startswith("/proc") and not Path("/proc/self").is_dir():
        pytest.skip("no /proc here")
    monkeypatch.setattr(train_cli, "_app", lambda: pytest.fail("reached the Hydra app"))
    monkeypatch.chdir(disk["tmp"])
    before = snapshot(disk["tmp"])
    argv = ["gansn-train", "experiment=quick", f"hydra.run.dir={value.format(**disk)}"]
    if resume:
        argv.insert(1, f"resume={disk['run']}")
    monkeypatch.setattr(sys, "argv", argv)
    line = refused(capsys, train_cli.main)
    assert_has(line, fragments)
    assert snapshot(disk["tmp"]) == before


def test_every_key_of_every_preset_has_a_rule():
    """No composed config (any group option, any preset) holds a key the schema refuses."""
    from gansn.cli.help import config_groups
    from gansn.config import compose, to_plain

    groups = config_groups()
    overrides = [[f"experiment={e}"] for e in groups["experiment"]]
    overrides += [[f"{g}={o}"] for g in ("model", "dataset", "loss", "metrics") for o in groups[g]]
    overrides += [[f"norm@d_norm={o}", f"norm@g_norm={o}"] for o in groups["norm"]]
    for ov in overrides:
        assert problems(to_plain(compose(ov)), TRAIN) == [], ov


def test_validate_train_config_reports_every_problem_one_line_each():
    from gansn.config import compose, to_plain

    cfg = to_plain(compose(["steps=0", "grid.nrow=0", "+bogus=1"]))
    with pytest.raises(ConfigError) as err:
        validate_train_config(cfg)
    lines = str(err.value).splitlines()
    assert lines[0] == "invalid config (3 problems):"
    assert len(lines) == 4
    assert any("steps must be a positive integer" in ln for ln in lines)
    assert any("grid.nrow must be a positive integer" in ln for ln in lines)
    assert any("unknown key bogus" in ln for ln in lines)


# what only the Hydra app finds (registry options, files) and the real entry point
APP_CASES: list[tuple[list[str], list[str]]] = [
    (["foo=1"], ["unknown key foo"]),
    (["+foo=1"], ["unknown key foo"]),
    (["dataset.nn=5"], ["did you mean dataset.n?"]),
    (["model.options.bogus=1"], ["unknown key model.options.bogus"]),
    (["norm@d_norm=spectrl"], ["did you mean 'spectral'?"]),
    (["steps=-1"], ["steps must be a positive integer"]),
    (["+dataset.nn=5"], ["dataset 'fake' has no option 'nn'", "did you mean 'n'?"]),
    (
        ["+d_norm.n_power_iteration=2"],
        ["has no option 'n_power_iteration'", "'n_power_iterations'"],
    ),
    (["+optim.g.momentun=0.9"], ["optim.g", "has no option 'momentun'"]),
    (["d_norm.name=spectrall"], ["unknown normalization 'spectrall'", "did you mean 'spectral'?"]),
    (["metrics=default", "metrics.features=incepton"], ["'incepton'", "did you mean 'inception'?"]),
    (
        ["metrics=default", "metrics.list=[fid,{name:kid,subset_sise:10}]"],
        ["metric 'kid' has no option 'subset_sise'", "did you mean 'subset_size'?"],
    ),
]


def _train(
    args: list[str], cwd: Path, base: tuple[str, ...] = ("experiment=quick", "dataset.n=16")
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("HYDRA_FULL_ERROR", None)  # the one line must not depend on it
    cmd = [sys.executable, "-m", "gansn.train", *base, *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize(("args", "fragments"), APP_CASES, ids=[" ".join(c[0]) for c in APP_CASES])
def test_train_entry_point_refuses_in_one_line(disk, args, fragments):
    before = snapshot(disk["tmp"])
    proc = _train([*args, f"hydra.run.dir={disk['run']}"], disk["tmp"])
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert_has(lines[0], fragments)
    assert snapshot(disk["tmp"]) == before


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["not_an_image", "truncated"])
def test_train_names_a_damaged_image_of_a_folder_dataset(disk, damage):
    folder = disk["tmp"] / "data"
    for i in range(3):
        _png(folder / f"{i}.png", 40, 32, seed=i)
    bad = folder / "bad.png"
    if damage == "not_an_image":
        bad.write_bytes(b"this is no image")
    else:
        _truncated(bad)
    run_dir = disk["tmp"] / "fresh"
    args = ["dataset=folder", f"dataset.root={folder}", "dataset.img_size=32", "steps=4"]
    args += ["batch_size=4", "lipschitz_every=0", "grid.n=4", f"hydra.run.dir={run_dir}"]
    before = snapshot(disk["tmp"])
    proc = _train(args, disk["tmp"], base=("experiment=quick",))
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [ln.rsplit("\r", 1)[-1] for ln in proc.stderr.split("\n")]
    lines = [ln for ln in lines if ln.strip()]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    # a truncated image is found when training reads it: the progress bar of the run it
    # stopped may precede the one error line (a terminal erases it), nothing else does
    assert all(ln.startswith("train:") for ln in lines[:-1]), proc.stderr[-2000:]
    assert_has(lines[-1], ["error: image", str(bad), "cannot be read"])
    if damage == "not_an_image":  # found from the headers, before anything is written
        assert len(lines) == 1
        assert snapshot(disk["tmp"]) == before
        assert not run_dir.exists()
    else:  # the run says where it stands, and its status says why it stopped
        assert_has(lines[-1], ["training stopped at G step 0", "nothing to resume from"])
        assert '"status": "failed"' in (run_dir / "status.json").read_text()


# ----------------------------------------------------------------------- gansn-sample

SAMPLE_CASES: list[tuple[list[str], list[str]]] = [
    (["n=0"], ["n must be a positive integer, got 0"]),
    (["n=-3"], ["n must be a positive integer, got -3"]),
    (["n=abc"], ["n must be a positive integer, got 'abc'"]),
    (["n=2.5"], ["n must be a positive integer, got 2.5"]),
    (["nrow=0"], ["nrow must be a positive integer"]),
    (["rows=0"], ["rows must be a positive integer"]),
    (["cols=1"], ["cols must be an integer >= 2"]),
    (["seed=-1"], ["seed must be an integer >= 0"]),
    (["batch_size=0"], ["batch_size must be a positive integer"]),
    (["ema=maybe"], ["ema must be true or false"]),
    (["device=gpu"], ["device must be auto, cpu, cuda, cuda:N or mps"]),
    (["out=grid.jpg"], ["out must be null or a .png file path, got 'grid.jpg'"]),
    (["interp=interp.gif"], ["interp must be null or a .png file path"]),
    (["npz=samples.txt"], ["npz must be null or a .npz file path"]),
    (["out={tmp}/adir.png"], ["adir.png is a directory"]),
    (["out={blocker}/grid.png"], ["is not a directory"]),
    (["out=a.png", "interp=a.png"], ["must be different files"]),
    (["nn=3"], ["unknown option 'nn'", "did you mean 'n'?"]),
    (["n"], ["expected key=value, got 'n'"]),
    (["n=[1"], ["n=[1: not a valid value"]),
    (["ckpt={tmp}/nope.pt"], ["checkpoint", "nope.pt does not exist"]),
    (["ckpt={tmp}"], ["no checkpoint at"]),
    (["ckpt={png}"], ["grid.png"]),
    (["npz={tmp}/" + "b" * 300 + ".npz"], ["is 304 bytes long", "at most 255"]),
]


@pytest.mark.parametrize(
    ("args", "fragments"), SAMPLE_CASES, ids=[" ".join(c[0]) for c in SAMPLE_CASES]
)
def test_sample_refuses(disk, monkeypatch, capsys, args, fragments):
    monkeypatch.chdir(disk["tmp"])
    argv = [a.format(**disk) for a in args]
    if not any(a.startswith("ckpt=") for a in argv):
        argv.insert(0, f"ckpt={disk['run']}")
    if not any(a.startswith("out=") for a in argv):
        argv.append(f"out={disk['png']}")  # an earlier grid, which must survive
    before = snapshot(disk["tmp"])
    line = refused(capsys, lambda: run_cli(sample_main, argv))
    assert_has(line, fragments)
    assert snapshot(disk["tmp"]) == before


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="no /proc here")
def test_sample_refuses_a_folder_nothing_can_be_created_in(disk, monkeypatch, capsys):
    # as root every permission check passes: only trying tells that /proc takes no files
    line = refused(capsys, lambda: run_cli(sample_main, [f"ckpt={disk['run']}", "out=/proc/a.png"]))
    assert_has(line, ["out=/proc/a.png", "/proc", "choose another path"])
    assert not Path("/proc/a.png").exists()


def test_sample_needs_its_checkpoint(capsys):
    line = refused(capsys, lambda: run_cli(sample_main, ["n=4"]))
    assert_has(line, ["missing required option(s): ckpt=..."])


# ------------------------------------------------------------------------- gansn-eval

EVAL_CASES: list[tuple[list[str], list[str]]] = [
    (["num_real=0"], ["num_real must be null or a positive integer"]),
    (["num_fake=0"], ["num_fake must be a positive integer"]),
    (["num_fake=-5"], ["num_fake must be a positive integer"]),
    (["batch_size=0"], ["batch_size must be a positive integer"]),
    (["seed=-1"], ["seed must be an integer >= 0"]),
    (["real_split=val"], ["real_split must be one of train, test"]),
    (["ema=maybe"], ["ema must be true or false"]),
    (["download=yes please"], ["download must be true or false"]),
    (["device=tpu"], ["device must be auto, cpu, cuda, cuda:N or mps"]),
    (["dataset=5"], ["dataset must be null or a mapping"]),
    (["metrics=[fid,kdi]"], ["unknown metric 'kdi'", "did you mean 'kid'?"]),
    (
        ["metrics=[fid,{{name: kid, subset_sise: 10}}]"],
        ["metric 'kid' has no option 'subset_sise'", "did you mean 'subset_size'?"],
    ),
    (["features=incepton"], ["unknown feature extractor 'incepton'", "'inception'"]),
    (["out=results.txt"], ["out must be null or a .json file path"]),
    (["out={tmp}/adir.json"], ["adir.json is a directory"]),
    (["metric=fid"], ["unknown option 'metric'", "did you mean 'metrics'?"]),
    (["real=imagenet"], ["real=imagenet: no such file or folder, and not a dataset name"]),
    (["fake={tmp}/nope.pt"], ["nope.pt does not exist"]),
    (["dataset={{split: test}}"], ["dataset.split does not apply to the image folder"]),
    # each metric's fewest samples (issue 24), refused before anything is read
    (
        ["num_fake=1"],
        ["metric 'fid': num_fake must be an integer >= 2, got 1", "a covariance needs"],
    ),
    (["metrics=[kid]", "num_real=1"], ["metric 'kid': num_real must be an integer >= 2"]),
    (["metrics=[{{name: kid, subset_size: 1}}]"], ["metric 'kid': subset_size must be"]),
    (
        ["metrics=[prdc]"],
        ["metric 'prdc': num_real must be an integer >= 6, got 4", "k_pr=3", "k_dc=5"],
    ),
    (["metrics=[{{name: pr, k: 4}}]"], ["metric 'pr': num_real must be an integer >= 5"]),
    (["metrics=[{{name: is, splits: 10}}]"], ["metric 'is': num_fake must be an integer >= 10"]),
    (["metrics=[{{name: ndb, num_bins: 5}}]"], ["metric 'ndb': num_real must be an integer >= 5"]),
    (
        ["metrics=[{{name: fid_inf, min_n: 4}}]"],
        ["metric 'fid_inf': num_fake must be an integer >= 5"],
    ),
]


def _eval_argv(disk: dict[str, Path], args: list[str]) -> list[str]:
    argv = [a.format(**disk) for a in args]
    base = {
        "real": str(disk["images"]),
        "fake": str(disk["npz"]),
        "metrics": "[fid]",
        "features": "raw",
        "num_real": "4",
        "num_fake": "4",
        "cache_dir": str(disk["tmp"] / "cache"),
        "out": str(disk["json"]),
    }
    given = {a.partition("=")[0] for a in argv}
    return [f"{k}={v}" for k, v in base.items() if k not in given] + argv


@pytest.mark.parametrize(
    ("args", "fragments"), EVAL_CASES, ids=[" ".join(c[0]) for c in EVAL_CASES]
)
def test_eval_refuses(disk, monkeypatch, capsys, args, fragments):
    monkeypatch.chdir(disk["tmp"])
    before = snapshot(disk["tmp"])
    line = refused(capsys, lambda: run_cli(eval_main, _eval_argv(disk, args)))
    assert_has(line, fragments)
    assert snapshot(disk["tmp"]) == before


def _damage(disk: dict[str, Path], case: str) -> tuple[list[str], Path]:
    """A damaged input of ``case`` and the gansn-eval options that point at it."""
    tmp = disk["tmp"]
    if case == "image not an image":
        bad = disk["images"] / "9.png"
        bad.write_bytes(b"GIF89a but not really")
        return [], bad
    if case == "image truncated":
        return [], _truncated(disk["images"] / "9.png")
    bad = tmp / "bad.npz"
    if case == "npz not a zip":
        bad.write_bytes(b"PK\x03\x04 and then nothing")
    elif case == "npz truncated":
        bad.write_bytes(disk["npz"].read_bytes()[:-40])
    elif case == "npz pickled objects":
        np.savez(bad, x=np.array([{"a": 1}], dtype=object))
    elif case == "npz wrong shape":
        np.savez(bad, x=np.zeros(3, np.float32))
    elif case == "npz no samples":
        np.savez(bad, y=np.zeros((4, 2), np.float32))
    elif case == "npz a text file":  # np.load calls it "pickled"
        bad.write_text("these are my notes, not samples\n")
    elif case == "npz float images out of range":  # values 0-5 taken as images
        np.savez(bad, x=np.linspace(0, 5, 4 * 3 * 8 * 8, dtype=np.float32).reshape(4, 3, 8, 8))
    elif case == "npz too few samples":  # fewer than FID's 2, with num_fake=4 asked for
        np.savez(bad, x=np.zeros((1, 8, 8, 3), np.uint8))
    elif case == "npz too few real samples":
        np.savez(bad, x=np.zeros((1, 8, 8, 3), np.uint8))
        return [f"real={bad}", "num_real=null"], bad
    elif case == "npz other image size":  # raw features compare samples of one shape
        np.savez(bad, x=np.zeros((4, 6, 6, 3), np.uint8))
    elif case == "npz points for images":
        np.savez(bad, x=np.zeros((4, 2), np.float32))
    elif case == "stats wrong shapes":
        np.savez(bad, mu=np.zeros(4), sigma=np.zeros((3, 3)))
        return [f"real={bad}"], bad
    return [f"fake={bad}"], bad


DAMAGED = [
    "image not an image",
    "image truncated",
    "npz not a zip",
    "npz truncated",
    "npz pickled objects",
    "npz wrong shape",
    "npz no samples",
    "npz a text file",
    "npz float images out of range",
    "npz too few samples",
    "npz too few real samples",
    "npz other image size",
    "npz points for images",
    "stats wrong shapes",
]


@pytest.mark.parametrize("case", DAMAGED)
def test_eval_names_a_damaged_file(disk, monkeypatch, capsys, case):
    monkeypatch.chdir(disk["tmp"])
    args, bad = _damage(disk, case)
    before = snapshot(disk["tmp"])
    line = refused(capsys, lambda: run_cli(eval_main, _eval_argv(disk, args)))
    assert str(bad) in line
    assert snapshot(disk["tmp"]) == before  # no result JSON, no cached statistics


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("npz other image size", "shape (3, 6, 6) and {images} of shape (3, 8, 8); expected one"),
        ("npz points for images", "shape (2,) and {images} of shape (3, 8, 8); expected both"),
        ("npz too few samples", "metric 'fid': {bad} holds 1 fake sample, fewer than the 2"),
        ("npz a text file", "{bad} is not an npz file (it does not start as a zip archive)"),
        (
            "npz float images out of range",
            "{bad}: x holds float images with values in [0, 5]; expected float images in [-1, 1]",
        ),
        ("npz too few real samples", "metric 'fid': {bad} holds 1 real sample, fewer than the 2"),
    ],
)
def test_eval_says_what_the_samples_are_and_what_they_must_be(
    disk, monkeypatch, capsys, case, expected
):
    monkeypatch.chdir(disk["tmp"])
    args, bad = _damage(disk, case)
    line = refused(capsys, lambda: run_cli(eval_main, _eval_argv(disk, args)))
    assert expected.format(bad=bad, images=disk["images"]) in line


def test_eval_refuses_points_of_another_dimension_than_the_dataset(disk, monkeypatch, capsys):
    monkeypatch.chdir(disk["tmp"])
    bad = disk["tmp"] / "points3.npz"
    np.savez(bad, x=np.zeros((50, 3), np.float32))
    before = snapshot(disk["tmp"])
    argv = _eval_argv(disk, ["real=ring8", f"fake={bad}", "num_real=50", "num_fake=50"])
    line = refused(capsys, lambda: run_cli(eval_main, argv))
    assert line == (
        f"error: {bad} holds samples of shape (3,) and dataset ring8 (train split) of shape "
        "(2,); expected points of the real ones' 2 dimensions"
    )
    assert snapshot(disk["tmp"]) == before


# --------------------------------------------- image folders: the same in training and eval


def _mixed_folder(root: Path) -> Path:
    for i, (w, h) in enumerate([(32, 32), (32, 32), (48, 40), (20, 24), (32, 32)]):
        _png(root / f"{i}.png", w, h, seed=i)
    _png(root / "gray.png", 32, 32, seed=9, mode="L")
    return root


def test_eval_folder_of_mixed_sizes_is_resized_as_training_resizes_it(tmp_path):
    folder = _mixed_folder(tmp_path / "mixed")
    train_set = build_dataset({"name": "folder", "root": str(folder), "img_size": 16})
    trained_on = torch.stack([train_set[i][0] for i in range(len(train_set))])
    source = FolderSource(folder, img_size=16, channels=3)
    evaluated = torch.cat(list(source.batches(len(train_set), 4, seed=0)))
    assert torch.equal(trained_on, evaluated)  # the same files, crops and filter


def test_eval_folder_of_mixed_sizes_defaults_to_the_most_common_size(tmp_path, caplog):
    source = FolderSource(_mixed_folder(tmp_path / "mixed"))
    assert source.shape == (3, 32, 32)  # 4 of 6 are 32x32; gray joins the colour images
    x = torch.cat(list(source.batches(6, 6, seed=0)))
    assert x.shape == (6, 3, 32, 32)
    assert "center-cropping and resizing" in caplog.text


def test_eval_on_a_mixed_folder_runs_end_to_end(tmp_path, capsys):
    folder = _mixed_folder(tmp_path / "mixed")
    npz = tmp_path / "fake.npz"
    np.savez(npz, x=np.random.default_rng(0).integers(0, 256, (6, 16, 16, 3), dtype=np.uint8))
    argv = [f"real={folder}", f"fake={npz}", "metrics=[fid]", "features=raw", "num_real=null"]
    argv += ["num_fake=6", "cache_dir=null", "dataset={img_size: 16}"]
    record = eval_main(argv)
    assert record["protocol"]["num_real"] == 6
    assert record["protocol"]["real"]["resize"] == "center crop, 16px"


def test_a_folder_of_one_size_is_read_as_it_is(tmp_path):
    for i in range(3):
        _png(tmp_path / f"{i}.png", 24, 16, seed=i)
    source = FolderSource(tmp_path)
    assert source.img_size is None and source.shape == (3, 16, 24)


def test_a_damaged_image_of_a_folder_dataset_is_named(tmp_path):
    _png(tmp_path / "ok.png", 8, 8)
    (tmp_path / "junk.png").write_bytes(b"no image here")
    with pytest.raises(ConfigError, match=r"junk\.png cannot be read"):
        build_dataset({"name": "folder", "root": str(tmp_path), "img_size": 8})
    (tmp_path / "junk.png").unlink()
    bad = _truncated(tmp_path / "cut.png")
    ds = build_dataset({"name": "folder", "root": str(tmp_path), "img_size": 8})
    with pytest.raises(ConfigError, match=r"cut\.png cannot be read \(image file is truncated"):
        ds[[str(p) for p in ds.files].index(str(bad))]


def test_a_damaged_image_read_in_a_dataloader_worker_is_still_one_line(tmp_path):
    _truncated(tmp_path / "cut.png")
    ds = build_dataset({"name": "folder", "root": str(tmp_path), "img_size": 8})
    stream = BatchStream(ds, 1, seed=0, num_workers=1, device=torch.device("cpu"))
    with pytest.raises(ConfigError) as err:
        stream.next_batch()
    assert str(err.value).startswith(f"image {tmp_path / 'cut.png'} cannot be read")
    assert "\n" not in str(err.value)


def test_as_source_names_a_damaged_npz(tmp_path):
    bad = tmp_path / "x.npz"
    bad.write_bytes(b"garbage")
    with pytest.raises(ConfigError, match=str(bad)):
        as_source(bad)


# -------------------------------------------------------------------- gansn-lipschitz

LIPSCHITZ_CASES: list[tuple[list[str], list[str]]] = [
    (["n_iter=0"], ["n_iter must be a positive integer"]),
    (["n=-1"], ["n must be an integer >= 0"]),
    (["mode=tran"], ["mode must be one of train, eval", "did you mean 'train'?"]),
    (["g=maybe"], ["g must be true or false"]),
    (["all=2"], ["all must be true or false"]),
    (["seed=-1"], ["seed must be an integer >= 0"]),
    (["bogus=1"], ["unknown option 'bogus'"]),
    (["ckpt={tmp}/nope.pt"], ["nope.pt does not exist"]),
]


@pytest.mark.parametrize(
    ("args", "fragments"), LIPSCHITZ_CASES, ids=[" ".join(c[0]) for c in LIPSCHITZ_CASES]
)
def test_lipschitz_refuses(disk, capsys, args, fragments):
    argv = [a.format(**disk) for a in args]
    if not any(a.startswith("ckpt=") for a in argv):
        argv.insert(0, f"ckpt={disk['run']}")
    before = snapshot(disk["tmp"])
    line = refused(capsys, lambda: lipschitz_main(argv))
    assert_has(line, fragments)
    assert snapshot(disk["tmp"]) == before


# ----------------------------------------------------------------------- gansn-report


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["{tmp}/nope"], ["argument sweep_dir", "nope is not a folder"]),
        (["{tmp}", "--out", "{blocker}"], ["argument --out", "a_file exists and is not a folder"]),
        (["{tmp}", "--bogus"], ["unrecognized arguments: --bogus"]),
    ],
)
def test_report_refuses(disk, capsys, args, fragments):
    before = snapshot(disk["tmp"])
    assert report_main([a.format(**disk) for a in args]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gansn-report: error: ")
    assert_has(lines[0], fragments)
    assert snapshot(disk["tmp"]) == before


def test_report_refuses_a_curve_no_run_logged(tmp_path, capsys):
    run = tmp_path / "sweep" / "0"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("seed: 0\n")
    (run / "status.json").write_text('{"status": "completed", "step": 2}')
    (run / "metrics.jsonl").write_text(
        '{"step": 1, "metrics/recall": 0.1}\n{"step": 2, "metrics/recall": 0.2}\n'
    )
    before = snapshot(tmp_path)
    argv = [str(tmp_path / "sweep"), "--curves", "metrics/recal", "--no-plots"]
    assert report_main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gansn-report: error: ")
    assert_has(lines[0], ["'metrics/recal'", "did you mean 'metrics/recall'?"])
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------------------- scripts/


def _script(name: str) -> Any:
    # as `python scripts/<name>.py` runs it: its folder first on sys.path (scripts/_timing.py)
    if str(ROOT / "scripts") not in sys.path:
        sys.path.insert(0, str(ROOT / "scripts"))
    spec = importlib.util.spec_from_file_location(
        f"_script_{name}", ROOT / "scripts" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SCRIPT_CASES: list[tuple[str, list[str], list[str]]] = [
    ("bench_train", ["--steps", "0"], ["argument --steps", "must be a positive integer, got 0"]),
    ("bench_train", ["--repeats", "x"], ["argument --repeats", "got 'x'"]),
    ("bench_train", ["--width", "-1"], ["argument --width", "must be a positive number"]),
    ("bench_train", ["--lipschitz", "0"], ["argument --lipschitz", "positive integer"]),
    ("bench_train", ["--norms", "none,spectrl"], ["'spectrl'", "did you mean 'spectral'?"]),
    ("bench_pacgan", ["--pairs", "0"], ["argument --pairs", "must be a positive integer"]),
    ("bench_pacgan", ["--steps", "-2"], ["argument --steps", "must be a positive integer"]),
    ("bench_pacgan", ["--log-every", "0"], ["argument --log-every", "positive integer"]),
    ("bench_pacgan", ["--norm", "lyer"], ["argument --norm", "did you mean 'layer'?"]),
    ("bench_metrics", ["--images", "0"], ["argument --images", "must be a positive integer"]),
    ("bench_metrics", ["--batch", "-1"], ["argument --batch", "must be a positive integer"]),
    ("bench_metrics", ["--threads", "-1"], ["argument --threads", "must be an integer >= 0"]),
    ("bench_metrics", ["--repeats", "0"], ["argument --repeats", "must be a positive integer"]),
    ("pacgan_report", ["{tmp}", "--out", "o", "--epochs", "0,x"], ["argument --epochs", "0,x"]),
    ("pacgan_report", ["{tmp}", "--out", "{blocker}"], ["--out", "is not a directory"]),
    ("pacgan_report", ["{tmp}/nope", "--out", "o"], ["is not a folder of runs"]),
    ("pacgan_report", ["{tmp}"], ["the following arguments are required: --out"]),
    ("bench_oversubscribe", ["--blocks", "0"], ["argument --blocks", "positive integer"]),
    ("bench_oversubscribe", ["--variants", "threads=3"], ["argument --variants", "threads=3"]),
    ("bench_denormal", ["--steps", "0"], ["argument --steps", "must be a positive integer"]),
    ("bench_denormal", ["--warm", "-1"], ["argument --warm", "must be an integer >= 0"]),
    ("stacked_real_modes", ["--n", "0"], ["argument --n", "must be a positive integer"]),
    ("stacked_real_modes", ["--split", "val"], ["argument --split", "'val'"]),
    ("verdicts", ["{tmp}/nope", "--claims", "x.yaml"], ["nope does not exist", "gansn-report"]),
    ("verdicts", ["{tmp}", "--claims", "x.yaml"], ["summary.json does not exist"]),
    ("verdicts", ["{png}", "--claims", "x.yaml"], ["grid.png", "not a report summary"]),
    ("add_seed_logs", ["{run}", "--logs", "{tmp}"], ["spectra_breadth.json does not exist"]),
    ("add_seed_logs", ["{run}"], ["the following arguments are required: --logs"]),
    ("study_cells", ["{tmp}/nope.json"], ["nope.json does not exist", "summary.json"]),
    ("profile_step", ["--variants", "fp16"], ["argument --variants", "'fp16'"]),
    ("seed_groups", ["{tmp}", "--early", "0,1"], ["summary.json does not exist", "gansn-report"]),
    ("seed_groups", ["{tmp}", "--early", "x"], ["argument --early", "'x'"]),
    ("sv_spectrum", ["{run}", "--out", "sv.jpg"], ["argument --out", ".png or .pdf or .svg"]),
    ("sv_spectrum", ["{tmp}/nope.pt", "--out", "{tmp}/sv.png"], ["nope.pt does not exist"]),
    ("sv_spectrum", ["{png}", "--out", "{tmp}/sv.png"], ["grid.png"]),
]


@pytest.mark.parametrize(
    ("name", "args", "fragments"),
    SCRIPT_CASES,
    ids=[f"{c[0]} {' '.join(c[1])}" for c in SCRIPT_CASES],
)
def test_scripts_refuse(disk, monkeypatch, capsys, name, args, fragments):
    module = _script(name)
    argv = [a.format(**disk) for a in args]
    monkeypatch.chdir(disk["tmp"])
    monkeypatch.setattr(sys, "argv", [f"{name}.py", *argv])
    before = snapshot(disk["tmp"])

    def call() -> None:
        from gansn.cli.args import run_script

        takes_argv = "argv" in module.main.__code__.co_varnames[: module.main.__code__.co_argcount]
        run_script(lambda: module.main(argv) if takes_argv else module.main(), name)

    line = refused(capsys, call)
    assert_has(line, fragments)
    assert snapshot(disk["tmp"]) == before


def test_eval_caches_under_gansn_cache_as_training_does(disk, monkeypatch, tmp_path):
    import gansn.metrics.core as core

    seen = {}

    def fake_evaluate(*args, **kwargs):
        seen["cache_dir"] = kwargs["cache_dir"]
        return {}, {}

    monkeypatch.setattr(core, "evaluate", fake_evaluate)
    monkeypatch.setenv("GANSN_CACHE", str(tmp_path / "cache"))
    points = disk["tmp"] / "points2.npz"
    np.savez(points, x=np.zeros((50, 2), np.float32))
    eval_main(["real=ring8", f"fake={points}", "num_real=50", "num_fake=50", "metrics=[fid]"])
    assert seen["cache_dir"] == str(tmp_path / "cache")
    seen.clear()
    eval_main(["real=ring8", f"fake={points}", "num_fake=50", "metrics=[fid]", "cache_dir=x"])
    assert seen["cache_dir"] == "x"  # the command line wins over the environment


@pytest.mark.parametrize("name", ["sample", "eval", "lipschitz"])
def test_help_is_plain_text_and_lists_every_option(name, capsys):
    import importlib

    cli = importlib.import_module(f"gansn.cli.{name}")
    with pytest.raises(SystemExit) as exit_:
        (cli._main if name == "lipschitz" else cli.main_args)(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "``" not in out
    listed = out.split("options (key=value):", 1)[1]
    for key in cli.OPTIONS.keys:
        assert f"\n  {key} " in listed, key
