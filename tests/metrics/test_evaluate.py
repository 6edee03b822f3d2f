"""The evaluate() driver: registry, sources, tags, protocol, caches."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
import torch
from torch import nn

from gansn.errors import ConfigError, UnknownNameError
from gansn.metrics import METRICS, Evaluator, evaluate
from gansn.metrics.fid import feature_stats, frechet_distance
from gansn.metrics.sources import as_source


def _ring_sampler(ring, modes: list[int]):
    def sample(n: int) -> torch.Tensor:
        k = torch.tensor(modes)[torch.randint(len(modes), (n,))]
        return torch.tensor(ring.centers, dtype=torch.float32)[k] + ring.std * torch.randn(n, 2)

    return sample


def test_a_misspelled_metric_option_is_refused_before_any_evaluation(ring) -> None:
    # the Evaluator is built before a run writes anything: the typo must fail there, not at
    # the first evaluation hours later
    with pytest.raises(
        ConfigError, match=r"metric 'kid' has no option 'subset_sise'.*'subset_size'"
    ):
        Evaluator(["fid", {"name": "kid", "subset_sise": 10}], ring, features="raw")


@pytest.mark.parametrize(
    ("entry", "line"),
    [
        (
            {"name": "class_modes", "min_confidence": 1.0},
            "min_confidence must be a number in [0, 1)",
        ),
        ({"name": "class_modes", "min_count": 0}, "min_count must be a positive integer, got 0"),
        ({"name": "kid", "subset_size": 1}, "subset_size must be an integer >= 2, got 1"),
        ({"name": "prdc", "k_pr": 2.5}, "k_pr must be a positive integer, got 2.5"),
        ({"name": "mixture_modes", "convention": "pacgn"}, "one of veegan, fifth_of_uniform"),
        ({"name": "ndb", "alpha": 1.5}, "alpha must be a number in (0, 1)"),
        ({"name": "is", "splits": 0}, "splits must be a positive integer"),
    ],
)
def test_a_bad_metric_option_value_is_refused_before_any_evaluation(ring, entry, line) -> None:
    with pytest.raises(ConfigError) as err:
        Evaluator([entry], ring, features="raw")
    assert str(err.value).startswith(f"metric {entry['name']!r}: ")
    assert line in str(err.value) and "\n" not in str(err.value)


# metrics on any 2-D points, with options that keep their minima small
AT_MINIMUM = [
    "fid",
    {"name": "kid", "num_subsets": 3},
    "prdc",
    {"name": "prdc", "k_pr": 1, "k_dc": 2},
    {"name": "pr", "k": 2},
    "fid_inf",
    {"name": "fid_inf", "min_n": 4, "num_points": 3},
    {"name": "ndb", "num_bins": 3},
]


@pytest.mark.parametrize("entry", AT_MINIMUM, ids=str)
def test_a_metric_runs_at_its_declared_minimum_and_is_refused_below_it(entry) -> None:
    """The declared minimum is the true one: at it the metric computes a number, one sample
    fewer on either side is refused in one line before any feature is extracted."""
    from gansn.metrics.catalog import _with_defaults
    from gansn.metrics.core import _parse

    name, opts = _parse(entry)
    fn = METRICS.get(name)
    full = _with_defaults(fn, opts)
    need = {side: fn.min_samples.needs(side, full) for side in ("real", "fake")}
    rng = np.random.default_rng(0)
    real = rng.normal(size=(need["real"], 2)).astype(np.float32)
    fake = rng.normal(size=(need["fake"], 2)).astype(np.float32)
    kw = {"features": "raw", "num_real": None, "num_fake": need["fake"], "progress": False}
    results, _ = evaluate([entry], real, fake, **kw)
    assert results and all(isinstance(v, float) for v in results.values())
    for side in ("real", "fake"):
        if need[side] <= 1:
            continue
        short = {"real": real, "fake": fake}
        short[side] = short[side][:-1]
        with pytest.raises(ConfigError) as err:
            evaluate([entry], short["real"], short["fake"], **kw)
        line = str(err.value)
        assert line.startswith(f"metric {name!r}: ") and "\n" not in line
        assert f"{need[side]}" in line, line


def test_a_generator_of_another_shape_is_refused_once_its_features_are_known() -> None:
    real = np.zeros((8, 2), np.float32)

    def sample(n: int) -> torch.Tensor:
        return torch.zeros(n, 3)

    with pytest.raises(ConfigError) as err:
        evaluate(["fid"], real, sample, features="raw", num_fake=8, progress=False)
    assert str(err.value) == (
        "raw features of generator sample have 3 dimensions and those of array 2; expected "
        "samples of one shape (features=inception resizes images)"
    )


def test_every_metric_option_rule_names_an_option_the_metric_takes() -> None:
    for name, fn in METRICS.entries():
        taken = set(inspect.signature(fn).parameters) - {"ctx"}
        assert set(fn.option_rules.keys) <= taken, name


def test_registry_names() -> None:
    expected = {"fid", "fid_inf", "kid", "prdc", "pr", "mixture_modes", "class_modes", "ndb"}
    assert expected <= set(METRICS.names())
    with pytest.raises(UnknownNameError, match="valid names"):
        evaluate(["fdi"], np.zeros((4, 2)), np.zeros((4, 2)))


def test_toy_points_good_vs_collapsed(ring) -> None:
    metrics = ["fid", {"name": "kid", "num_subsets": 10}, "prdc", "mixture_modes", "ndb"]
    good, proto = evaluate(
        metrics,
        ring,
        _ring_sampler(ring, list(range(8))),
        num_real=800,
        num_fake=800,
        progress=False,
    )
    bad, _ = evaluate(
        metrics, ring, _ring_sampler(ring, [0]), num_real=800, num_fake=800, progress=False
    )
    assert set(good) == {
        "metrics/fid",
        "metrics/kid",
        "metrics/kid_std",
        "metrics/precision",
        "metrics/recall",
        "metrics/density",
        "metrics/coverage",
        "modes/covered",
        "modes/covered_frac",
        "modes/high_quality",
        "modes/kl",
        "modes/ndb",
        "modes/ndb_frac",
        "modes/ndb_js",
    }
    assert all(isinstance(v, float) for v in good.values())
    assert good["modes/covered"] == 8 and bad["modes/covered"] == 1
    assert bad["modes/kl"] == pytest.approx(math.log(8))
    assert good["metrics/fid"] < 0.01 < bad["metrics/fid"]
    # collapse keeps quality but loses diversity
    assert bad["metrics/precision"] > 0.9 and bad["metrics/recall"] < 0.3
    assert bad["metrics/coverage"] < 0.3 < good["metrics/coverage"]
    assert proto["num_real"] == 800 and proto["num_fake"] == 800
    assert proto["features"] == "raw" and proto["real"]["name"] == "ring_test"


def test_fid_on_raw_features_matches_direct(ring) -> None:
    fake = torch.randn(300, 2)
    res, proto = evaluate(["fid"], ring, fake, num_real=None, num_fake=300, progress=False)
    ref = frechet_distance(*feature_stats(ring.x.numpy()), *feature_stats(fake.numpy()))
    assert res["metrics/fid"] == pytest.approx(ref, rel=1e-6)
    assert proto["num_real"] == len(ring)


def test_classifier_features_and_class_modes(patterns, tmp_path) -> None:
    one_class = patterns.x[patterns.labels == 2][:100]
    res, proto = evaluate(
        ["fid", "kid", "prdc", "class_modes"],
        patterns,
        one_class,
        feature_options={"max_steps": 40},
        num_real=200,
        num_fake=100,
        cache_dir=tmp_path,
        progress=False,
    )
    assert proto["features"] == "classifier"
    assert proto["extractors"]["classifier"]["test_accuracy"] >= 0.9
    assert res["modes/class_coverage"] == 0.25
    assert res["modes/class_kl"] == pytest.approx(math.log(4))
    assert res["metrics/precision"] > 0.7 and res["metrics/recall"] < 0.4
    # the same classifier (from the cache) scores the real set as complete
    real_res, _ = evaluate(
        ["class_modes"],
        patterns,
        patterns.x[:200],
        feature_options={"max_steps": 40},
        cache_dir=tmp_path,
        progress=False,
    )
    assert real_res["modes/class_coverage"] == 1.0


def test_class_modes_skipped_without_labels(make_patterns, caplog) -> None:
    unl = make_patterns(labelled=False)
    res, _ = evaluate(
        ["class_modes", "fid"],
        unl,
        unl.x[:50],
        features="raw",
        num_real=50,
        num_fake=50,
        progress=False,
    )
    assert "metrics/fid" in res and not any(k.startswith("modes/") for k in res)
    assert "class_modes skipped" in caplog.text


def test_per_metric_features_get_a_suffix(patterns) -> None:
    res, proto = evaluate(
        ["fid", {"name": "fid", "features": "raw"}],
        patterns,
        patterns.x[:100],
        feature_options={"classifier": {"max_steps": 5}},
        num_real=100,
        num_fake=100,
        progress=False,
    )
    assert set(res) == {"metrics/fid", "metrics/fid_raw"}
    assert set(proto["extractors"]) == {"classifier", "raw"}


def test_npz_and_folder_sources_agree(tmp_path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 256, size=(40, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "u8.npz", x=u8)
    np.savez(tmp_path / "f.npz", samples=u8.transpose(0, 3, 1, 2) / 127.5 - 1)
    (tmp_path / "png").mkdir()
    for i, img in enumerate(u8):
        Image.fromarray(img).save(tmp_path / "png" / f"{i:03d}.png")
    a = as_source(tmp_path / "u8.npz")
    b = as_source(str(tmp_path / "f.npz"))
    c = as_source(tmp_path / "png")
    xa, xb, xc = (torch.cat(list(s.batches(40, 16, 0))) for s in (a, b, c))
    assert xa.shape == (40, 3, 8, 8) and float(xa.min()) >= -1 and float(xa.max()) <= 1
    torch.testing.assert_close(xa, xb)
    torch.testing.assert_close(xa, xc)
    res, proto = evaluate(
        ["fid"],
        tmp_path / "u8.npz",
        tmp_path / "png",
        features="raw",
        num_real=None,
        num_fake=40,
        progress=False,
    )
    assert res["metrics/fid"] == pytest.approx(0.0, abs=1e-6)
    assert proto["real"]["type"] == "npz" and proto["fake"]["type"] == "folder"


def test_reference_stats_cache_and_npz(ring, tmp_path) -> None:
    fake = _ring_sampler(ring, [0, 1, 2])
    res, proto = evaluate(
        ["fid"], ring, fake, num_real=500, num_fake=400, cache_dir=tmp_path, progress=False
    )
    cache = proto["real_stats_cache"]
    with np.load(cache) as f:  # pytorch-fid's layout
        assert f["mu"].shape == (2,) and f["sigma"].shape == (2, 2) and int(f["n"]) == 500
    # a second run reads the cache (same number); a stats file works as the reference
    again, proto2 = evaluate(
        ["fid"], ring, fake, num_real=500, num_fake=400, cache_dir=tmp_path, progress=False
    )
    assert again == res and proto2["num_real"] == 500
    from_file, _ = evaluate(["fid"], cache, fake, num_fake=400, progress=False, features="raw")
    assert from_file["metrics/fid"] == pytest.approx(res["metrics/fid"], rel=1e-9)
    with pytest.raises(ConfigError, match="only mu/sigma"):
        evaluate(["kid"], cache, fake, num_fake=400, progress=False, features="raw")


class _G(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.z_dim = 4
        self.net = nn.Sequential(nn.Linear(4, 2), nn.BatchNorm1d(2))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(z))


def test_generator_module_source_is_seeded_and_restores_mode(ring) -> None:
    g = _G().train()
    a, _ = evaluate(["fid"], ring, g, num_real=200, num_fake=150, seed=3, progress=False)
    b, _ = evaluate(["fid"], ring, g, num_real=200, num_fake=150, seed=3, progress=False)
    c, _ = evaluate(["fid"], ring, g, num_real=200, num_fake=150, seed=4, progress=False)
    assert a == b and a != c
    assert g.training  # evaluation must not leave the trainer's G in eval mode


def test_evaluator_reuses_real_features(ring) -> None:
    calls = {"n": 0}
    orig = type(ring).__getitem__

    class Counting(type(ring)):
        def __getitem__(self, i):
            calls["n"] += 1
            return orig(self, i)

    ring.__class__ = Counting
    ev = Evaluator(["fid", "prdc"], ring, num_real=300, num_fake=100, progress=False)
    r1, _ = ev(_ring_sampler(ring, [0]))
    first = calls["n"]
    r2, _ = ev(_ring_sampler(ring, list(range(8))))
    assert first == 300 and calls["n"] == first
    assert r2["metrics/recall"] > r1["metrics/recall"]


def test_gansn_data_integration() -> None:
    data = pytest.importorskip("gansn.data")
    try:
        ring = data.build_dataset({"name": "ring8"})
    except Exception as e:  # the dataset module is still moving
        pytest.skip(f"gansn.data ring8 unavailable: {e}")
    res, proto = evaluate(
        ["fid", "mixture_modes"], ring, ring, num_real=500, num_fake=500, progress=False
    )
    assert proto["features"] == "raw"
    assert res["modes/covered"] == len(ring.centers)
    assert res["modes/high_quality"] > 0.95


def test_callable_source_leaves_global_rng_alone(ring) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    evaluate(["fid"], ring, lambda n: torch.randn(n, 2), num_real=100, num_fake=100, progress=False)
    torch.testing.assert_close(torch.rand(3), expected)


def test_kid_with_fewer_samples_than_its_subset_size_says_so(caplog) -> None:
    """Before: subsets of all 60 samples, kid_std ~1e-15 posing as certainty."""
    rng = np.random.default_rng(0)
    real, fake = rng.standard_normal((60, 4)), rng.standard_normal((60, 4)) + 0.3
    with caplog.at_level("WARNING"):
        res, proto = evaluate(["kid"], real, fake, num_fake=60, features="raw", progress=False)
    assert math.isnan(res["metrics/kid_std"]) and math.isfinite(res["metrics/kid"])
    assert proto["kid"] == {
        "subset_size": 60,
        "num_subsets": 100,
        "requested_subset_size": 1000,
        "std": "undefined: every subset is all samples",
    }
    assert any("subset_size=1000; subsets of 60" in w for w in proto["warnings"])
    assert "subsets of 60 are used" in caplog.text
    # enough samples: the requested size, a real std, no warning
    res, proto = evaluate(
        [{"name": "kid", "subset_size": 20, "num_subsets": 10}],
        real,
        fake,
        num_fake=60,
        features="raw",
        progress=False,
    )
    assert res["metrics/kid_std"] > 0 and proto["kid"] == {"subset_size": 20, "num_subsets": 10}
    assert "warnings" not in proto


@pytest.mark.parametrize("n,warned", [(20, True), (64, False)])
def test_fid_with_fewer_samples_than_dimensions_warns(caplog, n, warned) -> None:
    rng = np.random.default_rng(1)
    real, fake = rng.standard_normal((64, 32)), rng.standard_normal((n, 32))
    with caplog.at_level("WARNING"):
        res, proto = evaluate(["fid"], real, fake, num_fake=n, features="raw", progress=False)
    assert math.isfinite(res["metrics/fid"])
    if warned:
        (warning,) = proto["warnings"]
        assert "20 fake samples, fewer than the 32 feature dimensions" in warning
        assert "biased upward" in warning and warning in caplog.text
    else:
        assert "warnings" not in proto and "feature dimensions" not in caplog.text


def test_class_modes_min_confidence_counts_only_confident_samples(patterns, tmp_path) -> None:
    # clean class-2 patterns and noise: the classifier is surer of the first
    g = torch.Generator().manual_seed(0)
    noise = torch.rand((60, *patterns.x.shape[1:]), generator=g) * 2 - 1
    fake = torch.cat([patterns.x[patterns.labels == 2][:60], noise])
    opts = {"feature_options": {"max_steps": 40}, "cache_dir": tmp_path, "progress": False}
    ev = Evaluator(["class_modes"], patterns, **opts)
    every, _ = ev(fake)
    # reference: the classifier's softmax, computed here from its two halves
    model = next(iter(ev._extractors.values())).model
    with torch.no_grad():
        probs = torch.softmax(model.head(model.features(fake)), 1).numpy().astype(np.float64)
    threshold = float(np.median(probs.max(1)))  # about half the samples on each side
    keep = probs.max(1) >= threshold
    assert 0 < keep.mean() < 1
    counts = np.bincount(probs.argmax(1)[keep], minlength=patterns.num_classes)
    p = counts[counts > 0] / counts.sum()
    # the same cached classifier, with the threshold
    sure, _ = Evaluator([{"name": "class_modes", "min_confidence": threshold}], patterns, **opts)(
        fake
    )
    assert sure["modes/class_confident"] == pytest.approx(keep.mean())
    assert sure["modes/class_coverage"] == pytest.approx((counts > 0).mean())
    assert sure["modes/class_kl"] == pytest.approx(math.log(len(counts)) + (p * np.log(p)).sum())
    assert "modes/class_confident" not in every  # logged only when a threshold is set
    assert every["modes/class_coverage"] > sure["modes/class_coverage"]
