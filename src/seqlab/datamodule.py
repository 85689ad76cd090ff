"""What every task's data module shares: plain-valued hyperparameters (saved in checkpoints),
`model_kwargs()`, the trainer's epoch and rank, and training loaders that resume mid-epoch."""

import abc
import functools
import math
from collections.abc import Iterable

import lightning as L
import torch
from torch.utils.data import DataLoader, IterableDataset

from seqlab.errors import SeqlabError


def tensor_batches(tensors, batch_size: int) -> DataLoader:
    """Fixed batches cut from whole tensors (a held-out set): slices, no per-example collating."""
    return DataLoader(list(zip(*(t.split(batch_size) for t in tensors), strict=False)), batch_size=None)


class ResumableLoader(DataLoader):
    """A loader Lightning checkpoints (`state_dict`/`load_state_dict`): it records how many
    batches of the current epoch were consumed, so a run resumed mid-epoch goes on with the next
    batch instead of reading the epoch again from its start. For datasets that yield whole
    batches, drawn the same way for the same epoch (see the tasks' data.py)."""

    def __init__(self, dataset: IterableDataset, consumed_fn, **loader_args):
        super().__init__(dataset, batch_size=None, **loader_args)
        self.consumed_fn = consumed_fn
        self.skip = 0

    def __iter__(self):
        it = super().__iter__()
        skip, self.skip = self.skip, 0
        for _ in range(skip):  # cheap: batches are cut from tensors, not loaded
            next(it, None)
        return it

    def state_dict(self) -> dict:
        return {"consumed": int(self.consumed_fn())}

    def load_state_dict(self, state: dict) -> None:
        self.skip = int(state.get("consumed", 0))


class Batches(IterableDataset):
    """Each epoch, the examples `order()` lists (indices), `batch_size` at a time, made by `take(rows)`.
    An epoch's order changes, its length does not: it is counted once."""

    def __init__(self, order, batch_size: int, take):
        self.order, self.batch_size, self.take = order, batch_size, take
        self.length = math.ceil(len(order()) / batch_size)

    def __iter__(self):
        for rows in self.order().split(self.batch_size):
            yield self.take(rows)

    def __len__(self):
        return self.length


class Listed(IterableDataset):
    """Batches made beforehand, read in their order."""

    def __init__(self, batches: list):
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)

    def __len__(self):
        return len(self.batches)


def returns_batches(method):
    """A data module's loader method, whose answer is checked: a forgotten `return` is one line."""

    @functools.wraps(method)
    def checked(self, *args, **kwargs):
        loader = method(self, *args, **kwargs)
        if method.__name__ == "train_dataloader" and self.trainer is not None and (n := length(loader)) is not None:
            check_interval(self.trainer, n)
        several = isinstance(loader, list | tuple | dict) and len(loader) > 0  # ([]: no batches, said after the run)
        if not isinstance(loader, Iterable) or several:
            got = "None" if loader is None else f"a {type(loader).__name__}"
            why = ", which Lightning reads as one loader per item" * several
            raise SeqlabError(
                f"{type(self).__name__}.{method.__name__}() returned {got}{why}; return its batches "
                f"(e.g. return self.batches(x, y, batch_size=32), or a DataLoader)"
            )
        return loader

    return checked


def length(loader) -> int | None:
    """A loader's number of batches, or None (a DataLoader of an iterable dataset has none)."""
    try:
        return len(loader)
    except TypeError:
        return None


def check_interval(trainer, batches: int) -> None:
    """trainer.val_check_interval in batches, against an epoch's (Lightning refuses it with a traceback)."""
    every, limit = trainer.val_check_interval, trainer.limit_train_batches
    n = min(batches, limit) if isinstance(limit, int) else int(batches * limit)
    if isinstance(every, int) and trainer.check_val_every_n_epoch is not None and every > n:
        raise SeqlabError(
            f"trainer.val_check_interval={every} batches, but an epoch has {n}; pass at most {n}, a fraction of an "
            f"epoch (e.g. 0.5), or trainer.check_val_every_n_epoch=null to count batches across epochs"
        )


class TaskData(L.LightningDataModule, abc.ABC):
    """A task's data (`seqlab.TaskData`).

    A subclass declares `task = "<name>"` (its Task's), takes plain values only in `__init__`
    (numbers, strings, lists: the data config's; a checkpoint rebuilds the data from them, and
    `seqlab-eval data.<key>=…` changes them), calls `super().__init__()` first (which saves them),
    and implements `train_dataloader()` and `val_dataloader()`. `test_dataloader()` reads the
    validation data unless it is written too; `model_kwargs()` returns what the model needs from
    the data (a vocabulary, the example format) as plain values: they become model arguments.
    `self.batches(...)` makes a loader from tensors that resumes in the middle of an epoch.
    """

    task: str = ""  # the task's name: the same as its module's `task`

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in ("train_dataloader", "val_dataloader", "test_dataloader"):  # (Lightning's check is a TypeError)
            if name in vars(cls):
                setattr(cls, name, returns_batches(vars(cls)[name]))

    def __init__(self):
        super().__init__()
        self.save_hyperparameters()  # the subclass's arguments

    def model_kwargs(self) -> dict:
        """What the model needs from the data, as plain values (none by default)."""
        return {}

    @abc.abstractmethod
    def train_dataloader(self):
        """The training batches of one epoch."""

    @abc.abstractmethod
    def val_dataloader(self):
        """The validation batches."""

    def test_dataloader(self):
        return self.val_dataloader()

    def batches(self, *tensors: torch.Tensor, batch_size: int, shuffle: bool = True) -> "ResumableLoader":
        """Batches of rows of `tensors`, moved to the training device once, in a new order each
        epoch (the seed's and the epoch's) unless shuffle=False; resumable mid-epoch."""
        if (
            not tensors
            or not all(isinstance(t, torch.Tensor) and t.ndim for t in tensors)
            or len({len(t) for t in tensors}) > 1
        ):
            got = ", ".join(f"{list(t.shape)}" if isinstance(t, torch.Tensor) else type(t).__name__ for t in tensors)
            raise SeqlabError(
                f"{type(self).__name__}.batches() takes tensors with one row per example, all with the same "
                f"number of rows; got {got or 'none'} (e.g. self.batches(x, y, batch_size=32))"
            )
        if not (isinstance(batch_size, int) and batch_size > 0):
            raise SeqlabError(
                f"{type(self).__name__}.batches() got batch_size={batch_size!r}; pass a whole number of examples, 1 or "
                f"more (annotate the data argument it comes from as seqlab.types.PositiveInt)"
            )
        tensors = [t.to(self.device()) for t in tensors]
        order = functools.partial(self.order, len(tensors[0]), shuffle)
        return self.resumable(Batches(order, batch_size, lambda rows: tuple(t[rows] for t in tensors)))

    def order(self, n: int, shuffle: bool = True) -> torch.Tensor:
        """This epoch's indices of `n` examples, on the training device: a new order each epoch
        (drawn from the seed and the epoch, so a resumed run draws it again) unless shuffle=False;
        under DDP each rank's equal share (unequal ones would leave a rank waiting for the others)."""
        rank, world = self.rank_and_world()
        if shuffle:
            g = torch.Generator().manual_seed(torch.initial_seed() + self.epoch())
            rows = torch.randperm(n, generator=g)
        else:
            rows = torch.arange(n)
        return rows[: n // world * world][rank::world].to(self.device())

    def use_model(self, module) -> None:
        """Called with the trained module before evaluating a checkpoint, e.g. to encode other
        data with the model's own vocabulary. Nothing to do for most tasks."""

    # ---- where the trainer is ----------------------------------------------------------
    def device(self) -> torch.device:
        """Where the model trains. The tasks' data are small: they are made or moved there once
        (an epoch at a time), so that no training step waits for a copy from the host."""
        return self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")

    def epoch(self) -> int:
        """The epoch whose data to draw: 0 in every epoch under trainer.overfit_batches (debug=overfit),
        so the same few batches come back (Lightning can stop a sampler's shuffling, not a draw's)."""
        t = self.trainer
        return t.current_epoch if t is not None and not t.overfit_batches else 0

    def rank_and_world(self) -> tuple[int, int]:
        return (self.trainer.global_rank, self.trainer.world_size) if self.trainer is not None else (0, 1)

    def _consumed(self) -> int:
        """Batches of this epoch already trained on when a checkpoint is written: some, mid-epoch
        (a step checkpoint, an interrupted run); 0 once the epoch is complete (the resumed run
        starts the next one from its first batch)."""
        if self.trainer is None:
            return 0
        done = self.trainer.fit_loop.epoch_loop.batch_progress.current.processed
        return done if done < self.trainer.num_training_batches else 0

    def resumable(self, batches: IterableDataset | list, **loader_args) -> ResumableLoader:
        """A training loader that resumes in the middle of an epoch: `batches` yields whole batches,
        the same ones for the same epoch (a list of them, or e.g. Batches(self.order, …)).
        `loader_args`: DataLoader's (pin_memory, num_workers)."""
        dataset = batches if isinstance(batches, IterableDataset) else Listed(batches)
        return ResumableLoader(dataset, self._consumed, **loader_args)
