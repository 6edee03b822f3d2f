"""gansn.sampling.reestimate_batch_norm against the moving average computed by hand."""

from __future__ import annotations

import torch
from torch import nn

from gansn.sampling import reestimate_batch_norm


class TinyG(nn.Module):
    z_dim = 3

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 4, bias=False)
        self.bn = nn.BatchNorm1d(4, momentum=0.05, eps=1e-4)
        self.drop = nn.Dropout(0.5)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.drop(self.bn(self.lin(z)))


def test_population_statistics_follow_the_moving_average_of_fresh_batches():
    torch.manual_seed(0)
    G = TinyG()
    G.bn.running_mean.fill_(3.0)
    G.bn.running_var.fill_(2.0)
    weight = G.lin.weight.detach().clone()
    # the same latents the function draws, from the same private generator
    gen = torch.Generator().manual_seed(7)
    mean, var = torch.full((4,), 3.0), torch.full((4,), 2.0)
    for _ in range(5):
        h = torch.randn(10, 3, generator=gen) @ weight.T
        mean = 0.95 * mean + 0.05 * h.mean(0)
        var = 0.95 * var + 0.05 * h.var(0, unbiased=True)  # torch keeps the unbiased variance
    state = torch.get_rng_state()
    assert reestimate_batch_norm(G, 5, 10, seed=7) == 1
    torch.testing.assert_close(G.bn.running_mean, mean)
    torch.testing.assert_close(G.bn.running_var, var)
    assert torch.equal(G.lin.weight, weight)  # weights frozen
    assert not G.training and not G.drop.training  # left in eval mode
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is untouched


def test_a_generator_without_batch_norm_is_left_alone():
    G = nn.Sequential(nn.Linear(2, 2))
    G.z_dim = 2
    before = [p.clone() for p in G.state_dict().values()]
    assert reestimate_batch_norm(G, 50, 100) == 0
    assert all(torch.equal(a, b) for a, b in zip(before, G.state_dict().values()))


def test_the_eval_hook_evaluates_a_recalibrated_copy_and_records_it():
    from types import SimpleNamespace

    from gansn.training.hooks import EvalHook

    torch.manual_seed(1)
    G = TinyG()
    G.bn.running_mean.fill_(3.0)
    seen = {}

    def evaluator(g):
        seen["mean"] = g.bn.running_mean.clone()
        return {"metrics/x": 1.0}, {"num_fake": 4}

    out = EvalHook(evaluator, every=1, bn_updates=5, bn_batch=10, seed=3)(
        SimpleNamespace(sampler=G), step=7
    )
    want = TinyG()
    want.load_state_dict(G.state_dict())
    reestimate_batch_norm(want, 5, 10, seed=10)  # seed + step
    torch.testing.assert_close(seen["mean"], want.bn.running_mean)
    assert torch.equal(G.bn.running_mean, torch.full((4,), 3.0))  # the run's G is untouched
    assert out["protocol"] == {"num_fake": 4, "bn_updates": 5, "bn_batch": 10}
