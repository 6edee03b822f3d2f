"""Multi-seed stacked training leaves each seed an ordinary run: the logs, evaluations and
checkpoints of ``gansn-train ... seed=s``, to float tolerance, and resumable alone."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from gansn.cli.train_seeds import main
from gansn.config import compose, to_plain
from gansn.training import build_trainer, train
from gansn.training.multiseed import build_seeds, train_seeds

OVERRIDES = [
    "experiment=pacgan_grid25",
    "model.options.g_hidden=32",
    "model.options.d_hidden=16",
    "dataset.n=2000",
    "batch_size=20",
    "steps=40",
    "log_every=10",
    "metrics.eval_every=20",
    "metrics.num_fake=200",
    "metrics.num_real=200",
    "metrics.bn_updates=2",
    "lipschitz_every=0",
    "sample_every=20",
    "ckpt_every=20",
    "grid.n=100",
    "threads=1",
]


def _cfg(seed: int, *extra: str) -> dict:
    return to_plain(compose([*OVERRIDES, f"seed={seed}", *extra]))


def _rows(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _assert_same_logs(mine: list[dict], ref: list[dict]) -> None:
    assert [r["step"] for r in mine] == [r["step"] for r in ref]
    for a, b in zip(mine, ref):
        assert set(a) == set(b)
        for k, v in b.items():
            if k.startswith("time") or not isinstance(v, float):
                continue
            assert a[k] == pytest.approx(v, rel=1e-3, abs=1e-5), (b["step"], k)


def test_stacked_seeds_log_and_evaluate_as_single_seed_runs(tmp_path, caplog):
    caplog.set_level(logging.INFO)  # the root logger passes INFO records to train.log
    seeds = (0, 1)
    dirs = [tmp_path / f"s{s}" for s in seeds]
    trainers, rng = build_seeds([_cfg(s) for s in seeds], dirs, [[f"seed={s}"] for s in seeds])
    results = train_seeds(trainers, rng)
    assert all(isinstance(r, dict) for r in results), results
    for s, d in zip(seeds, dirs):
        ref = tmp_path / f"ref{s}"
        train(_cfg(s), ref)
        _assert_same_logs(_rows(d), _rows(ref))
        assert json.loads((d / "status.json").read_text())["status"] == "completed"
        assert (d / "samples" / "final.png").is_file()
        # each train.log holds its own seed's lines only
        assert str(d) in (d / "train.log").read_text()
        assert str(dirs[1 - s]) not in (d / "train.log").read_text()


def test_a_stacked_run_resumes_alone_as_an_ordinary_run(tmp_path):
    seeds = (3, 4)
    dirs = [tmp_path / f"s{s}" for s in seeds]
    trainers, rng = build_seeds([_cfg(s) for s in seeds], dirs, [[f"seed={s}"] for s in seeds])
    train_seeds(trainers, rng)
    resumed = build_trainer(_cfg(3, "steps=60"), dirs[0])  # its last.pt, as gansn-train finds it
    assert resumed.step == 40
    resumed.train()
    ref = tmp_path / "ref"
    train(_cfg(3, "steps=60"), ref)
    _assert_same_logs(_rows(dirs[0]), _rows(ref))
    sd = torch.load(dirs[0] / "checkpoints" / "last.pt", weights_only=True)
    assert sd["step"] == 60


def test_cli_trains_then_finds_nothing_to_do(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    args = ["--seeds", "0", "1", "--dir", str(tmp_path), *OVERRIDES, "steps=4", "metrics=none"]
    with pytest.raises(SystemExit) as ex:
        main(args)
    assert ex.value.code == 0
    for s in (0, 1):
        assert (tmp_path / f"s{s}" / "checkpoints" / "last.pt").is_file()
        overrides = (tmp_path / f"s{s}" / ".hydra" / "overrides.yaml").read_text()
        assert f"seed={s}" in overrides
    with pytest.raises(SystemExit) as ex:
        main(args)
    assert ex.value.code == 0
    assert "nothing to do" in caplog.text


@pytest.mark.parametrize(
    "overrides, words",
    [
        (["experiment=quick"], "model=dcgan"),
        ([*OVERRIDES, "update=alternating"], "update=alternating"),
        ([*OVERRIDES, "seed=3"], "--seeds sets seed"),
        ([*OVERRIDES, "norm@d_norm=layer"], "LayerNorm cannot be stacked"),
        ([*OVERRIDES, "norm@d_norm=spectral"], "reparametrized layer"),
    ],
)
def test_cli_refuses_in_one_line(tmp_path, capsys, overrides, words):
    with pytest.raises(SystemExit) as ex:
        main(["--seeds", "0", "1", "--dir", str(tmp_path), *overrides])
    assert ex.value.code == 2
    err = capsys.readouterr().err.strip()
    assert words in err and "\n" not in err
    assert not any(tmp_path.iterdir())
