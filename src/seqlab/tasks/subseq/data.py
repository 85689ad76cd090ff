"""Generated examples of the subsequence code: X = (idx, len, x0 … x7) -> Y = x[idx:idx+len] + zeros.

Everything is drawn with tensor operations, a whole epoch at a time. Each stream of examples
(training epoch e, validation, test) has its own seed derived from (seed, stream id, epoch) with
numpy's SeedSequence, so the streams are independent (the stream id keeps training apart from the
held-out sets even when the numbers coincide), the validation and test sets are the same in every
run, and epoch e of a resumed run sees the same examples as in the first run.
"""

import math

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

from seqlab.errors import SeqlabError

# Stream ids mixed into the seed: training epochs never share a seed with the held-out sets.
TRAIN, VAL, TEST = 0, 1, 2


def stream_seed(seed: int, stream: int, epoch: int = 0, rank: int = 0) -> int:
    """A 63-bit seed for one stream of examples, independent of the others."""
    state = np.random.SeedSequence([int(seed), stream, int(epoch), int(rank)]).generate_state(2, np.uint32)
    return int(state[0]) << 31 ^ int(state[1])


def make_examples(n: int, seed: int, seq_len: int = 10, max_start: int = 5, min_len: int = 2,
                  digit_low: int = 1, digit_high: int = 9) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` examples as the seed draws them, but all at once.

    X (n, seq_len): idx uniform in [0, max_start], len uniform in [min_len, seq_len-2-idx],
    then seq_len-2 digits uniform in [digit_low, digit_high].
    Y (n, seq_len-2): x[idx : idx+len], then zeros (0 is never a digit, so it marks the end).
    """
    g = torch.Generator().manual_seed(seed)
    body = seq_len - 2
    idx = torch.randint(0, max_start + 1, (n,), generator=g)
    # len uniform in [min_len, body - idx]: the upper end depends on the row, so scale a uniform draw.
    span = body - idx - min_len + 1
    length = min_len + (torch.rand(n, generator=g) * span).floor().long().clamp_max(span - 1)
    digits = torch.randint(digit_low, digit_high + 1, (n, body), generator=g)
    pos = torch.arange(body)
    src = (idx[:, None] + pos).clamp_max(body - 1)  # positions past the slice are masked below
    y = torch.where(pos < length[:, None], digits.gather(1, src), 0)
    x = torch.cat([idx[:, None], length[:, None], digits], dim=1)
    return x, y


class FreshExamples(IterableDataset):
    """`size` new examples per epoch, yielded as (x, y) batches; the epoch number (from the
    trainer, through `epoch_fn`) picks the seed, so a resumed run draws what the first run drew."""

    def __init__(self, size: int, batch_size: int, seed: int, fmt: dict, epoch_fn=None, rank: int = 0):
        self.size, self.batch_size, self.seed, self.fmt, self.rank = size, batch_size, seed, fmt, rank
        self.epoch_fn = epoch_fn or (lambda: 0)

    def __len__(self) -> int:
        return math.ceil(self.size / self.batch_size)

    def __iter__(self):
        x, y = make_examples(self.size, stream_seed(self.seed, TRAIN, self.epoch_fn(), self.rank), **self.fmt)
        for start in range(0, self.size, self.batch_size):
            yield x[start : start + self.batch_size], y[start : start + self.batch_size]


class SubseqDataModule(L.LightningDataModule):
    """Fresh training examples every epoch (from `seed` and the epoch number); fixed validation
    and test sets from their own seeds, so runs with different seeds are scored on the same sets."""

    def __init__(
        self,
        seq_len: int = 10,
        max_start: int = 5,
        min_len: int = 2,
        digit_low: int = 1,
        digit_high: int = 9,
        train_size: int = 4096,
        val_size: int = 2000,
        test_size: int = 2000,
        batch_size: int = 32,
        eval_batch_size: int = 500,
        seed: int = 0,
        val_seed: int = 1,
        test_seed: int = 2,
    ):
        super().__init__()
        for name, value in (("train_size", train_size), ("val_size", val_size), ("test_size", test_size),
                            ("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if value is None or int(value) < 1:
                raise SeqlabError(f"data.{name} must be a positive integer, got {value}; pass e.g. data.{name}=32")
        if not 1 <= digit_low <= digit_high:
            raise SeqlabError(f"digits must satisfy 1 <= data.digit_low <= data.digit_high (0 is the padding), "
                              f"got {digit_low}..{digit_high}; pass e.g. data.digit_low=1 data.digit_high=9")
        if min_len < 1 or max_start < 0 or max_start + min_len > seq_len - 2:
            raise SeqlabError(f"need data.min_len >= 1, data.max_start >= 0 and max_start + min_len <= seq_len - 2 "
                              f"(every slice must fit), got seq_len={seq_len} max_start={max_start} min_len={min_len}; "
                              f"pass e.g. data.seq_len=10 data.max_start=5 data.min_len=2")
        self.save_hyperparameters()
        # seed=null: a random training stream (not repeatable, as asked); the held-out sets stay fixed.
        self.train_seed = int(seed) if seed is not None else int(np.random.SeedSequence().entropy % 2**63)

    def format(self) -> dict:
        hp = self.hparams
        return {k: hp[k] for k in ("seq_len", "max_start", "min_len", "digit_low", "digit_high")}

    def model_kwargs(self) -> dict:
        """The example format: the model sizes its vocabulary and output from it, and
        `respond` checks prompts against it."""
        return self.format()

    def setup(self, stage: str | None = None) -> None:
        hp = self.hparams
        self.val_set = make_examples(hp.val_size, stream_seed(hp.val_seed, VAL), **self.format())
        self.test_set = make_examples(hp.test_size, stream_seed(hp.test_seed, TEST), **self.format())

    def _epoch(self) -> int:
        return self.trainer.current_epoch if self.trainer is not None else 0

    def train_dataloader(self) -> DataLoader:
        # Under DDP each rank draws its own examples (the rank is part of the seed).
        rank = self.trainer.global_rank if self.trainer is not None else 0
        ds = FreshExamples(self.hparams.train_size, self.hparams.batch_size, self.train_seed, self.format(),
                           self._epoch, rank)
        return DataLoader(ds, batch_size=None)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(*self.val_set), batch_size=self.hparams.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(*self.test_set), batch_size=self.hparams.eval_batch_size)
