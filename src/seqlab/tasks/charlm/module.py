"""Stateful character LM trained with truncated backprop through time.

Lightning 2 has no built-in truncated BPTT, so the module does it: batches arrive in
stream order (see data.py), and the hidden state of one batch, detached, is the start
state of the next. It is reset at the start of each epoch and for validation/test, and
re-made when a batch has another number of streams. Automatic optimization stays on, so
the Trainer's gradient clipping, accumulation and schedulers work as usual.
"""

import math

import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric

from seqlab.errors import SeqlabError
from seqlab.module import SeqlabModule
from seqlab.sampling import check_temperature, make_generator
from seqlab.tasks.charlm.model import CELLS, CharRNN, detach_hidden, generate, hidden_batch_size
from seqlab.vocab import Vocab

LN2 = math.log(2.0)


class CharLMModule(SeqlabModule):
    task = "charlm"

    def __init__(
        self,
        vocab: list[str],
        cell: str = "gru",
        n_fac: int = 42,
        n_hidden: int = 256,
        n_layers: int = 1,
        dropout: float = 0.0,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        scheduler: str = "plateau",
        plateau_factor: float = 0.5,
        plateau_patience: int = 1,
        lr_milestones: list[int] = (4,),
        lr_gamma: float = 0.1,
        monitor: str = "val/loss",
        monitor_mode: str = "min",
        sample_prompt: str = "the ",
        sample_length: int = 200,
        sample_temperature: float = 0.8,
    ):
        super().__init__()
        if cell not in CELLS:
            raise SeqlabError(f"model.cell={cell!r} is not one of {', '.join(CELLS)}")
        self.save_hyperparameters()
        self.vocab = Vocab(vocab)
        self.model = CharRNN(len(vocab), cell, n_fac, n_hidden, n_layers, dropout)
        self.hidden = {}  # stage -> carried hidden state
        self.loss_mean = torch.nn.ModuleDict({s: MeanMetric() for s in ("val", "test")})

    def forward(self, x, hidden=None):
        return self.model(x, hidden)

    def _step(self, batch, stage: str):
        x, y = batch
        h = self.hidden.get(stage)
        if h is not None and hidden_batch_size(h) != x.size(0):
            h = None  # another number of streams (e.g. a smaller last batch): start afresh
        logp, h = self.model(x, h)
        self.hidden[stage] = detach_hidden(h)
        loss = F.nll_loss(logp.reshape(-1, logp.size(-1)), y.reshape(-1))
        return loss, y.numel()

    # Each epoch and each evaluation pass starts from a zero state.
    def on_train_epoch_start(self):
        self.hidden.pop("train", None)

    def on_validation_epoch_start(self):
        self.hidden.pop("val", None)

    def on_test_epoch_start(self):
        self.hidden.pop("test", None)

    # A checkpoint written mid-epoch (callbacks.step_checkpoint) carries the hidden state, so
    # that a resumed run goes on from it with the next window (see data.ResumableLoader).
    def train_state(self) -> dict:
        done = self.trainer.fit_loop.epoch_loop.batch_progress.current.processed
        if "train" in self.hidden and 0 < done < self.trainer.num_training_batches:
            return {"hidden": self.hidden["train"]}
        return {}

    def load_train_state(self, state: dict) -> None:
        if "hidden" in state:
            h = state["hidden"]
            self.hidden["train"] = tuple(t.to(self.device) for t in h) if isinstance(h, (tuple, list)) else h.to(self.device)

    def training_step(self, batch, batch_idx):
        loss, _ = self._step(batch, "train")
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        loss, n = self._step(batch, "val")
        self.loss_mean["val"].update(loss, n)

    def test_step(self, batch, batch_idx):
        loss, n = self._step(batch, "test")
        self.loss_mean["test"].update(loss, n)

    def _log_epoch(self, stage: str):
        # Token-weighted mean NLL over the whole pass (nats/char), then the derived metrics.
        loss = self.loss_mean[stage].compute()
        self.loss_mean[stage].reset()
        self.log_dict(
            {f"{stage}/loss": loss, f"{stage}/ppl": loss.exp(), f"{stage}/bpc": loss / LN2},
            prog_bar=stage == "val",
        )

    def on_validation_epoch_end(self):
        self._log_epoch("val")

    def on_test_epoch_end(self):
        self._log_epoch("test")

    # ---- inference ---------------------------------------------------------------
    def respond(self, prompt: str, length: int = 200, temperature: float = 0.8, seed: int | None = None) -> str:
        """The prompt's continuation: `length` characters sampled with `temperature` (0 = greedy)."""
        temperature = check_temperature(temperature)
        if length is None or int(length) < 0:
            raise SeqlabError(f"length must be >= 0, got {length}; pass e.g. length=200")
        if not prompt:
            raise SeqlabError("the prompt is empty; pass e.g. prompt='the '")
        text = prompt.lower() if self.trainer_lower() else prompt
        ids = self.vocab.encode(text).to(self.device)  # characters outside the vocabulary become <unk>
        out = generate(self.model, ids, int(length), temperature, make_generator(seed), suppress=self.vocab.unk_index)
        self.model.train(self.training)
        return self.vocab.decode(out)

    def trainer_lower(self) -> bool:
        # The vocabulary of a lower-cased corpus has no upper-case letters: lower-case prompts too.
        return not any(c.isupper() for c in self.vocab.itos if len(c) == 1)

    def log_examples(self, writer) -> None:
        hp = self.hparams
        text = self.respond(hp.sample_prompt, hp.sample_length, hp.sample_temperature, seed=self.current_epoch)
        writer.add_text("samples/text", "    " + (hp.sample_prompt + text).replace("\n", "\n    "), self.global_step)
