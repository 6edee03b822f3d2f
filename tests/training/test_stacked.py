"""Stacked multi-seed steps compute each seed's single-seed training.

The reference is the ordinary :class:`~gansn.training.Trainer` of each seed, stepped alone
(``train_step``), as ``gansn-train ... seed=s`` steps it.  PacGAN's layer types (BN-ReLU G
without hidden biases, maxout D) at a small width so the tests take seconds.
"""

from __future__ import annotations

import pytest
import torch

from gansn.config import compose, to_plain
from gansn.errors import ConfigError
from gansn.training import build_trainer
from gansn.training.stacked import StackedStep, _Amax, check_supported, generator_from_global

SMALL = [
    "experiment=pacgan_grid25",
    "model.options.g_hidden=32",
    "model.options.d_hidden=16",
    "dataset.n=2000",
    "batch_size=20",
    "steps=1000",
    "metrics=none",
    "lipschitz_every=0",
    "sample_every=0",
    "ckpt_every=0",
    "threads=1",
]
STEPS = 50


def _cfg(seed: int, *extra: str) -> dict:
    return to_plain(compose([*SMALL, f"seed={seed}", *extra]))


def _reference(seed: int, run_dir, steps: int = STEPS):
    """Seed ``seed`` trained alone: its trainer, per-step losses, real batches, latents."""
    t = build_trainer(_cfg(seed), run_dir)
    reals, latents = [], []
    real, lat = t._real, t.latents
    t._real = lambda: reals.append(real()) or reals[-1]
    t.latents = lambda n: latents.append(lat(n)) or latents[-1]
    losses = [t.train_step() for _ in range(steps)]
    return t, losses, reals, latents


def _stacked(seeds, tmp_path):
    trainers, gens = [], []
    for s in seeds:
        # built one after the other, as their runs would be; each run's latents continue
        # from the global RNG its construction left, captured before the next seeds it anew
        trainers.append(build_trainer(_cfg(s), tmp_path / f"stacked{s}"))
        gens.append(generator_from_global())
    return StackedStep(trainers, gens)


def test_generator_from_global_draws_what_the_global_rng_would():
    torch.manual_seed(3)
    g = generator_from_global()
    assert torch.equal(torch.randn(100, 2, generator=g), torch.randn(100, 2))


def test_amax_function_has_amax_values_and_gradient_with_and_without_ties():
    x = torch.randn(3, 4, 5, 6, requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    g = torch.randn(3, 4, 6)
    _Amax.apply(x, 2).backward(g)
    x2.amax(2).backward(g)
    assert torch.equal(x.grad, x2.grad)
    tied = torch.zeros(2, 3, 4, 5)  # every entry tied: amax splits the gradient evenly
    a, b = tied.clone().requires_grad_(True), tied.clone().requires_grad_(True)
    g = torch.randn(2, 3, 5)
    _Amax.apply(a, 2).backward(g)
    b.amax(2).backward(g)
    assert torch.allclose(a.grad, b.grad)


def test_stacked_seeds_train_as_single_seed_runs(tmp_path):
    seeds = (0, 1, 2)
    refs = {s: _reference(s, tmp_path / f"ref{s}") for s in seeds}
    step = _stacked(seeds, tmp_path)
    # identical initialisation: the stacked tensors are the seeds' own models, stacked
    for i, s in enumerate(seeds):
        ref = build_trainer(_cfg(s), tmp_path / f"init{s}")
        for net in (step.G, step.D):
            for stacked, own in net.pairs(i):
                assert torch.equal(stacked, own)
        for who in ("G", "D"):
            mine, theirs = getattr(step.trainers[i], who), getattr(ref, who)
            for a, b in zip(mine.state_dict().values(), theirs.state_dict().values()):
                assert torch.equal(a, b)
    # identical data order and latents, drawn as the stacked step draws them
    for i, s in enumerate(seeds):
        t = step.trainers[i]
        _, _, reals, latents = refs[s]
        g = torch.Generator()
        g.set_state(step.generators[i].get_state())
        stream_state = t.stream.state_dict()
        for k in range(3):
            assert torch.equal(t._real(), reals[k])
            assert torch.equal(torch.randn(latents[k].shape, generator=g), latents[k])
        t.stream.load_state_dict(stream_state)
    # losses equal to float tolerance, step by step
    outs = [step.step() for _ in range(STEPS)]
    for i, s in enumerate(seeds):
        _, losses, _, _ = refs[s]
        for k in range(STEPS):
            for key in ("loss/d", "loss/g", "d/real", "d/fake"):
                torch.testing.assert_close(
                    outs[k][i][key], losses[k][key], rtol=1e-4, atol=1e-5, msg=f"{s} {k} {key}"
                )
        assert step.trainers[i].step == STEPS
    # the models written back are the single-seed run's, to float tolerance
    for i, s in enumerate(seeds):
        step.write_back(i)
        ref_t = refs[s][0]
        for who in ("G", "D"):
            mine = getattr(step.trainers[i], who).state_dict()
            for k, v in getattr(ref_t, who).state_dict().items():
                torch.testing.assert_close(mine[k], v, rtol=1e-3, atol=1e-5, msg=f"{who}.{k}")


def test_a_stacked_seed_checkpoint_resumes_as_an_ordinary_run(tmp_path):
    """Seed 0 stacked for 30 steps, saved, resumed alone for 20: the losses of a run trained
    alone for 50."""
    _, ref_losses, _, _ = _reference(0, tmp_path / "ref", steps=50)
    step = _stacked((0, 1), tmp_path)
    for _ in range(30):
        step.step()
    step.write_back(0)
    t = step.trainers[0]
    torch.set_rng_state(step.generators[0].get_state())  # the RNG its checkpoint records
    t.save()
    resumed = build_trainer(_cfg(0), tmp_path / "resumed", resume=t.run_dir)
    assert resumed.step == 30
    for k in range(30, 50):
        out = resumed.train_step()
        for key in ("loss/d", "loss/g"):
            torch.testing.assert_close(out[key], ref_losses[k][key], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "override, words",
    [
        ("update=alternating", "update=alternating"),
        ("n_dis=2", "n_dis=2"),
        ("amp=bf16", "amp=bf16"),
        ("ema.enabled=true", "ema.enabled=true"),
        ("optim.d._target_=torch.optim.RMSprop", "optim.d=torch.optim.RMSprop"),
    ],
)
def test_unsupported_configs_are_refused_in_one_line(override, words):
    cfg = to_plain(compose([*SMALL, override]))
    with pytest.raises(ConfigError, match="multi-seed training does not support") as err:
        check_supported(cfg)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_other_models_are_refused(tmp_path):
    cfg = to_plain(compose(["experiment=quick"]))
    with pytest.raises(ConfigError, match="model=dcgan"):
        check_supported(cfg)
