"""The checkpoint format's refusals: one line per bad file, in gansn's words, nothing written.

One small trained run provides a good checkpoint; every case writes one bad variant, and
the readers (``load_generator``, ``gansn-sample``, resuming) must refuse it with exit code 2
and one line that says what is wrong, leaving the file as it was.
"""

from __future__ import annotations

import os
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from gansn.checkpoint import load_checkpoint, load_generator, load_models
from gansn.cli.args import run_cli
from gansn.cli.sample import main_args as sample_main
from gansn.config import compose, to_plain
from gansn.errors import ConfigError
from gansn.training import build_trainer

TINY = [
    "experiment=quick",
    "steps=2",
    "batch_size=4",
    "grid.n=4",
    "grid.nrow=2",
    "log_every=1",
    "sample_every=0",
    "ckpt_every=0",
    "dataset.n=32",
]


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> tuple[dict[str, Any], Path]:
    """(the checkpoint dict, its run dir) of a 2-step run, trained once for the module."""
    run = tmp_path_factory.mktemp("good") / "run"
    build_trainer(to_plain(compose(TINY)), run, overrides=TINY).train()
    return torch.load(run / "checkpoints" / "last.pt", weights_only=True), run


class _Code:
    """Pickles as a call of os.system: what a malicious "checkpoint" carries."""

    def __reduce__(self) -> tuple:
        return (os.system, ("echo should-never-run",))


def _edit(**changes: Any) -> Callable[[dict, Path], None]:
    def write(ckpt: dict, path: Path) -> None:
        new = dict(ckpt)
        for k, v in changes.items():
            if v is _DROP:
                new.pop(k)
            else:
                new[k] = v(ckpt[k]) if callable(v) else v
        torch.save(new, path)

    return write


_DROP = object()


def _shrink_first(sd: dict) -> dict:
    k = next(k for k, v in sd.items() if v.ndim)
    return {**sd, k: sd[k][:1]}


def _models(**changes: Any) -> Callable[[dict], dict]:
    """Edit the state dicts under ``models`` (``_DROP`` removes one)."""

    def edit(models: dict) -> dict:
        new = {**models, **{k: v(models[k]) if callable(v) else v for k, v in changes.items()}}
        return {k: v for k, v in new.items() if v is not _DROP}

    return edit


# (case id, how to write the bad file, fragment of the one-line message)
BAD_FILES = [
    ("text file", lambda c, p: p.write_text("hello"), "not a torch.save file"),
    ("empty file", lambda c, p: p.write_bytes(b""), "is empty (0 bytes)"),
    ("plain pickle", lambda c, p: p.write_bytes(pickle.dumps({"a": 1})), "not a torch.save"),
    ("truncated zip", lambda c, p: torch.save(c, p) or _truncate(p), "truncated or corrupt"),
    ("one flipped byte", lambda c, p: torch.save(c, p) or _flip(p), "does not match the CRC-32"),
    ("a number", lambda c, p: torch.save(5, p), "value of type int"),
    ("a list", lambda c, p: torch.save([1, 2], p), "value of type list"),
    ("pickled code", lambda c, p: torch.save({"format": 1, "x": _Code()}, p), "run code"),
    ("no format", _edit(format=_DROP), "no 'format' key"),
    ("format a string", _edit(format="1"), "'format' is '1' (str)"),
    ("format a float", _edit(format=1.0), "'format' is 1.0 (float)"),
    ("format from the future", _edit(format=99), "format 99, newer"),
    ("format zero", _edit(format=0), "format 0, which no gansn wrote"),
    ("no spec", _edit(spec=_DROP), "lacks 'spec'"),
    ("no models", _edit(models=_DROP), "lacks 'models'"),
    ("step a string", _edit(step="2"), "'step' is of type str"),
    ("negative step", _edit(step=-1), "'step' is -1"),
    ("spec not a spec", _edit(spec={"arch": "dcgan"}), "'spec' is not a model spec"),
    ("models without D", _edit(models=lambda m: {"G": m["G"]}), "lacks a 'D' state dict"),
    (
        "G tensor shape",
        _edit(models=_models(G=_shrink_first, G_ema=_DROP)),
        "models.G does not fit",
    ),
    ("G_ema tensor shape", _edit(models=_models(G_ema=_shrink_first)), "models.G_ema does not fit"),
    ("G missing tensor", _edit(models=_models(G_ema=lambda sd: dict(list(sd.items())[1:]))), "no "),
]


def _flip(path: Path) -> None:
    """Flip one byte inside the largest tensor's record, as a bad disk sector would."""
    import zipfile

    with zipfile.ZipFile(path) as z:
        info = max(z.infolist(), key=lambda i: i.file_size)
    data = bytearray(path.read_bytes())
    # the record's data follows its 30-byte local header, name and extra field
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    local_extra = int.from_bytes(data[info.header_offset + 28 : info.header_offset + 30], "little")
    at = info.header_offset + 30 + len(info.filename.encode()) + local_extra + info.file_size // 2
    assert start <= at < len(data)
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("case,write,fragment", BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_bad_checkpoint_is_one_clear_line(good, tmp_path, case, write, fragment, capsys):
    ckpt, _ = good
    bad = tmp_path / "bad.pt"
    write(ckpt, bad)
    before = bad.read_bytes()

    with pytest.raises(ConfigError) as err:
        load_models(bad, ema=True)
    msg = str(err.value)
    assert fragment in msg, msg
    assert "\n" not in msg and str(bad) in msg
    assert "weights_only" not in msg  # never the advice to load it unsafely

    # the console script: exit code 2, the same one line on stderr, nothing else
    with pytest.raises(SystemExit) as exit_:
        run_cli(sample_main, [f"ckpt={bad}", f"out={tmp_path / 'grid.png'}"])
    assert exit_.value.code == 2
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert err_lines == [f"error: {msg}"]
    assert bad.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pt"]  # no grid written


def test_pickled_code_never_runs(good, tmp_path, capfd):
    bad = tmp_path / "evil.pt"
    torch.save({"format": 1, "x": _Code()}, bad)
    with pytest.raises(ConfigError, match=r"(posix|os)\.system"):
        load_checkpoint(bad)
    assert "should-never-run" not in capfd.readouterr().out


def _resume_edit(**changes: Any) -> Callable[[dict], dict]:
    return lambda c: {**c, **{k: v(c[k]) if callable(v) else v for k, v in changes.items()}}


def _adam_shape(opt: dict) -> dict:
    state = {i: dict(s) for i, s in opt["G"]["state"].items()}
    state[0]["exp_avg"] = state[0]["exp_avg"].flatten()[:1]
    return {**opt, "G": {**opt["G"], "state": state}}


# damage only a resume reads: sampling still works, resuming refuses in one line
BAD_FOR_RESUME = [
    ("no optimizer state", lambda c: {k: v for k, v in c.items() if k != "optim"}, "lacks 'optim'"),
    ("fixed noise shape", _resume_edit(fixed_noise=torch.zeros(4, 3)), "'fixed_noise' is (4, 3)"),
    ("adam moment shape", _resume_edit(optim=_adam_shape), "optim.G does not fit"),
    ("rng state", _resume_edit(rng={"torch": "x"}), "'rng' state cannot be restored"),
    ("data state", _resume_edit(data={"nonsense": 1}), "'data' state cannot be restored"),
]


@pytest.mark.parametrize("case,damage,fragment", BAD_FOR_RESUME, ids=[c[0] for c in BAD_FOR_RESUME])
def test_resume_refuses_a_damaged_checkpoint(good, tmp_path, case, damage, fragment):
    ckpt, run = good
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    last = copy / "checkpoints" / "last.pt"
    torch.save(damage(ckpt), last)
    files = {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()}

    load_generator(last)  # sampling needs none of it
    cfg = to_plain(compose([*TINY, "steps=4"]))
    with pytest.raises(ConfigError) as err:
        build_trainer(cfg, copy, overrides=TINY)  # re-running into the run dir resumes it
    assert fragment in str(err.value) and "\n" not in str(err.value), str(err.value)
    assert {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()} == files
