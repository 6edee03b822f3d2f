"""An infinite, resumable, shardable stream of training batches."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from gansn.errors import ConfigError

log = logging.getLogger(__name__)

_MASK64 = (1 << 64) - 1


def epoch_seed(seed: int, epoch: int) -> int:
    """A well-mixed 63-bit seed for ``(seed, epoch)`` (SplitMix64 finalizer).

    Python's ``hash`` of a tuple is stable for ints but not specified across versions or
    platforms; this is, so a run resumed elsewhere replays the same order.
    """
    z = (int(seed) * 0x9E3779B97F4A7C15 + int(epoch) + 0x632BE59BD9B4E019) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (z ^ (z >> 31)) & ((1 << 63) - 1)


class BatchStream(Iterator[tuple[torch.Tensor, torch.Tensor]]):
    """Endless ``(x (B, *shape), y (B,))`` batches over shuffled epochs, last partial batch
    dropped.

    Epoch ``e``'s order is ``randperm(N)`` from a private generator seeded with
    ``epoch_seed(seed, e)``: a pure function of ``(seed, e)``, and the global RNG is never
    touched, so adding or removing the data pipeline does not change the training noise.
    With ``world_size > 1`` rank ``r`` takes ``perm[r::world_size]`` of the first
    ``world_size * (N // world_size)`` entries, as ``DistributedSampler(drop_last=True)``
    does: shards are disjoint and every rank sees the same number of batches.

    Datasets with ``get_batch`` are sliced directly (one gather per batch, no workers);
    others go through a ``DataLoader`` over the remaining indices of the epoch.
    ``state_dict()``/``load_state_dict()`` save and restore ``(epoch, position)``, where
    ``position`` counts batches already returned in this epoch, so a resumed stream
    returns exactly the batches the uninterrupted one would have.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        *,
        seed: int,
        num_workers: int = 0,
        rank: int = 0,
        world_size: int = 1,
        device: str | torch.device = "cpu",
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be positive, got {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ConfigError(
                f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}"
            )
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.num_workers = int(num_workers)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.device = torch.device(device)
        self.num_samples = len(dataset)  # type: ignore[arg-type]
        self.per_rank = self.num_samples // self.world_size
        self.batches_per_epoch = self.per_rank // self.batch_size
        if self.batches_per_epoch == 0:
            raise ConfigError(
                f"dataset {getattr(dataset, 'name', '?')!r} has {self.num_samples} items: too few "
                f"for one batch of {self.batch_size} per rank on {self.world_size} rank(s)"
            )
        self._get_batch = getattr(dataset, "get_batch", None)
        self.epoch = 0
        self.position = 0
        self._shard: torch.Tensor | None = None  # this rank's indices for self.epoch
        self._loader_iter: Iterator[Any] | None = None

    def epoch_indices(self, epoch: int) -> torch.Tensor:
        """This rank's ``(batches_per_epoch * batch_size,)`` int64 indices for ``epoch``."""
        g = torch.Generator().manual_seed(epoch_seed(self.seed, epoch))
        perm = torch.randperm(self.num_samples, generator=g)
        shard = perm[: self.per_rank * self.world_size][self.rank :: self.world_size]
        return shard[: self.batches_per_epoch * self.batch_size]

    def _start_loader(self) -> None:
        assert self._shard is not None
        remaining = self._shard[self.position * self.batch_size :].tolist()
        self._loader_iter = iter(
            DataLoader(
                self.dataset,
                batch_size=self.batch_size,
                sampler=remaining,
                num_workers=self.num_workers,
                drop_last=True,
                pin_memory=self.device.type == "cuda",
                persistent_workers=False,
                # DataLoader draws its worker base seed from the global RNG unless given a
                # generator; a private one keeps the global stream untouched
                generator=torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch)),
            )
        )

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next ``(x, y)`` batch, on ``device``."""
        if self.position >= self.batches_per_epoch:
            self.epoch += 1
            self.position = 0
            self._shard = None
            self._loader_iter = None
        if self._shard is None:
            self._shard = self.epoch_indices(self.epoch)
        if self._get_batch is not None:
            start = self.position * self.batch_size
            x, y = self._get_batch(self._shard[start : start + self.batch_size])
        else:
            if self._loader_iter is None:
                self._start_loader()
            try:
                x, y = next(self._loader_iter)  # type: ignore[arg-type]
            except ConfigError as err:
                raise _unwrapped(err) from None
        self.position += 1
        non_blocking = self.device.type == "cuda"
        return x.to(self.device, non_blocking=non_blocking), y.to(
            self.device, non_blocking=non_blocking
        )

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.next_batch()

    def __iter__(self) -> BatchStream:
        return self

    def state_dict(self) -> dict[str, int]:
        """Plain ints: ``epoch``, ``position`` (batches returned in this epoch), and the
        settings they are relative to (``seed``, ``batch_size`` per rank, ``world_size``).

        ``position`` counts global batches (every rank returns its share of each), so the
        state is the same on every rank and means the same on any number of ranks: a run
        of ``world_size`` ranks x ``batch_size`` continues exactly on ``w`` ranks x
        ``batch_size * world_size / w``."""
        return {
            "epoch": self.epoch,
            "position": self.position,
            "seed": self.seed,
            "batch_size": self.batch_size,
            "world_size": self.world_size,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict`.

        Another world size with the same global batch continues the same order.  A
        different seed or global batch size makes ``position`` point elsewhere in a
        different order; that is allowed (resuming with other settings) but logged.
        """
        saved = {
            "seed": int(state.get("seed", self.seed)),
            "global batch size": int(state.get("batch_size", self.batch_size))
            * int(state.get("world_size", self.world_size)),
        }
        now = {"seed": self.seed, "global batch size": self.batch_size * self.world_size}
        for key, value in saved.items():
            if value != now[key]:
                log.warning(
                    "BatchStream resumed with %s %s but the state was saved with %s; "
                    "the batch order will differ from the original run",
                    key,
                    now[key],
                    value,
                )
        epoch, position = int(state["epoch"]), int(state["position"])
        if epoch < 0 or position < 0:
            raise ConfigError(f"invalid BatchStream state {state}")
        # a position past the end (smaller batches_per_epoch now) just rolls to the next epoch
        self.epoch, self.position = epoch, min(position, self.batches_per_epoch)
        self._shard = None
        self._loader_iter = None

    def __repr__(self) -> str:
        return (
            f"BatchStream(batch_size={self.batch_size}, epoch={self.epoch}, "
            f"position={self.position}/{self.batches_per_epoch}, "
            f"rank={self.rank}/{self.world_size})"
        )


def _unwrapped(err: ConfigError) -> ConfigError:
    """A ConfigError raised in a DataLoader worker (a corrupt image) with its one-line message.

    The DataLoader re-raises a worker's exception with the worker's traceback as the message;
    its last line is the original ``ConfigError: <message>``.
    """
    text = str(err)
    if "Original Traceback" not in text:
        return err
    last = text.rstrip().splitlines()[-1]
    return type(err)(last.partition(": ")[2] or last)  # the class survives (a DataError)
