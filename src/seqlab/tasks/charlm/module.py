"""Stateful character LM trained with truncated backprop through time.

Lightning 2 has no built-in truncated BPTT, so the module does it: batches arrive in stream
order (see data.py) and the hidden state one batch ends with, detached, starts the next
(Task.carry_state). Automatic optimization stays on, so the Trainer's gradient
clipping, accumulation and schedulers work as usual.
"""

import math
import warnings
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torchmetrics import MeanMetric

from seqlab.errors import SeqlabError, SeqlabWarning
from seqlab.module import Task
from seqlab.sampling import make_generator
from seqlab.tasks.charlm.model import FUSED, CharRNN, generate
from seqlab.types import Dropout, NonNegativeInt, PositiveInt, SampleSeed, Temperature
from seqlab.vocab import Vocab

MAX_LENGTH = 100_000  # characters one generate call may ask for


def nats_to_bits(x):
    return x / math.log(2)


class Transformed(MeanMetric):
    """A weighted mean reported through `fn` (perplexity = exp(mean NLL), bits = NLL / ln 2)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def compute(self):
        return self.fn(super().compute())


class CharLMModule(Task):
    task = "charlm"

    def __init__(
        self,
        vocab: list[str],
        cell: Literal["rnn", "gru", "lstm", "rnncell", "grucell"],
        emb_dim: PositiveInt,
        hidden_size: PositiveInt,
        n_layers: PositiveInt,
        dropout: Dropout,
        sample_prompt: str,
        sample_length: NonNegativeInt,
        sample_temperature: Temperature,
        emb_dropout: Dropout | None,
        weight_dropout: Dropout,
        tie_weights: bool,
        locked_dropout: bool,
        **common,
    ):
        super().__init__(**common)
        self.vocab = Vocab(vocab)
        if sample_length and not any(c in self.vocab for c in self._cased(sample_prompt)):
            shown = "".join(c for c in vocab if len(c) == 1)[:30]
            raise SeqlabError(
                f"model.sample_prompt={sample_prompt!r} has no character of this text's vocabulary "
                f"({shown!r}…), so the TensorBoard samples cannot start; set model.sample_prompt to "
                f"some of the text, or model.sample_length=0"
            )
        for key, on, off in (("weight_dropout", weight_dropout, 0), ("locked_dropout", locked_dropout, "false")):
            if on and cell not in FUSED:
                raise SeqlabError(
                    f"model.{key} is for the fused cells, and model.cell={cell} is the unrolled loop; use "
                    f"model.cell={cell.removesuffix('cell')} or model.{key}={off}"
                )
        self.model = CharRNN(
            len(vocab),
            cell,
            emb_dim,
            hidden_size,
            n_layers,
            dropout,
            emb_dropout,
            weight_dropout,
            tie_weights,
            locked_dropout,
        )
        # Token-weighted means over a whole pass (nats/char), and what they mean in other units.
        self.init_metrics({"loss": MeanMetric(), "ppl": Transformed(torch.exp), "bpc": Transformed(nats_to_bits)})

    def _cased(self, text: str) -> str:
        """A lower-cased corpus reads prompts lower-cased."""
        return text if any(c.isupper() for c in self.vocab.itos if len(c) == 1) else text.lower()

    def _loss(self, batch, stage: str):
        x, y = batch
        logp, h = self.model(x, self.carried_state(stage, x.size(0)))
        self.carry_state(stage, h, x.size(0))
        return F.nll_loss(logp.reshape(-1, logp.size(-1)), y.reshape(-1))

    def training_loss(self, batch):
        return self._loss(batch, "train")

    def evaluate(self, batch, batch_idx, stage):
        self.metrics[stage].update(self._loss(batch, stage), batch[1].numel())

    def respond(
        self,
        prompt: str,
        *,
        length: Annotated[int, Field(ge=0, le=MAX_LENGTH)] = 200,
        temperature: Temperature = 0.8,
        seed: SampleSeed | None = None,
    ) -> str:
        """The prompt's continuation: `length` characters sampled with `temperature` (0 = greedy)."""
        if not prompt:
            raise SeqlabError("the prompt is empty; pass e.g. prompt='the '")
        cased = self._cased(prompt)
        ids = self.vocab.encode(cased)
        if (ids == self.vocab.unk_index).all():
            raise SeqlabError(
                f"no character of the prompt {prompt!r} is in this model's vocabulary "
                f"({''.join(c for c in self.vocab.itos if len(c) == 1)[:60]!r}…); use some of those"
            )
        if unknown := "".join(dict.fromkeys(c for c in cased if c not in self.vocab)):
            warnings.warn(f"this model's vocabulary has no {unknown!r}: read as unknown", SeqlabWarning, stacklevel=2)
        out = generate(
            self.model, ids.to(self.device), length, temperature, make_generator(seed), suppress=self.vocab.unk_index
        )
        return self.vocab.decode(out)

    def log_examples(self, writer) -> None:
        hp = self.hparams
        text = self.respond(
            hp.sample_prompt, length=hp.sample_length, temperature=hp.sample_temperature, seed=self.current_epoch
        )
        writer.add_text("samples/text", "    " + (hp.sample_prompt + text).replace("\n", "\n    "), self.global_step)
