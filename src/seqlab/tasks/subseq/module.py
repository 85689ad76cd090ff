"""Subsequence seq2seq: learn X = (idx, len, x0 … x7) -> Y = x[idx:idx+len] + zeros.

Training uses teacher forcing with a ratio (optionally moving linearly to another ratio over
the epochs); validation, test and prediction decode greedily without looking at the target.
"""

import re

import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassExactMatch

from seqlab.errors import SeqlabError
from seqlab.module import SeqlabModule
from seqlab.tasks.subseq.model import Seq2Seq


class SubseqModule(SeqlabModule):
    task = "subseq"

    def __init__(
        self,
        # the example format (from the data module)
        seq_len: int = 10,
        max_start: int = 5,
        min_len: int = 2,
        digit_low: int = 1,
        digit_high: int = 9,
        # model
        emb_dim: int = 128,
        hidden: int = 256,
        n_layers: int = 3,
        dropout: float = 0.5,
        init_range: float = 0.08,
        # training
        teacher_forcing: float = 0.5,
        teacher_forcing_end: float | None = None,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        scheduler: str = "none",
        plateau_factor: float = 0.5,
        plateau_patience: int = 1,
        lr_milestones: list[int] = (8,),
        lr_gamma: float = 0.1,
        monitor: str = "val/exact_acc",
        monitor_mode: str = "max",
        n_examples: int = 8,
    ):
        super().__init__()
        for name, value in (("teacher_forcing", teacher_forcing), ("teacher_forcing_end", teacher_forcing_end)):
            if value is not None and not 0 <= value <= 1:
                raise SeqlabError(f"model.{name} must be a probability in [0, 1], got {value}; pass e.g. model.{name}=0.5")
        self.save_hyperparameters()
        self.out_vocab = digit_high + 1  # 0 (padding / start token) and the digits
        in_vocab = max(max_start, seq_len - 2, digit_high) + 1  # idx, len and digits share one vocabulary
        self.model = Seq2Seq(in_vocab, self.out_vocab, seq_len - 2, emb_dim, hidden, n_layers, dropout, init_range)
        stages = ("val", "test")
        self.loss_mean = torch.nn.ModuleDict({s: MeanMetric() for s in stages})
        self.token_acc = torch.nn.ModuleDict({s: MulticlassAccuracy(self.out_vocab, average="micro") for s in stages})
        self.exact_acc = torch.nn.ModuleDict({s: MulticlassExactMatch(self.out_vocab) for s in stages})
        self._examples = None  # (x, prediction, target) of the first validation batch, for log_examples

    def forward(self, src, target=None, force=None):
        return self.model(src, target, force)

    def teacher_forcing_ratio(self) -> float:
        """The ratio this epoch: `teacher_forcing`, or moving linearly to `teacher_forcing_end`
        over the run's epochs."""
        start, end = self.hparams.teacher_forcing, self.hparams.teacher_forcing_end
        if end is None or self._trainer is None or not self.trainer.max_epochs or self.trainer.max_epochs < 2:
            return start
        return start + (end - start) * min(1.0, self.current_epoch / (self.trainer.max_epochs - 1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        # One coin per decoder step for the whole batch, as in the seed; drawn on the CPU (no device sync).
        force = (torch.rand(self.model.out_len - 1) < self.teacher_forcing_ratio()).tolist()
        logits = self.model(x, y, force)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True)
        return loss

    def on_train_epoch_start(self):
        self.log("train/teacher_forcing", self.teacher_forcing_ratio(), on_step=False, on_epoch=True)

    def _eval_step(self, batch, stage: str):
        x, y = batch
        logits = self.model(x)  # greedy: the target is not looked at
        pred = logits.argmax(-1)
        self.loss_mean[stage].update(F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1)), y.size(0))
        self.token_acc[stage].update(pred, y)
        self.exact_acc[stage].update(pred, y)
        return pred

    def validation_step(self, batch, batch_idx):
        pred = self._eval_step(batch, "val")
        if batch_idx == 0:
            x, y = batch
            self._examples = (x[:64].detach(), pred[:64].detach(), y[:64].detach())

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, "test")

    def _log_epoch(self, stage: str):
        values = {f"{stage}/loss": self.loss_mean[stage].compute(),
                  f"{stage}/token_acc": self.token_acc[stage].compute(),
                  f"{stage}/exact_acc": self.exact_acc[stage].compute()}
        for m in (self.loss_mean, self.token_acc, self.exact_acc):
            m[stage].reset()
        self.log_dict(values, prog_bar=stage == "val")

    def on_validation_epoch_end(self):
        self._log_epoch("val")

    def on_test_epoch_end(self):
        self._log_epoch("test")

    # ---- inference ---------------------------------------------------------------
    def format_help(self) -> str:
        hp = self.hparams
        body = hp.seq_len - 2
        return (f"{hp.seq_len} numbers 'idx len x0 … x{body - 1}' with idx in 0..{hp.max_start}, "
                f"len in {hp.min_len}..{body}-idx, digits x in {hp.digit_low}..{hp.digit_high}, "
                f"e.g. prompt=\"2 3 1 8 2 5 8 6 4 5\"")

    def parse_prompt(self, prompt) -> torch.Tensor:
        """'2 3 1 8 2 5 8 6 4 5' (or '2,3,1,…' or '2318258645') -> a (1, seq_len) tensor, checked."""
        hp = self.hparams
        text = str(prompt).strip()
        parts = re.split(r"[\s,]+", text) if text else []
        if len(parts) == 1 and len(parts[0]) == hp.seq_len:
            parts = list(parts[0])  # the compact form: one digit per number
        if len(parts) != hp.seq_len or not all(p.isdigit() for p in parts):
            raise SeqlabError(f"prompt {text!r} is not {self.format_help()}")
        idx, length, *digits = (int(p) for p in parts)
        problem = None
        if idx > hp.max_start:
            problem = f"idx={idx} is above {hp.max_start}"
        elif not hp.min_len <= length <= hp.seq_len - 2 - idx:
            problem = f"len={length} is outside {hp.min_len}..{hp.seq_len - 2 - idx} for idx={idx}"
        elif not all(hp.digit_low <= d <= hp.digit_high for d in digits):
            problem = f"a digit is outside {hp.digit_low}..{hp.digit_high}"
        if problem:
            raise SeqlabError(f"prompt {text!r}: {problem}; the prompt is {self.format_help()}")
        return torch.tensor([[idx, length, *digits]])

    def respond(self, prompt: str) -> str:
        """The predicted output sequence (greedy), as space-separated digits."""
        x = self.parse_prompt(prompt).to(self.device)
        was_training = self.training
        self.eval()
        pred = self.model.predict(x)[0]
        self.train(was_training)
        return " ".join(str(int(t)) for t in pred)

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
