"""Nietzsche (or any UTF-8 text) as `batch_size` parallel character streams read in `bptt` windows.

The text is cut into `batch_size` equal streams, one row each; a batch is the next window of
every row (here 4 streams, bptt 3; x is the input, y the same window shifted by one):

    text   a b c d e f g h i j k l m n o p q r s t u v w x y z . . .
           └─ stream 0 ─────┘└─ stream 1 ─────┘└─ stream 2 ...

             batch 0   batch 1   batch 2
    row 0    a b c     d e f     g h ...       stream 0 read in order
    row 1    i j k     l m n     o p ...       stream 1
    row 2    q r s     t u v     w x ...
    row 3    ...

Row j of batch i+1 continues row j of batch i, so the hidden state the model ends batch i
with is the right start state for batch i+1: the module carries it over (detached).
"""

import hashlib
import math

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from seqlab.datamodule import TaskData
from seqlab.errors import SeqlabError, warn
from seqlab.textfiles import read_text, resolve
from seqlab.types import Fraction, NonNegativeInt, PositiveInt
from seqlab.vocab import Vocab


def batchify(ids: torch.Tensor, n_streams: int) -> torch.Tensor:
    """Cut a 1-D token tensor into `n_streams` equal rows (the tail that does not fit is dropped)."""
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
    return [(int(a), int(b)) for a, b in zip(starts, lengths, strict=False)]


class CharStreams(IterableDataset):
    """Yields (x, y) batches of shape (n_streams, window) in text order (see the diagram above)."""

    def __init__(self, streams: torch.Tensor, bptt: int, random_bptt: bool = False, seed: int = 0, epoch_fn=None):
        self.streams, self.bptt, self.random_bptt, self.seed = streams, bptt, random_bptt, seed
        self.epoch_fn = epoch_fn or (lambda: 0)

    def windows(self) -> list[tuple[int, int]]:
        return bptt_windows(self.streams.size(1), self.bptt, self.random_bptt, self.seed + self.epoch_fn())

    def __len__(self) -> int:
        return len(self.windows())

    def __iter__(self):
        for start, length in self.windows():
            yield self.streams[:, start : start + length], self.streams[:, start + 1 : start + 1 + length]


def split_text(text: str, train_frac: float) -> tuple[str, str]:
    """Ordered split by lines: the first `train_frac` of the lines (ceil) train, the rest
    validation. A text of a single line (nothing to split by, a final newline aside) is split by
    characters."""
    lines = text.split("\n")
    if sum(1 for line in lines if line) < 2:
        cut = math.ceil(len(text) * train_frac)
        return text[:cut], text[cut:]
    n_train = math.ceil(len(lines) * train_frac)
    return "\n".join(lines[:n_train]) + "\n", "\n".join(lines[n_train:])


class CharLMDataModule(TaskData):
    """Characters (lower-cased with `lower`); the vocabulary from the training part (`min_freq`,
    plus `<unk>`); validation text as above. As in the tutorial, the test set is the validation text."""

    task = "charlm"

    def __init__(
        self,
        path: str | None,
        lower: bool,
        train_frac: Fraction,
        min_freq: PositiveInt,
        batch_size: PositiveInt,
        bptt: PositiveInt,
        random_bptt: bool,
        seed: NonNegativeInt,
    ):
        super().__init__()
        self.texts: tuple[str, str] | None = None
        self.vocab: Vocab | None = None
        self.foreign = False  # a model's own vocabulary, for another text (use_model)

    def read(self) -> tuple[str, str]:
        """(training text, validation text), read once."""
        if self.texts is None:
            text = read_text(resolve(self.hparams.path, "nietzsche.txt"))
            self.digest = hashlib.sha1(text.encode()).hexdigest()  # (once: checkpoints keep it)
            self.texts = split_text(text.lower() if self.hparams.lower else text, self.hparams.train_frac)
        return self.texts

    # A checkpoint keeps a digest of the text, so that a resume on an edited file says so.
    def state_dict(self) -> dict:
        self.read()
        return {"text_sha1": self.digest}

    def load_state_dict(self, state: dict) -> None:
        if state.get("text_sha1") not in (None, self.state_dict()["text_sha1"]):
            warn(
                "the text is not the one this checkpoint trained on (its file was edited, or data.path names "
                "another): its validation loss is not comparable with the earlier epochs'"
            )

    def model_kwargs(self) -> dict:
        if self.vocab is None:
            self.check_lengths(1)  # (before the model is built on its vocabulary)
            self.vocab = Vocab.build(self.read()[0], min_freq=self.hparams.min_freq, specials=("<unk>",))
            if len(self.vocab) < 3:  # (<unk> and at most one character: nothing to predict)
                hp = self.hparams
                raise SeqlabError(
                    f"the training text ({len(self.read()[0])} characters, data.train_frac={hp.train_frac}) has "
                    f"{len(self.vocab) - 1} character(s) seen data.min_freq={hp.min_freq} times; pass a larger "
                    f"data.train_frac (e.g. 0.8) or a smaller data.min_freq"
                )
        return {"vocab": list(self.vocab.itos)}

    def check_lengths(self, world: int) -> None:
        bs = self.hparams.batch_size
        for name, part in zip(("training", "validation"), self.read(), strict=False):
            if len(part) < 2 * bs * world:
                raise SeqlabError(
                    f"the {name} text has {len(part)} characters, too few for {bs} streams on "
                    f"{world} device(s); use a longer file or a smaller data.batch_size"
                )

    def use_model(self, module) -> None:
        """Evaluating a checkpoint on another text: encode it with the model's own vocabulary."""
        self.vocab = module.vocab
        self.foreign = True

    def setup(self, stage: str | None = None) -> None:
        self.model_kwargs()
        texts = self.read()
        rank, world = self.rank_and_world()
        bs = self.hparams.batch_size
        self.check_lengths(world)
        ids = [self.vocab.encode(part) for part in texts]
        unknown = (ids[1] == self.vocab.unk_index).float().mean().item() if self.foreign else 0.0
        if unknown > 0.5:  # (a model's metrics on a text it cannot read)
            raise SeqlabError(
                f"{unknown:.0%} of the characters of the test text are not in this model's vocabulary; "
                f"evaluate it on a text of its alphabet (data.path=…)"
            )
        # Each rank reads its own `batch_size` streams of the text: no duplicated data under DDP.
        self.train_streams, self.val_streams = (
            batchify(part, bs * world)[rank * bs : (rank + 1) * bs].to(self.device()) for part in ids
        )

    def train_dataloader(self) -> DataLoader:
        hp = self.hparams
        return self.resumable(CharStreams(self.train_streams, hp.bptt, hp.random_bptt, hp.seed, self.epoch))

    def val_dataloader(self) -> DataLoader:
        return DataLoader(CharStreams(self.val_streams, self.hparams.bptt), batch_size=None)

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()
