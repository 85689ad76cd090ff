"""Tao learns arithmetic: trained with teacher forcing on the sensei's targets, evaluated by
answering held-out questions with its own characters fed back.

Metrics: `loss` (teacher-forced NLL per target character), `exact_acc` (answers right to the
last character, closing END included) and `char_acc` (answer characters, closing END
included, right at their position) of answers the net generates greedily.
"""

import warnings
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torchmetrics import MeanMetric

from seqlab.errors import SeqlabError, SeqlabWarning
from seqlab.module import Task
from seqlab.sampling import make_generator
from seqlab.tasks.arithmetic.data import END, FORMAT_HINT, IGNORE, out_of_range, parse_question
from seqlab.tasks.arithmetic.figures import answer_figure
from seqlab.tasks.arithmetic.model import TaoRNN, answer
from seqlab.types import PositiveInt, SampleSeed, Temperature


class ArithmeticModule(Task):
    task = "arithmetic"

    def __init__(
        self,
        alphabet: list[str],
        max_answer_len: int,
        questions: dict,
        activation: Literal["identity", "tanh", "relu", "gru"],
        hidden_size: PositiveInt,
        n_layers: PositiveInt,
        **common,
    ):
        super().__init__(**common)
        if n_layers > 1 and activation != "gru":
            raise SeqlabError(f"model.n_layers={n_layers} stacks GRU layers: it needs model.activation=gru")
        self.alphabet = list(alphabet)
        self.stoi = {c: i for i, c in enumerate(self.alphabet)}
        self.end = self.stoi[END]
        self.model = TaoRNN(len(alphabet), hidden_size, activation, n_layers)
        self.init_metrics({"loss": MeanMetric(), "exact_acc": MeanMetric(), "char_acc": MeanMetric()})
        self._examples = None  # the first few validation questions, for log_examples

    def _loss(self, logits, y):
        return F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=IGNORE)

    def training_loss(self, batch):
        x, y, _ = batch
        return self._loss(self.model(x)[0], y)

    def evaluate(self, batch, batch_idx, stage):
        x, y, q_len = batch
        metrics = self.metrics[stage]
        metrics["loss"].update(self._loss(self.model(x)[0], y), (y != IGNORE).sum())
        steps = self.hparams.max_answer_len + 1
        got, _ = answer(self.model, x, q_len, steps, end=self.end)
        # expected: the target from the "?" on, i.e. the answer and its closing END
        j = torch.arange(steps, device=x.device)
        expected = y.gather(1, ((q_len - 1)[:, None] + j).clamp(max=y.size(1) - 1))
        mask = j <= ((y != IGNORE).sum(1) - q_len)[:, None]  # the answer's length: input is question + answer
        right = (got == expected) & mask
        metrics["exact_acc"].update((right | ~mask).all(1).float())
        metrics["char_acc"].update(right.sum() / mask.sum(), mask.sum())
        if stage == "val" and batch_idx == 0:
            self._examples = (x[:8].cpu(), q_len[:8].cpu(), y[:8].cpu(), got[:8].cpu())

    def respond(
        self,
        prompt: str,
        *,
        temperature: Temperature = 0.0,
        seed: SampleSeed | None = None,
        max_len: Annotated[int, Field(ge=1, le=1000)] = 25,
    ) -> str:
        """The net's answer to a question like `12+7=?`, each character sampled with
        `temperature` (0 = greedy) and fed back in, up to its closing END or `max_len`."""
        parse_question(prompt)  # one line naming the format if it is not a question
        prompt = prompt.strip()
        missing = sorted({c for c in prompt if c not in self.stoi})
        if missing:
            raise SeqlabError(f"this model's alphabet has no {''.join(missing)!r}; ask {FORMAT_HINT}")
        reason = out_of_range(prompt, self.hparams.questions)
        if reason:  # it will answer, but what it says means little
            warnings.warn(
                f"{prompt} is outside what this model learned ({reason}); its answer is a guess",
                SeqlabWarning,
                stacklevel=2,
            )
        x = torch.tensor([[self.stoi[c] for c in prompt]], device=self.device)
        ids, _ = answer(
            self.model,
            x,
            torch.tensor([x.size(1)], device=self.device),
            max_len,
            temperature,
            make_generator(seed),
            end=self.end,
        )
        chars = [self.alphabet[i] for i in ids[0].tolist()]
        return "".join(chars[: chars.index(END)] if END in chars else chars)

    def log_examples(self, writer) -> None:
        """A table of validation questions, the net's answers and the sensei's; the tutorial's
        three pictures of the first one."""
        if self._examples is None:
            return
        x, q_len, y, got = self._examples
        decode = lambda ids: "".join(self.alphabet[i] for i in ids if i != self.end)  # noqa: E731
        rows = ["| question | Tao | sensei |", "|---|---|---|"]
        for i in range(x.size(0)):
            expected = [int(t) for t in y[i, q_len[i] - 1 :] if t != IGNORE]
            rows.append(
                f"| `{decode(x[i, : q_len[i]].tolist())}` | `{decode(got[i].tolist()) or '␀'}` | `{decode(expected)}` |"
            )
        writer.add_text("examples/answers", "\n".join(rows), self.global_step)
        question = x[0, : q_len[0]].tolist()
        said = [self.stoi[c] for c in self.respond(decode(question))]
        writer.add_figure(
            "examples/tao", answer_figure(self.model, self.alphabet, question, said), self.global_step, close=True
        )
