"""A small CNN classifier trained by gansn on a labelled dataset, cached on disk.

It gives a cheap domain-specific feature space (penultimate layer, 128-d) for "classifier FID",
KID and PRDC on CPU, and class predictions for the mode metrics.  Trained on any Dataset
whose items are ``(x, y)`` with x in [-1, 1], (C, H, W), and integer labels y.

A *stacked* dataset (three independent images as the RGB channels, label
``y = 100·c0 + 10·c1 + c2`` for 10 base classes; see :func:`is_stacked`) gets a 1-channel
classifier: trained on its ``base`` dataset when it has one (gansn.data's StackedImages),
else on the individual channels with labels decoded from y.  That is what the stacked-mode
metric needs.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import math
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from gansn.errors import ConfigError
from gansn.utils import atomic_torch_save

log = logging.getLogger(__name__)

FORMAT = 1


class SmallCNN(nn.Module):
    """(N, C, H, W) in [-1, 1] -> (N, num_classes) logits; ``features`` -> (N, feature_dim).

    Three stride-2 conv-BN-ReLU stages (5×5, 3×3, 3×3; width w, 2w, 4w), an adaptive 4×4
    average pool (any input size works) and a 128-d hidden layer whose ReLU output is the
    feature vector.  Strided convs instead of conv + max-pool keep the full-resolution work
    tiny: ≈2.8M MACs per 32×32 image at width 32, about a minute per Fashion-MNIST epoch on
    two CPU cores.
    """

    def __init__(
        self, in_channels: int, num_classes: int, width: int = 32, feature_dim: int = 128
    ) -> None:
        super().__init__()
        w = width

        def block(cin: int, cout: int, k: int) -> list[nn.Module]:
            return [
                nn.Conv2d(cin, cout, k, stride=2, padding=k // 2, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(),
            ]

        self.body = nn.Sequential(
            *block(in_channels, w, 5),
            *block(w, 2 * w, 3),
            *block(2 * w, 4 * w, 3),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
            nn.Linear(16 * 4 * w, feature_dim),
            nn.ReLU(),
        )
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))


def is_stacked(dataset: Any) -> bool:
    """A stacked dataset: ``.stacked`` true, or a 3-channel set over a 1-channel ``.base``."""
    if getattr(dataset, "stacked", False):
        return True
    base = getattr(dataset, "base", None)
    shape = getattr(dataset, "shape", None)
    return (
        base is not None
        and shape is not None
        and len(shape) == 3
        and shape[0] > 1
        and tuple(getattr(base, "shape", (0,)))[:1] == (1,)
    )


def _batches(
    dataset: Any, indices: torch.Tensor, batch_size: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(x (B, C, H, W), y (B,)) batches of ``dataset[indices]``; uses ``get_batch`` if any."""
    for i in range(0, len(indices), batch_size):
        idx = indices[i : i + batch_size]
        if hasattr(dataset, "get_batch"):
            x, y = dataset.get_batch(idx)
        else:
            items = [dataset[int(j)] for j in idx]
            x = torch.stack([torch.as_tensor(it[0]) for it in items])
            y = torch.as_tensor([int(it[1]) for it in items])
        yield x.float(), torch.as_tensor(y).long()


class _Indexed(Dataset):
    """``dataset[indices]`` keeping the fast ``get_batch`` path."""

    def __init__(self, dataset: Any, indices: torch.Tensor) -> None:
        self.dataset, self.indices = dataset, indices

    def __len__(self) -> int:
        return len(self.indices)

    def get_batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return next(_batches(self.dataset, self.indices[idx], len(idx)))

    def __getitem__(self, i: int) -> Any:
        return self.dataset[int(self.indices[i])]


class _ChannelSplit(Dataset):
    """Stacked dataset -> its single channels with their base-class labels."""

    def __init__(self, base: Dataset, channels: int, num_classes: int) -> None:
        self.base, self.channels, self.num_classes = base, channels, num_classes

    def __len__(self) -> int:
        return len(self.base) * self.channels

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x, y = self.base[i // self.channels]
        c = i % self.channels
        digit = (int(y) // self.num_classes ** (self.channels - 1 - c)) % self.num_classes
        return x[c : c + 1], digit


def _num_classes(dataset: Any) -> int:
    k = getattr(dataset, "num_classes", None)
    if not k:
        raise ConfigError(
            f"the classifier needs a labelled dataset; {getattr(dataset, 'name', dataset)!r} "
            "has no num_classes. Use metrics.features=inception for unlabelled data."
        )
    return int(k)


def base_num_classes(dataset: Any) -> int:
    """Classes of one channel: for a stacked dataset the cube root of its num_classes."""
    k = _num_classes(dataset)
    if is_stacked(dataset):
        channels = _shape(dataset)[0]
        base = round(k ** (1 / channels))
        return base if base**channels == k else k
    return k


def _shape(dataset: Any) -> tuple[int, ...]:
    shape = getattr(dataset, "shape", None)
    if shape is None:
        shape = tuple(dataset[0][0].shape)
    return tuple(shape)


def classifier_cache_name(
    dataset: Any, width: int, epochs: float, max_steps: int | None = None
) -> str:
    """Cache file name keyed by dataset name, size, shape, classes and training budget."""
    if is_stacked(dataset) and getattr(dataset, "base", None) is not None:
        return classifier_cache_name(dataset.base, width, epochs, max_steps)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(getattr(dataset, "name", "dataset")))
    c, *hw = _shape(dataset)
    stacked = "-stacked" if is_stacked(dataset) else ""
    return (
        f"{name}{stacked}-n{len(dataset)}-c{c}-{'x'.join(map(str, hw))}"
        f"-k{_num_classes(dataset)}-w{width}-e{epochs:g}"
        f"{'' if max_steps is None else f'-s{max_steps}'}.pt"
    )


def _training_view(dataset: Any) -> tuple[Dataset, int, int]:
    """-> (dataset of (x, label) the CNN trains on, its channels, its classes)."""
    if is_stacked(dataset):
        base = getattr(dataset, "base", None)
        if base is not None:
            return base, 1, _num_classes(base)
        channels, k = _shape(dataset)[0], base_num_classes(dataset)
        return _ChannelSplit(dataset, channels, k), 1, k
    return dataset, _shape(dataset)[0], _num_classes(dataset)


@torch.no_grad()
def accuracy(
    model: nn.Module, dataset: Dataset, batch_size: int = 500, device: str | torch.device = "cpu"
) -> float:
    """Top-1 accuracy of ``model`` on a dataset of (x, y)."""
    model.eval()
    correct = total = 0
    for x, y in _batches(dataset, torch.arange(len(dataset)), batch_size):
        pred = model(x.to(device)).argmax(1).cpu()
        correct += int((pred == y).sum())
        total += len(pred)
    return correct / max(total, 1)


def train_classifier(
    dataset: Any,
    test_dataset: Any | None = None,
    *,
    epochs: float = 2,
    max_steps: int | None = None,
    batch_size: int = 128,
    lr: float = 2e-3,
    width: int = 32,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> tuple[SmallCNN, dict[str, Any]]:
    """Train a :class:`SmallCNN` -> (model in eval mode, info with ``test_accuracy``).

    ``test_dataset`` measures accuracy; without it 10% of ``dataset`` is held out.
    ``epochs`` may be fractional; ``max_steps`` caps the optimizer steps (for tests).
    Adam with a cosine-decayed learning rate.
    """
    train_view, channels, k = _training_view(dataset)
    gen = torch.Generator().manual_seed(seed)
    train_idx = torch.randperm(len(train_view), generator=gen)
    if test_dataset is not None:
        test_view = _training_view(test_dataset)[0]
        test_idx = torch.arange(len(test_view))
    else:
        n_test = max(1, len(train_view) // 10)
        test_view, test_idx, train_idx = train_view, train_idx[:n_test], train_idx[n_test:]
    torch.manual_seed(seed)  # weight init and dropout
    model = SmallCNN(channels, k, width).to(device)
    per_epoch = max(1, len(train_idx) // batch_size)
    steps = math.ceil(epochs * per_epoch)
    if max_steps is not None:
        steps = min(steps, max_steps)
    steps = max(steps, 1)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    model.train()
    start, step = time.perf_counter(), 0
    bar = tqdm(total=steps, desc="train classifier", disable=not progress, leave=False)
    while step < steps:
        perm = train_idx[torch.randperm(len(train_idx), generator=gen)]
        # drop the ragged last batch: a batch of 1 breaks BatchNorm
        perm = perm[: max(per_epoch * batch_size, 1)] if len(perm) > batch_size else perm
        for x, y in _batches(train_view, perm, batch_size):
            loss = F.cross_entropy(model(x.to(device)), y.to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            bar.update()
            if step >= steps:
                break
    bar.close()
    model.eval()
    acc = accuracy(model, _Indexed(test_view, test_idx), device=device)
    info = {
        "test_accuracy": acc,
        "steps": steps,
        "epochs": epochs,
        "width": width,
        "in_channels": channels,
        "num_classes": k,
        "seconds": time.perf_counter() - start,
        "dataset": str(getattr(dataset, "name", "dataset")),
        "train_size": len(train_idx),
        "test_size": len(test_idx),
    }
    log.info(
        "classifier trained on %s: test accuracy %.4f (%d steps, %.0f s)",
        info["dataset"],
        acc,
        steps,
        info["seconds"],
    )
    return model, info


def save_classifier(path: str | Path, model: SmallCNN, info: dict[str, Any]) -> Path:
    """Atomic save of weights + info, readable with ``torch.load(weights_only=True)``.

    Through a temp file of its own (:func:`gansn.utils.atomic_torch_save`): two processes
    saving the same cache entry at once never write into each other's temp file.
    """
    state = {"format": FORMAT, "state_dict": model.state_dict(), "info": info}
    return atomic_torch_save(state, path)


@contextlib.contextmanager
def _training_lock(path: Path) -> Iterator[None]:
    """Hold ``<path>.lock`` (flock) while one process trains the classifier cached at ``path``:
    the side-by-side jobs of a sweep, or the ranks of a DDP run, that all find the cache
    empty train it once, and the others wait and load it.  A filesystem without flock (or a
    read-only cache folder) gets no lock: each process then trains its own, as before."""
    lock = path.with_name(path.name + ".lock")
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another process to train the classifier cached at %s", path)
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            pass  # no flock here
        yield
    finally:
        os.close(fd)  # drops the lock; the empty lock file stays for the next process


def load_classifier(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[SmallCNN, dict[str, Any]]:
    """Load a classifier written by :func:`save_classifier` -> (model in eval mode, info)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if ckpt.get("format") != FORMAT:
        raise ConfigError(f"{path}: unknown classifier format {ckpt.get('format')!r}")
    info = ckpt["info"]
    model = SmallCNN(info["in_channels"], info["num_classes"], info["width"])
    model.load_state_dict(ckpt["state_dict"])
    return model.to(device).eval().requires_grad_(False), info


def get_classifier(
    dataset: Any,
    test_dataset: Any | None = None,
    *,
    cache_dir: str | Path | None = None,
    path: str | Path | None = None,
    epochs: float = 2,
    max_steps: int | None = None,
    width: int = 32,
    seed: int = 0,
    device: str | torch.device = "cpu",
    retrain: bool = False,
    progress: bool = True,
) -> tuple[SmallCNN, dict[str, Any]]:
    """Load the cached classifier for ``dataset`` or train and cache it.

    The cache file is ``path`` if given, else ``cache_dir/classifiers/<key>.pt`` with the key
    from :func:`classifier_cache_name`; without either, nothing is cached.
    """
    if path is None and cache_dir is not None:
        path = (
            Path(cache_dir).expanduser()
            / "classifiers"
            / classifier_cache_name(dataset, width, epochs, max_steps)
        )

    def cached() -> tuple[SmallCNN, dict[str, Any]] | None:
        if path is None or not Path(path).is_file() or retrain:
            return None
        model, info = load_classifier(path, device)
        log.info("loaded classifier %s (test accuracy %.4f)", path, info["test_accuracy"])
        return model, {**info, "path": str(path)}

    if (hit := cached()) is not None:
        return hit
    lock = _training_lock(Path(path)) if path is not None else contextlib.nullcontext()
    with lock:
        # looked at again under the lock: another process may have trained it meanwhile
        if (hit := cached()) is not None:
            return hit
        if dataset is None:
            raise ConfigError(f"classifier file {path} does not exist and no dataset to train on")
        log.info(
            "training the %s classifier whose features classifier-FID, precision/recall and "
            "class modes use: once per dataset (%s epochs, about 30 s on a 2-core CPU for "
            "Fashion-MNIST); %s",
            getattr(dataset, "name", "dataset"),
            epochs,
            f"cached at {path}" if path is not None else "not cached (no cache_dir)",
        )
        model, info = train_classifier(
            dataset,
            test_dataset,
            epochs=epochs,
            max_steps=max_steps,
            width=width,
            seed=seed,
            device=device,
            progress=progress,
        )
        if path is not None:
            save_classifier(path, model, info)
            info = {**info, "path": str(path)}
    return model.requires_grad_(False), info


__all__ = [
    "SmallCNN",
    "accuracy",
    "base_num_classes",
    "classifier_cache_name",
    "get_classifier",
    "is_stacked",
    "load_classifier",
    "save_classifier",
    "train_classifier",
]
