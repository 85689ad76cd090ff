"""A tiny text ("MathMathMathMathMath") cut into batches of one-hot-able character ids (the GRU tutorial).

layout="tutorial" is the tutorial's cut: the text (less its last character, which is only a
target) is split into `seq_len`-long samples, and batch i holds samples i*batch_size …
(i+1)*batch_size - 1 — so row j of batch i+1 does not continue row j of batch i, although the
tutorial carries the hidden state from batch to batch anyway. layout="streams" cuts the text into
`batch_size` streams instead (as the char-LM does), so the carried state belongs to the text it
has read. Every epoch reads the same batches in the same order; the validation and test passes
read the same text (the tutorial has nothing else).
"""

from typing import Annotated, Literal

import torch
from pydantic import Field
from torch.utils.data import DataLoader

from seqlab.datamodule import TaskData
from seqlab.errors import SeqlabError
from seqlab.types import PositiveInt


def make_batches(
    ids: torch.Tensor, batch_size: int, seq_len: int, layout: str
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(x, y) pairs of shape (batch_size, seq_len); y is x shifted by one character."""
    x_all, y_all = ids[:-1], ids[1:]
    if layout == "tutorial":
        n_samples = x_all.numel() // seq_len
        n_batches = n_samples // batch_size
        cut = n_batches * batch_size * seq_len
        xs = x_all[:cut].view(n_batches, batch_size, seq_len)
        ys = y_all[:cut].view(n_batches, batch_size, seq_len)
    else:
        stream_len = x_all.numel() // batch_size
        n_batches = stream_len // seq_len
        streams_x = x_all[: stream_len * batch_size].view(batch_size, stream_len)
        streams_y = y_all[: stream_len * batch_size].view(batch_size, stream_len)
        cut = n_batches * seq_len
        xs = streams_x[:, :cut].reshape(batch_size, n_batches, seq_len).transpose(0, 1)
        ys = streams_y[:, :cut].reshape(batch_size, n_batches, seq_len).transpose(0, 1)
    return [(x.contiguous(), y.contiguous()) for x, y in zip(xs, ys, strict=False)]


class GRUToyDataModule(TaskData):
    task = "gru_toy"

    def __init__(
        self,
        text: str,
        vocab: Annotated[list[str], Field(examples=[["h", "a", "t", "M"]])],
        batch_size: PositiveInt,
        seq_len: PositiveInt,
        layout: Literal["tutorial", "streams"],
    ):
        super().__init__()
        vocab = list(vocab)
        if not text:
            raise SeqlabError("data.text is empty; pass e.g. data.text=MathMathMath")
        if not vocab or any(not isinstance(c, str) or len(c) != 1 for c in vocab) or len(set(vocab)) != len(vocab):
            raise SeqlabError(
                f"data.vocab must be a list of distinct single characters, got {vocab!r}; e.g. data.vocab=[h,a,t,M]"
            )
        missing = sorted(set(text) - set(vocab))
        if missing:
            raise SeqlabError(
                f"data.text has characters not in data.vocab: {''.join(missing)!r}; write it with the "
                f"characters {''.join(vocab)!r} only (or, training a new model, add them to data.vocab)"
            )
        if len(text) - 1 < batch_size * seq_len:
            raise SeqlabError(
                f"data.text has {len(text)} characters, too few for one batch of {batch_size}×{seq_len} "
                f"(and the targets one further); use a longer text or smaller data.batch_size/data.seq_len"
            )
        self.vocab = vocab
        self.made = make_batches(torch.tensor([vocab.index(c) for c in text]), batch_size, seq_len, layout)

    def model_kwargs(self) -> dict:
        return {"vocab": list(self.vocab)}

    def _loader(self) -> DataLoader:
        return DataLoader(self.on_device(), batch_size=None, shuffle=False)  # in order: the state is carried

    def on_device(self) -> list:
        return [(x.to(self.device()), y.to(self.device())) for x, y in self.made]

    def train_dataloader(self) -> DataLoader:
        return self.resumable(self.on_device())

    def val_dataloader(self) -> DataLoader:
        return self._loader()

    def test_dataloader(self) -> DataLoader:
        return self._loader()
