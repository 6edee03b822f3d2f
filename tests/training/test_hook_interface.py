"""What the loop and the CLI ask of hooks: the evaluation hook keeps best.pt itself, and the
CLI's summary and sweeper objective come from the hooks, not from hasattr and fixed tags."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from gansn.cli.train import objective
from gansn.training.hooks import EvalHook, Hook


class _Host:
    """A loop that records which checkpoints a hook asked it to save."""

    def __init__(self) -> None:
        self.saved: list[str] = []

    def save(self, name: str) -> None:
        self.saved.append(name)


@pytest.mark.parametrize(
    "tag,values,saves_at,best",
    [
        # FID: lower is better -> saved at steps 1, 2 and 4; the best is 1.5 at step 4
        ("metrics/fid", [3.0, 2.0, 2.5, 1.5], [1, 2, 4], (1.5, 4)),
        # recall: higher is better -> saved at steps 1 and 3
        ("metrics/recall", [0.2, 0.1, 0.4, 0.3], [1, 3], (0.4, 3)),
        # a NaN is never the best
        ("metrics/fid", [float("nan"), 5.0, float("nan")], [2], (5.0, 2)),
    ],
)
def test_the_eval_hook_keeps_best_pt_in_the_metrics_direction(tag, values, saves_at, best):
    hook, host, saved_at = EvalHook(object(), every=1, best_tag=tag), _Host(), []
    for step, v in enumerate(values, 1):
        before = len(host.saved)
        hook.after(host, step, {tag: v, "metrics/other": 0.0})
        if len(host.saved) > before:
            saved_at.append(step)
    assert saved_at == saves_at
    assert set(host.saved) == {"best.pt"}
    assert hook.best == {"tag": tag, "value": best[0], "step": best[1]}


def test_an_eval_hook_without_a_best_tag_saves_nothing():
    hook, host = EvalHook(object(), every=1), _Host()
    hook.after(host, 1, {"metrics/fid": 1.0})
    assert host.saved == [] and dict(hook.best) == {}


def test_the_sweeper_objective_comes_from_the_hooks():
    final = {"metrics/fid": 7.0, "modes/kl": 0.25, "loss/g": 1.5}
    with_eval = SimpleNamespace(hooks=[Hook(), EvalHook(object(), every=1, best_tag="modes/kl")])
    assert objective(with_eval, final) == 0.25  # the tag the run keeps best.pt by
    fid_default = SimpleNamespace(hooks=[EvalHook(object(), every=1)])
    assert objective(fid_default, final) == 7.0
    assert objective(SimpleNamespace(hooks=[Hook()]), final) == 1.5  # no metric: G's loss
