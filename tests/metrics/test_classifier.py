"""The gansn classifier: training, caching, stacked datasets."""

from __future__ import annotations

import pytest
import torch

from gansn.errors import ConfigError
from gansn.metrics import classifier as clf
from gansn.metrics.features import ClassifierFeatures


def test_trains_and_reports_accuracy(patterns) -> None:
    model, info = clf.train_classifier(patterns, max_steps=30, batch_size=64, progress=False)
    assert info["test_accuracy"] >= 0.9
    assert info["num_classes"] == 4 and info["in_channels"] == 1
    x = patterns.x[:5]
    assert model.features(x).shape == (5, 128)
    assert model(x).shape == (5, 4)


def test_cache_roundtrip(patterns, tmp_path, monkeypatch) -> None:
    model, info = clf.get_classifier(patterns, cache_dir=tmp_path, max_steps=20, progress=False)
    path = tmp_path / "classifiers" / clf.classifier_cache_name(patterns, 32, 2, 20)
    assert path.is_file() and info["path"] == str(path)
    saved = torch.load(path, weights_only=True)
    assert saved["info"]["test_accuracy"] == info["test_accuracy"]

    def no_training(*a, **k):
        raise AssertionError("should have loaded the cache")

    monkeypatch.setattr(clf, "train_classifier", no_training)
    again, info2 = clf.get_classifier(patterns, cache_dir=tmp_path, max_steps=20)
    assert info2["test_accuracy"] == info["test_accuracy"]
    with torch.no_grad():
        torch.testing.assert_close(
            again.features(patterns.x[:8]), model.eval().features(patterns.x[:8])
        )


def test_jobs_that_find_the_cache_empty_train_it_once(patterns, tmp_path, monkeypatch) -> None:
    """Two jobs of a sweep (or two DDP ranks) that start on an empty cache: the first trains,
    the second waits on the cache's lock and loads what the first saved."""
    import threading
    import time

    real, started, calls = clf.train_classifier, threading.Event(), []

    def slow_train(*a, **k):
        calls.append(threading.current_thread().name)
        started.set()
        time.sleep(0.5)  # the second job arrives while the first one trains
        return real(*a, **k)

    monkeypatch.setattr(clf, "train_classifier", slow_train)
    got = {}

    def job(name: str) -> None:
        got[name] = clf.get_classifier(patterns, cache_dir=tmp_path, max_steps=20, progress=False)

    first = threading.Thread(target=job, args=("first",), name="first")
    first.start()
    assert started.wait(30)
    second = threading.Thread(target=job, args=("second",), name="second")
    second.start()
    first.join(60)
    second.join(60)
    assert calls == ["first"]
    assert got["second"][1]["test_accuracy"] == got["first"][1]["test_accuracy"]
    assert got["second"][1]["path"] == got["first"][1]["path"]


def test_saving_never_writes_into_another_writers_temp_file(patterns, tmp_path) -> None:
    model, info = clf.train_classifier(patterns, max_steps=5, progress=False)
    path = tmp_path / "c.pt"
    other = [path.with_name(path.name + ".tmp")]  # the name a concurrent writer once used
    other[0].write_bytes(b"another writer, mid-write")
    clf.save_classifier(path, model, info)
    assert other[0].read_bytes() == b"another writer, mid-write"
    assert clf.load_classifier(path)[1]["test_accuracy"] == info["test_accuracy"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt", "c.pt.tmp"]


def test_unlabelled_dataset_is_rejected(make_patterns) -> None:
    with pytest.raises(ConfigError, match="labelled"):
        clf.train_classifier(make_patterns(labelled=False), max_steps=1)


@pytest.mark.parametrize("expose_base", [True, False])
def test_stacked_dataset_gets_per_channel_classifier(
    make_patterns, make_stacked, expose_base: bool
) -> None:
    # with .base the CNN trains on the base set; without, on the channels with labels
    # decoded from 100a + 10b + c
    stacked = make_stacked(make_patterns(n=600, num_classes=10), expose_base=expose_base)
    assert clf.is_stacked(stacked)
    assert clf.base_num_classes(stacked) == 10
    ext = ClassifierFeatures(stacked, max_steps=40, progress=False)
    assert ext.stacked and ext.info["in_channels"] == 1 and ext.num_classes == 10
    x = torch.stack([stacked[i][0] for i in range(50)])
    out = ext(x)
    assert out["features"].shape == (50, 3 * 128)
    assert out["labels"].shape == (50, 3)
    assert (out["labels"] == stacked.digits[:50]).float().mean() >= 0.9
    # each channel's confidence is the softmax of the 1-channel classifier on that channel
    with torch.no_grad():
        probs = torch.softmax(ext.model.head(ext.model.features(x[:, 1:2])), 1)
    torch.testing.assert_close(out["confidence"][:, 1], probs.max(1).values)
    assert (out["labels"][:, 1] == probs.argmax(1)).all()
