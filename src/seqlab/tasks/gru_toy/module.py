"""The explicit-matrix GRU learns "MathMathMath…" (the GRU tutorial).

As in the tutorial, the hidden state is carried from one batch to the next within an epoch and
starts at zero at each epoch (and each validation/test pass); it is detached between batches
(truncated backprop through time). Loss: log-softmax + NLL. Metrics: `loss`, `char_acc`
(teacher-forced next-character accuracy over the text) and `continuation_ok`: 1.0 when greedily
continuing `check_prompt`, feeding each character back in, gives `check_expect`.
"""

from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from seqlab.errors import SeqlabError
from seqlab.module import Task, attached_trainer, evaluating
from seqlab.sampling import make_generator
from seqlab.tasks.gru_toy.figures import reading_figure
from seqlab.tasks.gru_toy.model import MatrixGRU, generate
from seqlab.types import PositiveInt, SampleSeed, Temperature


class GRUToyModule(Task):
    task = "gru_toy"

    def __init__(
        self,
        vocab: list[str],
        hidden_size: PositiveInt,
        init: Literal["randn", "uniform"],
        check_prompt: str,
        check_expect: str,
        **common,
    ):
        super().__init__(**common)
        if (
            not check_prompt
            or not check_expect.startswith(check_prompt)
            or len(check_expect) <= len(check_prompt)
            or any(c not in vocab for c in check_expect)
        ):
            raise SeqlabError(
                f"model.check_expect={check_expect!r} must start with model.check_prompt={check_prompt!r}, "
                f"go on, and use only the characters {' '.join(vocab)}; e.g. check_prompt=Ma check_expect=MathMathMath"
            )
        self.vocab = list(vocab)
        self.model = MatrixGRU(len(vocab), hidden_size, init)
        self.init_metrics(
            {
                "loss": MeanMetric(),
                "char_acc": MulticlassAccuracy(len(vocab), average="micro"),
                "continuation_ok": MeanMetric(),
            }
        )

    def _logits(self, batch, stage: str):
        x, _ = batch
        logits, hs = self.model(x, self.carried_state(stage, x.size(0)))
        self.carry_state(stage, hs[:, -1], x.size(0))
        return logits

    def training_loss(self, batch):
        return F.cross_entropy(self._logits(batch, "train").flatten(0, 1), batch[1].flatten())

    def evaluate(self, batch, batch_idx, stage):
        logits, y = self._logits(batch, stage), batch[1]
        metrics = self.metrics[stage]
        metrics["loss"].update(F.cross_entropy(logits.flatten(0, 1), y.flatten()), y.numel())
        metrics["char_acc"].update(logits.argmax(-1), y)
        if batch_idx == 0:
            metrics["continuation_ok"].update(float(self.continuation() == self.hparams.check_expect))

    def continuation(self) -> str:
        hp = self.hparams
        with evaluating(self):
            return self.respond(hp.check_prompt, length=len(hp.check_expect) - len(hp.check_prompt), temperature=0.0)

    def respond(
        self,
        prompt: str,
        *,
        length: Annotated[int, Field(ge=0, le=10_000)] = 10,
        temperature: Temperature = 0.8,
        seed: SampleSeed | None = None,
    ) -> str:
        """The prompt and `length` characters after it (as the tutorial prints them: "Ma" ->
        "MathMathMath"), each sampled with `temperature` (0 = greedy) and fed back in, from a
        zero hidden state."""
        if not prompt or any(c not in self.vocab for c in prompt):
            raise SeqlabError(
                f"the prompt {prompt!r} must be one or more of the characters {' '.join(self.vocab)}; "
                "pass e.g. prompt=Ma"
            )
        ids = torch.tensor([self.vocab.index(c) for c in prompt], device=self.device)
        return prompt + "".join(
            self.vocab[i] for i in generate(self.model, ids, length, temperature, make_generator(seed))
        )

    def log_examples(self, writer) -> None:
        text = self.trainer.datamodule.hparams.text if attached_trainer(self) and self.trainer.datamodule else None
        if text:
            writer.add_figure(
                "examples/gru_toy",
                reading_figure(self.model, self.vocab, text, self.device),
                self.global_step,
                close=True,
            )
        writer.add_text("samples/greedy", f"`{self.hparams.check_prompt}` → `{self.continuation()}`", self.global_step)
