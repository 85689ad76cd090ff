"""Generated examples of the subsequence code: X = (idx, len, x0 … x7) -> Y = x[idx:idx+len] + zeros.

Everything is drawn with tensor operations, a whole epoch at a time. Each stream of examples
(training epoch e, validation, test) has its own seed derived from (seed, stream id, epoch) with
numpy's SeedSequence, so the streams are independent (the stream id keeps training apart from the
held-out sets even when the numbers coincide), the validation and test sets are the same in every
run, and epoch e of a resumed run sees the same examples as in the first run.
"""

import math
import re

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from seqlab.datamodule import TaskData, tensor_batches
from seqlab.errors import SeqlabError
from seqlab.types import NonNegativeInt, PositiveInt

FORMAT = ("seq_len", "max_start", "min_len", "digit_low", "digit_high")  # what an example looks like

# Stream ids mixed into the seed: training epochs never share a seed with the held-out sets.
TRAIN, VAL, TEST = 0, 1, 2


def stream_seed(seed: int, stream: int, epoch: int = 0, rank: int = 0) -> int:
    """A 63-bit seed for one stream of examples, independent of the others."""
    state = np.random.SeedSequence([int(seed), stream, int(epoch), int(rank)]).generate_state(2, np.uint32)
    return int(state[0]) << 31 ^ int(state[1])


def make_examples(
    n: int, seed: int, seq_len: int = 10, max_start: int = 5, min_len: int = 2, digit_low: int = 1, digit_high: int = 9
) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` examples as the tutorial draws them, but all at once.

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

    def __init__(self, size: int, batch_size: int, seed: int, fmt: dict, epoch_fn=None, rank: int = 0, device="cpu"):
        self.size, self.batch_size, self.seed, self.fmt, self.rank = size, batch_size, seed, fmt, rank
        self.epoch_fn, self.device = epoch_fn or (lambda: 0), device

    def __len__(self) -> int:
        return math.ceil(self.size / self.batch_size)

    def __iter__(self):
        x, y = make_examples(self.size, stream_seed(self.seed, TRAIN, self.epoch_fn(), self.rank), **self.fmt)
        x, y = x.to(self.device), y.to(self.device)  # one copy an epoch
        for start in range(0, self.size, self.batch_size):
            yield x[start : start + self.batch_size], y[start : start + self.batch_size]


class SubseqDataModule(TaskData):
    """Fresh training examples every epoch (from `seed` and the epoch number); fixed validation
    and test sets from their own seeds, so runs with different seeds are scored on the same sets."""

    task = "subseq"

    def __init__(
        self,
        seq_len: PositiveInt,
        max_start: NonNegativeInt,
        min_len: PositiveInt,
        digit_low: PositiveInt,
        digit_high: PositiveInt,
        train_size: PositiveInt,
        val_size: PositiveInt,
        test_size: PositiveInt,
        batch_size: PositiveInt,
        eval_batch_size: PositiveInt,
        seed: NonNegativeInt | None,
        val_seed: NonNegativeInt,
        test_seed: NonNegativeInt,
    ):
        super().__init__()
        if not digit_low <= digit_high:
            raise SeqlabError(
                f"need data.digit_low <= data.digit_high (0 is the padding), got {digit_low}..{digit_high}; "
                f"pass e.g. data.digit_low=1 data.digit_high=9"
            )
        if max_start + min_len > seq_len - 2:
            raise SeqlabError(
                f"need data.max_start + data.min_len <= data.seq_len - 2 (every slice must fit), got "
                f"seq_len={seq_len} max_start={max_start} min_len={min_len}; "
                f"pass e.g. data.seq_len=10 data.max_start=5 data.min_len=2"
            )
        # seed=null: a random training stream (not repeatable, as asked); the held-out sets stay fixed.
        self.train_seed = int(seed) if seed is not None else int(np.random.SeedSequence().entropy % 2**63)

    def format(self) -> dict:
        return {k: self.hparams[k] for k in FORMAT}

    def model_kwargs(self) -> dict:
        """The example format: the model sizes its vocabulary and output from it, and
        `respond` checks prompts against it."""
        return self.format()

    def setup(self, stage: str | None = None) -> None:
        hp, device = self.hparams, self.device()
        self.val_set = [
            t.to(device) for t in make_examples(hp.val_size, stream_seed(hp.val_seed, VAL), **self.format())
        ]
        self.test_set = [
            t.to(device) for t in make_examples(hp.test_size, stream_seed(hp.test_seed, TEST), **self.format())
        ]

    def train_dataloader(self) -> DataLoader:
        # Under DDP each rank draws its own examples (the rank is part of the seed).
        hp = self.hparams
        return self.resumable(
            FreshExamples(
                hp.train_size,
                hp.batch_size,
                self.train_seed,
                self.format(),
                self.epoch,
                self.rank_and_world()[0],
                self.device(),
            )
        )

    def val_dataloader(self) -> DataLoader:
        return tensor_batches(self.val_set, self.hparams.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return tensor_batches(self.test_set, self.hparams.eval_batch_size)


def format_help(fmt: dict) -> str:
    body = fmt["seq_len"] - 2
    return (
        f"{fmt['seq_len']} numbers 'idx len x0 … x{body - 1}' with idx in 0..{fmt['max_start']}, "
        f"len in {fmt['min_len']}..{body}-idx, digits x in {fmt['digit_low']}..{fmt['digit_high']}, "
        f'e.g. prompt="2 3 1 8 2 5 8 6 4 5"'
    )


def parse_prompt(prompt, fmt: dict) -> torch.Tensor:
    """'2 3 1 8 2 5 8 6 4 5' (or '2,3,1,…' or '2318258645') -> a (1, seq_len) tensor, checked
    against the example format `fmt`."""
    text = str(prompt).strip()
    parts = re.split(r"[\s,]+", text) if text else []
    if len(parts) == 1 and len(parts[0]) == fmt["seq_len"]:
        parts = list(parts[0])  # the compact form: one digit per number
    if len(parts) != fmt["seq_len"] or not all(p.isdigit() for p in parts):
        shown = repr(text) if len(text) <= 60 else f"{text[:40]!r}… ({len(parts):,} numbers)"
        raise SeqlabError(f"prompt {shown} is not {format_help(fmt)}")
    idx, length, *digits = (int(p) for p in parts)
    problem = None
    if idx > fmt["max_start"]:
        problem = f"idx={idx} is above {fmt['max_start']}"
    elif not fmt["min_len"] <= length <= fmt["seq_len"] - 2 - idx:
        problem = f"len={length} is outside {fmt['min_len']}..{fmt['seq_len'] - 2 - idx} for idx={idx}"
    elif not all(fmt["digit_low"] <= d <= fmt["digit_high"] for d in digits):
        problem = f"a digit is outside {fmt['digit_low']}..{fmt['digit_high']}"
    if problem:
        raise SeqlabError(f"prompt {text!r}: {problem}; the prompt is {format_help(fmt)}")
    return torch.tensor([[idx, length, *digits]])
