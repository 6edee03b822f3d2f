"""Datasets (``DATASETS`` registry, :func:`build_dataset`) and :class:`BatchStream`.

Build a dataset from its config node and stream batches from it::

    from gansn.data import BatchStream, build_dataset

    ds = build_dataset({"name": "fashion_mnist", "img_size": 32})  # (1, 32, 32) in [-1, 1]
    stream = BatchStream(ds, 64, seed=0)
    x, y = next(stream)                                           # (64, 1, 32, 32), (64,)

Data root: ``dataset.root``, else ``$GANSN_DATA``, else ``~/.cache/gansn/data``.  Files are
read from there in torchvision's layout; nothing is downloaded unless ``download: true``.

Register your own dataset with a factory taking keyword options plus ``train``::

    @DATASETS.register("my_data")
    def my_data(*, train: bool = True, root: str | None = None) -> Dataset: ...
"""

from gansn.data.base import (
    DATASETS,
    DEFAULT_ROOT,
    InMemoryImages,
    build_dataset,
    dataset_options,
    default_root,
    fit_images,
    to_unit_range,
)
from gansn.data.folder import ImageFolder
from gansn.data.stream import BatchStream, epoch_seed
from gansn.data.toy import GaussianMixture2D, grid_centers, ring_centers
from gansn.data.vision import StackedImages, read_cifar10, read_idx, read_stl10_images

__all__ = [
    "DATASETS",
    "DEFAULT_ROOT",
    "BatchStream",
    "GaussianMixture2D",
    "ImageFolder",
    "InMemoryImages",
    "StackedImages",
    "build_dataset",
    "dataset_options",
    "default_root",
    "epoch_seed",
    "fit_images",
    "grid_centers",
    "read_cifar10",
    "read_idx",
    "read_stl10_images",
    "ring_centers",
    "to_unit_range",
]
