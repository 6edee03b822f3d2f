"""Datasets, the IDX/CIFAR/STL readers, build_dataset and BatchStream."""

from __future__ import annotations

import gzip
import json
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gansn.data import (
    DATASETS,
    BatchStream,
    InMemoryImages,
    build_dataset,
    dataset_options,
    read_idx,
)
from gansn.errors import ConfigError, UnknownNameError

CONF = Path(__file__).resolve().parents[1] / "conf" / "dataset"
DEBIAN_FMNIST = Path("/usr/share/datasets/fashion-mnist")
needs_debian_fmnist = pytest.mark.skipif(
    not (DEBIAN_FMNIST / "train-images-idx3-ubyte.gz").is_file(),
    reason=f"Debian's Fashion-MNIST ({DEBIAN_FMNIST}, package dataset-fashion-mnist) "
    "is not installed",
)

_IDX_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D}


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> Path:
    """Write ``array`` as a big-endian IDX file (optionally gzipped)."""
    code = _IDX_CODES[array.dtype.type]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    body = array.astype(array.dtype.newbyteorder(">")).tobytes()
    data = header + body
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def write_mnist_layout(root: Path, n_train: int = 50, n_test: int = 20) -> np.ndarray:
    """torchvision's ``MNIST/raw`` layout; train image i is the constant 5 * i, label i % 10."""
    raw = root / "MNIST" / "raw"
    train = np.repeat((5 * np.arange(n_train, dtype=np.uint8))[:, None, None], 28, 1).repeat(28, 2)
    train[:, 0, 0] = 255  # a marker that shows where the top-left corner went
    write_idx(raw / "train-images-idx3-ubyte", train)
    write_idx(raw / "train-labels-idx1-ubyte", (np.arange(n_train) % 10).astype(np.uint8))
    rng = np.random.default_rng(0)
    write_idx(raw / "t10k-images-idx3-ubyte", rng.integers(0, 256, (n_test, 28, 28), np.uint8))
    write_idx(raw / "t10k-labels-idx1-ubyte", rng.integers(0, 10, n_test).astype(np.uint8))
    return train


class IndexData(torch.utils.data.Dataset):
    """x = y = the item index, so batches show which items were drawn."""

    name = "index"

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.tensor([float(i)]), torch.tensor(i)


class IndexDataFast(IndexData):
    def get_batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return idx.float()[:, None], idx.clone()


# ----------------------------------------------------------------------------- registry


def test_registered_names_and_yaml_files_agree() -> None:
    yaml_names = sorted(p.stem for p in CONF.glob("*.yaml"))
    assert yaml_names == DATASETS.names()
    expected = ["cifar10", "fake", "fashion_mnist", "folder", "grid25", "mnist", "ring8", "stl10"]
    assert set(expected) <= set(DATASETS.names())


@pytest.mark.parametrize(
    "name", ["cifar10", "fake", "fashion_mnist", "folder", "grid25", "mnist", "ring8", "stl10"]
)
def test_yaml_lists_every_option_with_a_comment(name: str) -> None:
    from omegaconf import OmegaConf

    path = CONF / f"{name}.yaml"
    cfg = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    assert cfg["name"] == name
    assert set(cfg) - {"name"} == set(dataset_options(DATASETS.get(name)))
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            assert "  # " in line, f"{path}: key without a comment: {line!r}"


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(UnknownNameError, match="valid names: cifar10, fake, fashion_mnist"):
        build_dataset({"name": "imagenet"})


def test_unknown_option_is_named() -> None:
    with pytest.raises(ConfigError, match=r"no option.*img_sise.*valid options:.*img_size"):
        build_dataset({"name": "fake", "img_sise": 32})


def test_build_from_dictconfig() -> None:
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"name": "fake", "n": 12, "img_size": 8, "size": "${.img_size}"})
    with pytest.raises(ConfigError, match="size"):
        build_dataset(cfg)
    del cfg["size"]
    assert build_dataset(cfg).shape == (3, 8, 8)


# ----------------------------------------------------------------------------- toy


@pytest.mark.parametrize(
    ("name", "std", "expected_centers"),
    [
        ("ring8", 0.01, [(np.cos(a), np.sin(a)) for a in np.arange(8) * np.pi / 4]),
        ("grid25", 0.05, [(x, y) for x in (-4, -2, 0, 2, 4) for y in (-4, -2, 0, 2, 4)]),
    ],
)
def test_toy_mixture_statistics(name: str, std: float, expected_centers: list) -> None:
    ds = build_dataset({"name": name})
    k = len(expected_centers)
    assert len(ds) == 100_000 and ds.shape == (2,) and ds.num_classes == k and ds.std == std
    np.testing.assert_allclose(ds.centers, np.array(expected_centers), atol=1e-12)
    x, y = ds.get_batch(torch.arange(len(ds)))
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    counts = torch.bincount(y, minlength=k)
    assert counts.min() >= len(ds) // k and counts.max() <= len(ds) // k + 1  # all, uniformly
    c = torch.as_tensor(ds.centers, dtype=torch.float64)
    x64 = x.double()
    # every point is nearest to its own mode (modes are >= 0.76 apart, noise <= 6 sigma)
    assert torch.equal(torch.cdist(x64, c).argmin(1), y)
    for j in range(k):
        pts = x64[y == j]
        # mean error sd = std / sqrt(count) ~ std / 63; 6 such sd is safe, 1e-3 * std is not
        np.testing.assert_allclose(pts.mean(0).numpy(), ds.centers[j], atol=6 * std / 60)
        # sd of a sample sd ~ std / sqrt(2 * count) ~ 1.8 %; allow 8 %
        np.testing.assert_allclose(pts.std(0).numpy(), [std, std], rtol=0.08)
    # pooled over modes the spread estimate is tight
    resid = x64 - c[y]
    assert abs(resid.std().item() / std - 1) < 0.02


def test_toy_deterministic_and_options() -> None:
    a = build_dataset({"name": "ring8", "n": 1000, "seed": 3})
    b = build_dataset({"name": "ring8", "n": 1000, "seed": 3})
    c = build_dataset({"name": "ring8", "n": 1000, "seed": 4})
    t = build_dataset({"name": "ring8", "n": 1000, "seed": 3}, train=False)
    assert torch.equal(a.data, b.data) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.data, c.data) and not torch.equal(a.data, t.data)
    r = build_dataset({"name": "ring8", "n": 300, "modes": 3, "radius": 2.0, "std": 0.0})
    assert r.num_classes == 3 and len(r) == 300
    assert torch.allclose(r.data.norm(dim=1), torch.full((300,), 2.0))
    g = build_dataset({"name": "grid25", "n": 90, "side": 3, "spacing": 1.0})
    assert sorted(set(g.centers[:, 0])) == [-1.0, 0.0, 1.0]
    x, y = g[5]
    assert x.shape == (2,) and y.dtype == torch.int64
    with pytest.raises(ConfigError, match="n must be positive"):
        build_dataset({"name": "ring8", "n": 0})


# ----------------------------------------------------------------------------- IDX reader


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float32])
def test_read_idx(tmp_path: Path, gz: bool, dtype: type) -> None:
    arr = (np.arange(2 * 3 * 4) * 7 - 20).reshape(2, 3, 4)
    arr = {np.uint8: arr % 256, np.int32: arr * 1000, np.float32: arr / 2}[dtype].astype(dtype)
    # the name does not decide: compression is detected from the content
    path = write_idx(tmp_path / "some-file-idx3-ubyte", arr, gz=gz)
    out = read_idx(path)
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, arr)
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "l.gz", labels, gz=gz)), labels)


def test_read_idx_rejects_bad_files(tmp_path: Path) -> None:
    good = write_idx(tmp_path / "x", np.zeros((4, 5, 5), np.uint8))
    (tmp_path / "trunc").write_bytes(good.read_bytes()[:-3])
    with pytest.raises(ConfigError, match="truncated"):
        read_idx(tmp_path / "trunc")
    (tmp_path / "png").write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(ConfigError, match="not an IDX file"):
        read_idx(tmp_path / "png")


# ----------------------------------------------------------------------------- Fashion-MNIST


@pytest.fixture(scope="module")
def debian_fmnist(tmp_path_factory: pytest.TempPathFactory):
    empty_root = tmp_path_factory.mktemp("empty_root")  # nothing here: falls back to Debian
    train = build_dataset({"name": "fashion_mnist", "root": str(empty_root)})
    test = build_dataset({"name": "fashion_mnist", "root": str(empty_root)}, train=False)
    return train, test


@needs_debian_fmnist
def test_fashion_mnist_from_debian(debian_fmnist) -> None:
    train, test = debian_fmnist
    assert (len(train), len(test)) == (60_000, 10_000)
    assert train.source == DEBIAN_FMNIST and train.split == "train" and test.split == "test"
    assert train.name == "fashion_mnist" and train.shape == (1, 32, 32) and train.num_classes == 10
    x, y = train.get_batch(torch.arange(len(train)))
    assert x.shape == (60_000, 1, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.min().item() == -1.0 and x.max().item() == 1.0
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert (x[:, 0, border] == -1).all()  # the 2-pixel pad is black
    assert torch.equal(torch.bincount(y), torch.full((10,), 6000))
    assert set(test.labels.tolist()) == set(range(10))

    raw = read_idx(DEBIAN_FMNIST / "train-images-idx3-ubyte.gz")
    raw_y = read_idx(DEBIAN_FMNIST / "train-labels-idx1-ubyte.gz")
    assert torch.equal(train.images[:, 0, 2:30, 2:30], torch.from_numpy(raw))
    assert torch.equal(y, torch.from_numpy(raw_y.astype(np.int64)))
    # one known pixel through the float path: raw / 127.5 - 1, exactly
    i, r, c = 123, 14, 9
    xi, yi = train[i]
    assert xi[0, r + 2, c + 2].item() == pytest.approx(raw[i, r, c] / 127.5 - 1, abs=1e-7)
    assert yi.item() == raw_y[i] and yi.dtype == torch.int64
    raw_t = read_idx(DEBIAN_FMNIST / "t10k-images-idx3-ubyte.gz")
    assert torch.equal(test.images[:, 0, 2:30, 2:30], torch.from_numpy(raw_t))


@needs_debian_fmnist
def test_fashion_mnist_options(tmp_path: Path) -> None:
    cfg = {"name": "fashion_mnist", "root": str(tmp_path), "n": 100}
    rgb = build_dataset({**cfg, "channels": 3, "img_size": 28})
    assert rgb.shape == (3, 28, 28) and len(rgb) == 100
    x, _ = rgb.get_batch(torch.arange(4))
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2])
    big = build_dataset({**cfg, "img_size": 64, "resize": "resize", "interpolation": "bicubic"})
    assert big.shape == (1, 64, 64)
    with pytest.raises(ConfigError, match="resize"):
        build_dataset({**cfg, "img_size": 16})  # cannot pad 28 down to 16


# ----------------------------------------------------------------------------- missing files


@pytest.mark.parametrize("name", ["mnist", "cifar10", "stl10"])
def test_missing_files_error_names_path_and_download(tmp_path: Path, name: str) -> None:
    root = tmp_path / "nothing_here"
    with pytest.raises(ConfigError) as err:
        build_dataset({"name": name, "root": str(root)})
    msg = str(err.value)
    assert str(root) in msg and "dataset.download=true" in msg and "dataset.root" in msg


def test_default_root_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from gansn.data import default_root

    monkeypatch.setenv("GANSN_DATA", str(tmp_path / "env_root"))
    assert default_root() == tmp_path / "env_root"
    with pytest.raises(ConfigError, match="env_root"):
        build_dataset({"name": "cifar10"})
    monkeypatch.delenv("GANSN_DATA")
    assert default_root() == Path("~/.cache/gansn/data").expanduser()


# ----------------------------------------------------------------------------- torchvision layouts


def test_mnist_torchvision_layout(tmp_path: Path) -> None:
    train_raw = write_mnist_layout(tmp_path)
    ds = build_dataset({"name": "mnist", "root": str(tmp_path)})
    assert ds.source == tmp_path / "MNIST" / "raw" and len(ds) == 50
    assert torch.equal(ds.images[:, 0, 2:30, 2:30], torch.from_numpy(train_raw))
    assert ds.images[0, 0, 2, 2] == 255 and ds.images[0, 0, 1, 1] == 0
    assert torch.equal(ds.labels, torch.arange(50) % 10)
    assert len(build_dataset({"name": "mnist", "root": str(tmp_path)}, train=False)) == 20
    assert len(build_dataset({"name": "mnist", "root": str(tmp_path), "split": "test"})) == 20

    # the layout is the one torchvision itself reads (and would download into)
    from gansn._torchvision_compat import import_torchvision

    tv_ds = import_torchvision().datasets.MNIST(str(tmp_path), train=True, download=False)
    assert torch.equal(ds.images[:, 0, 2:30, 2:30], tv_ds.data)
    assert torch.equal(ds.labels, tv_ds.targets)

    resized = build_dataset({"name": "mnist", "root": str(tmp_path), "resize": "resize"})
    assert resized.shape == (1, 32, 32)
    # a constant image stays constant through antialiased resampling (image 7: value 35)
    assert (resized.images[7, 0, 4:, 4:] == 35).all()


def test_mnist_gz_flat_layout(tmp_path: Path) -> None:
    """Files unpacked straight into root, gzipped, as the original site ships them."""
    imgs = np.random.default_rng(1).integers(0, 256, (6, 28, 28), np.uint8)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", imgs, gz=True)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.arange(6, dtype=np.uint8), gz=True)
    ds = build_dataset({"name": "mnist", "root": str(tmp_path), "img_size": 28}, train=False)
    assert ds.source == tmp_path and torch.equal(ds.images[:, 0], torch.from_numpy(imgs))


def write_cifar_layout(root: Path, per_batch: int = 3) -> tuple[np.ndarray, np.ndarray]:
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    xs, ys = [], []
    for fname in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3072), np.uint8)
        labels = rng.integers(0, 10, per_batch).tolist()
        with open(d / fname, "wb") as f:
            pickle.dump({"batch_label": fname, "data": data, "labels": labels}, f)
        if fname != "test_batch":
            xs.append(data)
            ys += labels
    with open(d / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, f)
    return np.concatenate(xs), np.array(ys)


def test_cifar10_layout(tmp_path: Path) -> None:
    data, labels = write_cifar_layout(tmp_path)
    ds = build_dataset({"name": "cifar10", "root": str(tmp_path)})
    assert ds.name == "cifar10" and ds.shape == (3, 32, 32) and len(ds) == 15
    assert torch.equal(ds.labels, torch.from_numpy(labels))
    # rows are the R plane, then G, then B, each row-major
    i, c, r, col = 7, 2, 5, 30
    assert ds.images[i, c, r, col].item() == data[i, c * 1024 + r * 32 + col]
    assert len(build_dataset({"name": "cifar10", "root": str(tmp_path)}, train=False)) == 3
    gray = build_dataset({"name": "cifar10", "root": str(tmp_path), "channels": 1, "n": 4})
    assert gray.shape == (1, 32, 32) and len(gray) == 4
    rgb = data[0].reshape(3, 32, 32).astype(np.float64)
    luma = (0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]).round()
    assert np.abs(gray.images[0, 0].numpy() - luma).max() <= 1
    small = build_dataset({"name": "cifar10", "root": str(tmp_path), "img_size": 16})
    x, _ = small.get_batch(torch.arange(15))
    assert x.shape == (15, 3, 16, 16) and x.min() >= -1 and x.max() <= 1


def test_stl10_layout(tmp_path: Path) -> None:
    d = tmp_path / "stl10_binary"
    d.mkdir()
    rng = np.random.default_rng(0)
    train_x = rng.integers(0, 256, (2, 3, 96, 96), np.uint8)  # stored column-major per channel
    (d / "train_X.bin").write_bytes(train_x.tobytes())
    (d / "train_y.bin").write_bytes(bytes([1, 10]))  # 1-based on disk
    (d / "unlabeled_X.bin").write_bytes(np.full((3, 3, 96, 96), 77, np.uint8).tobytes())
    full = build_dataset({"name": "stl10", "root": str(tmp_path), "img_size": 96, "split": "train"})
    assert torch.equal(full.images[1], torch.from_numpy(train_x[1].transpose(0, 2, 1).copy()))
    assert full.labels.tolist() == [0, 9]
    ds = build_dataset({"name": "stl10", "root": str(tmp_path)})  # default: train+unlabeled, 48
    assert ds.split == "train+unlabeled" and ds.shape == (3, 48, 48) and len(ds) == 5
    assert ds.labels.tolist() == [0, 9, -1, -1, -1] and ds.num_classes == 10
    assert (ds.images[2:] == 77).all()
    unl = build_dataset({"name": "stl10", "root": str(tmp_path), "split": "unlabeled", "n": 2})
    assert len(unl) == 2 and unl.num_classes is None
    with pytest.raises(ConfigError, match=r"test_X\.bin"):
        build_dataset({"name": "stl10", "root": str(tmp_path)}, train=False)
    with pytest.raises(ConfigError, match="split must be one of"):
        build_dataset({"name": "stl10", "root": str(tmp_path), "split": "extra"})


# ----------------------------------------------------------------------------- stacked


def test_stacked_mnist(tmp_path: Path) -> None:
    write_mnist_layout(tmp_path)  # image i is constant 5 * i, label i % 10
    cfg = {"name": "mnist", "root": str(tmp_path), "stacked": True, "n": 20_000, "seed": 1}
    ds = build_dataset(cfg)
    assert ds.shape == (3, 32, 32) and ds.num_classes == 1000 and len(ds) == 20_000
    assert ds.stacked and not ds.base.stacked and ds.base.num_classes == 10
    x, y = ds.get_batch(torch.arange(len(ds)))
    assert x.shape == (20_000, 3, 32, 32)
    # recover which base image fills each channel from its constant value
    src = ((x[:, :, 10, 10] + 1) * 127.5).round().long() // 5
    assert torch.equal(src, ds.triplets)
    digits = src % 10
    assert torch.equal(y, digits[:, 0] * 100 + digits[:, 1] * 10 + digits[:, 2])
    # independent draws: every one of the 1000 digit triples occurs (expected 20 each)
    assert torch.bincount(y, minlength=1000).min() > 0
    assert (src[:, 0] == src[:, 1]).float().mean() < 0.05  # 1/50 expected
    assert torch.equal(build_dataset(cfg).triplets, ds.triplets)
    assert not torch.equal(build_dataset({**cfg, "seed": 2}).triplets, ds.triplets)
    xi, yi = ds[3]
    assert torch.equal(xi, x[3]) and yi == y[3]
    assert len(build_dataset({**cfg, "n": None})) == 50
    with pytest.raises(ConfigError, match="channels"):
        build_dataset({**cfg, "channels": 1})


# ----------------------------------------------------------------------------- folder


def write_folder(root: Path) -> None:
    (root / "cats").mkdir(parents=True)
    (root / "dogs" / "deep").mkdir(parents=True)
    wide = np.zeros((20, 40, 3), np.uint8)
    wide[:, :, 2] = 255  # blue margins ...
    wide[:, 10:30] = (255, 0, 0)  # ... around a red center square
    Image.fromarray(wide).save(root / "cats" / "a.png")
    Image.fromarray(np.full((30, 30), 128, np.uint8)).save(root / "cats" / "b.png")
    Image.fromarray(np.full((8, 8, 3), 255, np.uint8)).save(root / "dogs" / "deep" / "c.jpg")
    (root / "dogs" / "notes.txt").write_text("not an image")


def test_folder_dataset(tmp_path: Path) -> None:
    write_folder(tmp_path)
    ds = build_dataset({"name": "folder", "root": str(tmp_path), "img_size": 16})
    assert len(ds) == 3 and ds.shape == (3, 16, 16) and ds.num_classes is None
    assert not hasattr(ds, "get_batch")
    x, y = ds[0]  # cats/a.png: the center crop keeps only the red square
    assert x.shape == (3, 16, 16) and x.dtype == torch.float32 and y.item() == -1
    assert torch.equal(x[0], torch.ones(16, 16)) and torch.equal(x[2], -torch.ones(16, 16))
    gray = build_dataset({"name": "folder", "root": str(tmp_path), "img_size": 8, "channels": 1})
    xg, _ = gray[1]
    assert xg.shape == (1, 8, 8) and torch.allclose(
        xg, torch.full((1, 8, 8), 128 / 127.5 - 1), atol=1e-6
    )
    lab = build_dataset({"name": "folder", "root": str(tmp_path), "labels": True})
    assert lab.num_classes == 2 and lab.classes == ["cats", "dogs"]
    assert [lab[i][1].item() for i in range(3)] == [0, 0, 1]
    only_png = build_dataset({"name": "folder", "root": str(tmp_path), "extensions": ["png"]})
    assert len(only_png) == 2


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        build_dataset({"name": "folder", "root": str(tmp_path / "missing")})
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(ConfigError, match="no images found"):
        build_dataset({"name": "folder", "root": str(tmp_path / "empty")})
    with pytest.raises(ConfigError, match=r"dataset\.root"):
        build_dataset({"name": "folder"})
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "loose.png")
    with pytest.raises(ConfigError, match="subfolder"):
        build_dataset({"name": "folder", "root": str(tmp_path), "labels": True})


def test_folder_through_batchstream(tmp_path: Path) -> None:
    for i in range(10):
        Image.fromarray(np.full((12, 12, 3), 20 * i, np.uint8)).save(tmp_path / f"{i}.png")
    ds = build_dataset({"name": "folder", "root": str(tmp_path), "img_size": 4})
    s = BatchStream(ds, 4, seed=0)
    x, y = next(s)
    assert x.shape == (4, 3, 4, 4) and y.tolist() == [-1] * 4
    seen = [next(s) for _ in range(5)]  # crosses two epoch boundaries (2 batches per epoch)
    s2 = BatchStream(ds, 4, seed=0)
    next(s2)
    state = s2.state_dict()
    s3 = BatchStream(ds, 4, seed=0)
    s3.load_state_dict(state)
    for (xa, _), (xb, _) in zip(seen, [next(s3) for _ in range(5)]):
        assert torch.equal(xa, xb)


# ----------------------------------------------------------------------------- fake


def test_fake_dataset() -> None:
    cfg = {"name": "fake", "n": 40, "img_size": 16, "channels": 1, "num_classes": 4, "seed": 5}
    a, b = build_dataset(cfg), build_dataset(cfg)
    assert isinstance(a, InMemoryImages)
    assert a.name == "fake" and a.shape == (1, 16, 16) and a.num_classes == 4 and len(a) == 40
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, build_dataset({**cfg, "seed": 6}).images)
    assert not torch.equal(a.images, build_dataset(cfg, train=False).images)
    assert torch.equal(torch.bincount(a.labels), torch.full((4,), 10))
    x, y = a.get_batch(torch.tensor([0, 3]))
    assert x.dtype == torch.float32 and x.min() >= -1 and x.max() <= 1 and y.dtype == torch.int64
    # smooth: neighbouring pixels differ far less than independent pixels would (2/3)
    assert (x[:, :, 1:] - x[:, :, :-1]).abs().mean() < 0.2
    default = build_dataset({"name": "fake"})
    assert default.shape == (3, 32, 32) and len(default) == 256


# ----------------------------------------------------------------------------- BatchStream


@pytest.mark.parametrize("cls", [IndexDataFast, IndexData])
def test_stream_deterministic_epochs(cls: type) -> None:
    ds = cls(40)
    take = lambda s, k: [next(s)[1] for _ in range(k)]  # noqa: E731
    a = take(BatchStream(ds, 8, seed=3), 10)
    b = take(BatchStream(ds, 8, seed=3), 10)
    c = take(BatchStream(ds, 8, seed=4), 10)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not all(torch.equal(u, v) for u, v in zip(a, c))
    for e in range(2):  # each epoch (5 batches) is a permutation of all 40 items
        assert sorted(torch.cat(a[5 * e : 5 * e + 5]).tolist()) == list(range(40))
    assert not torch.equal(torch.cat(a[:5]), torch.cat(a[5:]))  # reshuffled
    x, y = BatchStream(ds, 8, seed=3).next_batch()
    assert x.shape == (8, 1) and y.dtype == torch.int64


def test_stream_drop_last_and_too_small() -> None:
    s = BatchStream(IndexDataFast(42), 8, seed=0)
    assert s.batches_per_epoch == 5
    ys = [next(s)[1] for _ in range(5)]
    assert len(set(torch.cat(ys).tolist())) == 40 and s.state_dict()["epoch"] == 0
    next(s)
    assert s.state_dict()["epoch"] == 1 and s.state_dict()["position"] == 1
    with pytest.raises(ConfigError, match="too few"):
        BatchStream(IndexDataFast(5), 8, seed=0)


@pytest.mark.parametrize(("n", "world"), [(96, 3), (100, 3), (64, 4)])
def test_stream_rank_shards(n: int, world: int) -> None:
    ds = IndexDataFast(n)
    bs = 4
    for epoch in range(2):
        shards = []
        for rank in range(world):
            s = BatchStream(ds, bs, seed=11, rank=rank, world_size=world)
            s.load_state_dict({"epoch": epoch, "position": 0})
            shards.append(torch.cat([next(s)[1] for _ in range(s.batches_per_epoch)]).tolist())
        flat = [i for sh in shards for i in sh]
        assert len(flat) == len(set(flat))  # disjoint
        assert len({len(sh) for sh in shards}) == 1  # same number of batches on every rank
        if n % (world * bs) == 0:
            assert sorted(flat) == list(range(n))  # together they cover the epoch
        else:
            assert len(flat) == world * bs * ((n // world) // bs)
    with pytest.raises(ConfigError, match="rank"):
        BatchStream(ds, bs, seed=0, rank=3, world_size=3)


@pytest.mark.parametrize(
    ("dataset", "workers"), [(IndexDataFast(30), 0), (IndexData(30), 0), (IndexData(30), 1)]
)
def test_stream_exact_resume(dataset, workers: int) -> None:
    straight = BatchStream(dataset, 7, seed=9, num_workers=workers)  # 4 batches per epoch
    for _ in range(6):
        next(straight)
    state = straight.state_dict()
    assert all(type(v) is int for v in state.values())
    assert state["epoch"] == 1 and state["position"] == 2
    expected = [next(straight) for _ in range(9)]
    resumed = BatchStream(dataset, 7, seed=9, num_workers=workers)
    resumed.load_state_dict(json.loads(json.dumps(state)))
    got = [next(resumed) for _ in range(9)]
    for (xa, ya), (xb, yb) in zip(expected, got):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_stream_resume_at_epoch_end() -> None:
    ds = IndexDataFast(16)
    a = BatchStream(ds, 4, seed=0)
    for _ in range(4):
        next(a)
    b = BatchStream(ds, 4, seed=0)
    b.load_state_dict(a.state_dict())
    assert torch.equal(next(a)[1], next(b)[1])


@pytest.mark.parametrize("cls", [IndexDataFast, IndexData])
def test_stream_leaves_global_rng_alone(cls: type) -> None:
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    t, n, p = torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
    s = BatchStream(cls(20), 6, seed=1)
    for _ in range(8):  # several epochs, several DataLoader iterators
        next(s)
    s.load_state_dict({"epoch": 5, "position": 1})
    next(s)
    assert torch.equal(torch.get_rng_state(), t)
    assert np.array_equal(np.random.get_state()[1], n) and random.getstate() == p


def test_stream_over_real_dataset_types() -> None:
    ring = build_dataset({"name": "grid25", "n": 500})
    x, y = next(BatchStream(ring, 64, seed=0))
    assert x.shape == (64, 2) and y.shape == (64,)
    fake = build_dataset({"name": "fake", "n": 100, "img_size": 8})
    x, y = next(BatchStream(fake, 16, seed=0, device="cpu"))
    assert x.shape == (16, 3, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
