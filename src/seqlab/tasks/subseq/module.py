"""Subsequence seq2seq: learn X = (idx, len, x0 … x7) -> Y = x[idx:idx+len] + zeros.

Training uses teacher forcing with a ratio (optionally moving linearly to another ratio over
the epochs); validation, test and prediction decode greedily without looking at the target.
"""

import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassExactMatch

from seqlab.module import Task, attached_trainer
from seqlab.tasks.subseq.data import FORMAT, parse_prompt
from seqlab.tasks.subseq.model import Seq2Seq
from seqlab.types import Dropout, NonNegativeFloat, PositiveInt, Probability


class SubseqModule(Task):
    task = "subseq"

    def __init__(
        self,
        seq_len: int,
        max_start: int,
        min_len: int,
        digit_low: int,
        digit_high: int,
        emb_dim: PositiveInt,
        hidden_size: PositiveInt,
        n_layers: PositiveInt,
        dropout: Dropout,
        init_range: NonNegativeFloat,
        teacher_forcing: Probability,
        teacher_forcing_end: Probability | None,
        n_examples: PositiveInt,
        **common,
    ):
        super().__init__(**common)
        out_vocab = digit_high + 1  # 0 (padding / start token) and the digits
        in_vocab = max(max_start, seq_len - 2, digit_high) + 1  # idx, len and digits share one vocabulary
        self.model = Seq2Seq(in_vocab, out_vocab, seq_len - 2, emb_dim, hidden_size, n_layers, dropout, init_range)
        self.init_metrics(
            {
                "loss": MeanMetric(),
                "token_acc": MulticlassAccuracy(out_vocab, average="micro"),
                "exact_acc": MulticlassExactMatch(out_vocab),
            }
        )
        self._examples = None  # (x, prediction, target) of the first validation batch, for log_examples

    def teacher_forcing_ratio(self) -> float:
        """This epoch's ratio: `teacher_forcing`, or moving linearly to `teacher_forcing_end`
        over the run's epochs."""
        start, end = self.hparams.teacher_forcing, self.hparams.teacher_forcing_end
        if end is None or attached_trainer(self) is None or not self.trainer.max_epochs or self.trainer.max_epochs < 2:
            return start
        return start + (end - start) * min(1.0, self.current_epoch / (self.trainer.max_epochs - 1))

    def on_train_epoch_start(self):
        super().on_train_epoch_start()
        self.log("train/teacher_forcing", self.teacher_forcing_ratio(), on_step=False, on_epoch=True)

    def training_loss(self, batch):
        x, y = batch
        # One coin per decoder step for the whole batch, as in the tutorial; drawn on the CPU (no device sync).
        force = (torch.rand(self.model.out_len - 1) < self.teacher_forcing_ratio()).tolist()
        logits = self.model(x, y, force)
        return F.cross_entropy(logits.flatten(0, 1), y.flatten())

    def evaluate(self, batch, batch_idx, stage):
        x, y = batch
        logits = self.model(x)  # greedy: the target is not looked at
        pred = logits.argmax(-1)
        metrics = self.metrics[stage]
        metrics["loss"].update(F.cross_entropy(logits.flatten(0, 1), y.flatten()), y.size(0))
        metrics["token_acc"].update(pred, y)
        metrics["exact_acc"].update(pred, y)
        if stage == "val" and batch_idx == 0:
            self._examples = (x[:64], pred[:64], y[:64])
        return pred

    def respond(self, prompt: str) -> str:
        """The predicted output sequence (greedy), as space-separated digits."""
        x = parse_prompt(prompt, {k: self.hparams[k] for k in FORMAT})
        return " ".join(str(t) for t in self.model.predict(x.to(self.device))[0].tolist())

    def log_examples(self, writer) -> None:
        """A markdown table of validation examples, the wrong ones first."""
        if self._examples is None:
            return
        x, pred, y = (t.cpu() for t in self._examples)
        wrong = (pred != y).any(1)
        order = torch.cat([wrong.nonzero().flatten(), (~wrong).nonzero().flatten()])[: self.hparams.n_examples]
        rows = ["| input (idx len x…) | prediction | target | |", "|---|---|---|---|"]
        for i in order.tolist():
            seq = [" ".join(map(str, t[i].tolist())) for t in (x, pred, y)]
            rows.append(f"| `{seq[0]}` | `{seq[1]}` | `{seq[2]}` | {'✗' if wrong[i] else '✓'} |")
        writer.add_text("examples/val", "\n".join(rows), self.global_step)
