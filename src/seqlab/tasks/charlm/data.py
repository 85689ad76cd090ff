"""Nietzsche (or any UTF-8 text) as `bs` parallel character streams read in `bptt` windows."""

import math

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from seqlab.errors import SeqlabError
from seqlab.textfiles import read_text, resolve
from seqlab.vocab import Vocab


def batchify(ids: torch.Tensor, n_streams: int) -> torch.Tensor:
    """Cut a 1-D token tensor into `n_streams` equal rows (the tail that does not fit is dropped):
    row j holds the j-th contiguous slice of the text, so reading the columns left to right
    reads every row in order."""
    stream_len = ids.numel() // n_streams
    return ids[: stream_len * n_streams].view(n_streams, stream_len)


def bptt_windows(stream_len: int, bptt: int, random_bptt: bool, seed: int) -> list[tuple[int, int]]:
    """(start, length) of each window over streams of `stream_len` tokens.

    With `random_bptt` the lengths vary as in fast.ai/torchtext — mostly around `bptt`,
    sometimes around bptt/2, normal with sd 5, at least 5 — so the model does not always see
    the same cut points; the `seed` fixes the draw (one per epoch). The draws are then scaled
    to cover the stream exactly with as many windows as fixed-length reading gives, so every
    epoch has the same number of batches (Lightning counts them once).
    """
    last = stream_len - 1  # the target needs one token more than the input
    n = math.ceil(last / bptt)
    if not random_bptt or n < 2:
        return [(start, min(bptt, last - start)) for start in range(0, last, bptt)]
    rng = np.random.default_rng(seed)
    base = np.where(rng.random(n) < 0.95, bptt, bptt / 2)
    raw = np.maximum(5, rng.normal(base, 5))
    lengths = np.maximum(1, np.floor(raw * last / raw.sum())).astype(int)
    lengths[: last - lengths.sum()] += 1  # hand out the rounding remainder
    while lengths.sum() > last:  # (only when many windows were raised to 1)
        lengths[lengths.argmax()] -= 1
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    return [(int(a), int(b)) for a, b in zip(starts, lengths)]


class CharStreams(IterableDataset):
    """Yields (x, y) batches of shape (n_streams, window) in text order: row j of batch i+1
    continues row j of batch i, which is what lets the model carry its hidden state."""

    def __init__(self, streams: torch.Tensor, bptt: int, random_bptt: bool = False, seed: int = 0, epoch_fn=None):
        self.skip = 0  # batches of this epoch already consumed before a resume
        self.streams = streams
        self.bptt = bptt
        self.random_bptt = random_bptt
        self.seed = seed
        self.epoch_fn = epoch_fn or (lambda: 0)

    def windows(self) -> list[tuple[int, int]]:
        return bptt_windows(self.streams.size(1), self.bptt, self.random_bptt, self.seed + self.epoch_fn())

    def __len__(self) -> int:
        return len(self.windows())

    def __iter__(self):
        windows = self.windows()
        skip, self.skip = self.skip, 0
        for start, length in windows[skip if skip < len(windows) else 0 :]:
            yield self.streams[:, start : start + length], self.streams[:, start + 1 : start + 1 + length]


class ResumableLoader(DataLoader):
    """A DataLoader Lightning can checkpoint (`state_dict`/`load_state_dict`): it records how
    many batches of the current epoch were consumed, so a run resumed mid-epoch goes on with
    the next window instead of re-reading the epoch from its start."""

    def __init__(self, dataset: CharStreams, consumed_fn=None):
        super().__init__(dataset, batch_size=None)
        self.consumed_fn = consumed_fn or (lambda: 0)

    def state_dict(self) -> dict:
        return {"consumed": int(self.consumed_fn())}

    def load_state_dict(self, state: dict) -> None:
        self.dataset.skip = int(state.get("consumed", 0))


class CharLMDataModule(L.LightningDataModule):
    """Lower-cased characters; vocabulary from the training part (`min_freq`, plus `<unk>`);
    ordered split by lines: the first `train_frac` (ceil) train, the rest validation.
    As in the seed, the test set is the validation text."""

    def __init__(
        self,
        path: str | None = None,
        lower: bool = True,
        train_frac: float = 0.8,
        min_freq: int = 3,
        bs: int = 64,
        bptt: int = 8,
        random_bptt: bool = False,
        seed: int = 0,
    ):
        super().__init__()
        if bs is None or int(bs) < 1:
            raise SeqlabError(f"data.bs must be a positive integer, got {bs}; pass e.g. data.bs=64")
        if bptt is None or int(bptt) < 1:
            raise SeqlabError(f"data.bptt must be a positive integer, got {bptt}; pass e.g. data.bptt=32")
        if not 0 < float(train_frac) < 1:
            raise SeqlabError(f"data.train_frac must be between 0 and 1, got {train_frac}")
        self.save_hyperparameters()
        self.vocab: Vocab | None = None

    def _read(self) -> tuple[str, str]:
        text = read_text(resolve(self.hparams.path, "nietzsche.txt"))
        if self.hparams.lower:
            text = text.lower()
        lines = text.split("\n")
        n_train = math.ceil(len(lines) * self.hparams.train_frac)
        return "\n".join(lines[:n_train]) + "\n", "\n".join(lines[n_train:])

    def build_vocab(self) -> Vocab:
        if self.vocab is None:
            self._texts = self._read()
            self.vocab = Vocab.build(self._texts[0], min_freq=self.hparams.min_freq, specials=("<unk>",))
        return self.vocab

    def setup(self, stage: str | None = None) -> None:
        self.build_vocab()
        train_text, val_text = self._texts
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        bs, need = self.hparams.bs, 2 * self.hparams.bs * world
        for name, part in (("training", train_text), ("validation", val_text)):
            if len(part) < need:
                raise SeqlabError(
                    f"the {name} text has {len(part)} characters, too few for bs={bs} streams on {world} device(s); "
                    f"use a longer file or a smaller data.bs"
                )
        # Each rank reads its own `bs` streams of the text: no duplicated data under DDP.
        self.train_streams = batchify(self.vocab.encode(train_text), bs * world)[rank * bs : (rank + 1) * bs]
        self.val_streams = batchify(self.vocab.encode(val_text), bs * world)[rank * bs : (rank + 1) * bs]

    def model_kwargs(self) -> dict:
        """What the model needs from the data: the vocabulary, saved in its checkpoint."""
        return {"vocab": list(self.build_vocab().itos)}

    def _epoch(self) -> int:
        return self.trainer.current_epoch if self.trainer is not None else 0

    def train_dataloader(self) -> DataLoader:
        ds = CharStreams(self.train_streams, self.hparams.bptt, self.hparams.random_bptt, self.hparams.seed, self._epoch)
        return ResumableLoader(ds, self._consumed)

    def _consumed(self) -> int:
        # Steps taken in this epoch when a checkpoint is written (mid-epoch with
        # callbacks.model_checkpoint.every_n_train_steps; a full epoch at its end, read as 0).
        return self.trainer.fit_loop.epoch_loop.batch_progress.current.processed if self.trainer else 0

    def val_dataloader(self) -> DataLoader:
        return DataLoader(CharStreams(self.val_streams, self.hparams.bptt), batch_size=None)

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()
