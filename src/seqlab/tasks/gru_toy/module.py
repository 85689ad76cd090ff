"""The explicit-matrix GRU learns "MathMathMath…" (seed 001).

As in the seed, the hidden state is carried from one batch to the next within an epoch and
starts at zero at each epoch (and each validation/test pass). It is detached between batches
(truncated backprop through time): the seed's `backward(retain_graph=True)` reached back into
earlier batches, whose weights the optimizer had already changed. Loss: log-softmax + NLL (the
seed took the log of a softmax). Metrics: `loss`, `char_acc` (teacher-forced next-character
accuracy over the text) and `continuation_ok`: 1.0 when greedily continuing `check_prompt`,
feeding each character back in, gives `check_expect` ("Ma" -> "MathMathMath").
"""

import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric

from seqlab.errors import SeqlabError
from seqlab.module import SeqlabModule
from seqlab.sampling import check_temperature, make_generator
from seqlab.tasks.gru_toy.model import INITS, MatrixGRU, generate

OPTIMIZERS = ("sgd", "adam")
STAGES = ("val", "test")


class GRUToyModule(SeqlabModule):
    task = "gru_toy"

    def __init__(
        self,
        vocab: list[str],
        hidden_size: int = 2,
        init: str = "randn",
        optimizer: str = "sgd",
        lr: float = 0.01,
        momentum: float = 0.0,
        betas: list[float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        scheduler: str = "none",
        plateau_factor: float = 0.5,
        plateau_patience: int = 5,
        lr_milestones: list[int] = (100,),
        lr_gamma: float = 0.1,
        monitor: str = "val/loss",
        monitor_mode: str = "min",
        check_prompt: str = "Ma",
        check_expect: str = "MathMathMath",
    ):
        super().__init__()
        if init not in INITS:
            raise SeqlabError(f"model.init={init!r} is not one of {', '.join(INITS)}")
        if optimizer not in OPTIMIZERS:
            raise SeqlabError(f"model.optimizer={optimizer!r} is not one of {', '.join(OPTIMIZERS)}")
        if not isinstance(hidden_size, int) or hidden_size < 1:
            raise SeqlabError(f"model.hidden_size must be a positive integer, got {hidden_size!r}")
        if not check_prompt or not str(check_expect).startswith(check_prompt) or len(check_expect) <= len(check_prompt):
            raise SeqlabError(f"model.check_expect={check_expect!r} must start with model.check_prompt={check_prompt!r} "
                              "and go on; e.g. check_prompt=Ma check_expect=MathMathMath")
        self.save_hyperparameters()
        self.vocab = list(vocab)
        for ch in check_expect:
            if ch not in self.vocab:
                raise SeqlabError(f"model.check_expect has {ch!r}, which is not in the vocabulary {self.vocab}")
        self.model = MatrixGRU(len(self.vocab), hidden_size, init)
        self.hidden = {}  # stage -> carried hidden state
        self.metrics = torch.nn.ModuleDict({f"{s}_{m}": MeanMetric() for s in STAGES for m in ("loss", "acc")})

    def configure_optimizers(self):
        # The seed trains with plain SGD; Adam (and its schedulers) come from the base class.
        hp = self.hparams
        if hp.optimizer == "adam":
            return super().configure_optimizers()
        if hp.scheduler != "none":
            raise SeqlabError("model.scheduler must be none with model.optimizer=sgd; pass model.scheduler=none or model.optimizer=adam")
        return torch.optim.SGD(self.parameters(), lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay)

    def forward(self, x, h=None):
        return self.model(x, h)

    def _step(self, batch, stage: str):
        x, y = batch
        h = self.hidden.get(stage)
        if h is not None and h.size(0) != x.size(0):
            h = None
        logits, hs = self.model(x, h)
        self.hidden[stage] = hs[:, -1].detach()
        loss = F.nll_loss(F.log_softmax(logits, -1).flatten(0, 1), y.flatten())
        return loss, logits, y

    def on_train_epoch_start(self):
        self.hidden.pop("train", None)

    def on_validation_epoch_start(self):
        self.hidden.pop("val", None)

    def on_test_epoch_start(self):
        self.hidden.pop("test", None)

    def training_step(self, batch, batch_idx):
        loss, _, _ = self._step(batch, "train")
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=batch[0].size(0))
        return loss

    def _evaluate(self, batch, stage: str):
        loss, logits, y = self._step(batch, stage)
        self.metrics[f"{stage}_loss"].update(loss, y.numel())
        self.metrics[f"{stage}_acc"].update((logits.argmax(-1) == y).float())

    def validation_step(self, batch, batch_idx):
        self._evaluate(batch, "val")

    def test_step(self, batch, batch_idx):
        self._evaluate(batch, "test")

    def continuation_ok(self) -> bool:
        hp = self.hparams
        return self.respond(hp.check_prompt, len(hp.check_expect) - len(hp.check_prompt), 0.0) == hp.check_expect

    def _log_epoch(self, stage: str):
        values = {f"{stage}/loss": self.metrics[f"{stage}_loss"].compute(),
                  f"{stage}/char_acc": self.metrics[f"{stage}_acc"].compute(),
                  f"{stage}/continuation_ok": float(self.continuation_ok())}
        for m in ("loss", "acc"):
            self.metrics[f"{stage}_{m}"].reset()
        self.log_dict(values, prog_bar=stage == "val")

    def on_validation_epoch_end(self):
        self._log_epoch("val")

    def on_test_epoch_end(self):
        self._log_epoch("test")

    # ---- inference ---------------------------------------------------------------
    def respond(self, prompt: str, length: int = 10, temperature: float = 0.8, seed: int | None = None) -> str:
        """The prompt and `length` characters after it (as the seed's `sample` prints them: "Ma" ->
        "MathMathMath"), each sampled with `temperature` (0 = greedy) and fed back in, starting
        from a zero hidden state as the seed's sampler does."""
        temperature = check_temperature(temperature)
        if length is None or int(length) < 0:
            raise SeqlabError(f"length must be >= 0, got {length}; pass e.g. length=10")
        prompt = "" if prompt is None else str(prompt)
        if not prompt or any(c not in self.vocab for c in prompt):
            raise SeqlabError(f"the prompt {prompt!r} must be one or more of the characters {' '.join(self.vocab)}; "
                              "pass e.g. prompt=Ma")
        ids = torch.tensor([self.vocab.index(c) for c in prompt], device=self.device)
        was_training = self.model.training
        self.model.eval()
        out = generate(self.model, ids, int(length), temperature, make_generator(seed))
        self.model.train(was_training)
        return prompt + "".join(self.vocab[i] for i in out)

    # ---- TensorBoard -------------------------------------------------------------
    def log_examples(self, writer) -> None:
        text = self._text()
        if text:
            writer.add_figure("examples/gru_toy", self.figure(text), self.global_step, close=True)
        hp = self.hparams
        greedy = self.respond(hp.check_prompt, len(hp.check_expect) - len(hp.check_prompt), 0.0)
        writer.add_text("samples/greedy", f"`{hp.check_prompt}` → `{greedy}`", self.global_step)

    def _text(self) -> str:
        dm = self.trainer.datamodule if self._trainer is not None else None
        return dm.hparams.get("text", "") if dm is not None else ""

    @torch.no_grad()
    def figure(self, text: str):
        """Reading `text` from a zero state: the hidden state after each character (as a heat
        map, and as a path through the first two units) and the predicted next-character
        probabilities (the true next character circled)."""
        from matplotlib.figure import Figure

        ids = torch.tensor([[self.vocab.index(c) for c in text]], device=self.device)
        logits, hs = self.model(ids)
        hs, probs = hs[0].float().cpu().numpy(), logits[0].softmax(-1).float().cpu().numpy()
        fig = Figure(figsize=(14, 4.5))
        ax = fig.add_subplot(1, 3, 1)
        im = ax.imshow(hs.T, cmap="coolwarm", vmin=-1, vmax=1, aspect="auto", interpolation="none")
        ax.set_title("hidden state after each character")
        ax.set_xticks(range(len(text)), list(text))
        ax.set_ylabel("unit")
        fig.colorbar(im, ax=ax, fraction=0.04)
        ax = fig.add_subplot(1, 3, 2)
        if hs.shape[1] >= 2:
            ax.plot(hs[:, 0], hs[:, 1], "-", color="0.7", zorder=1)
            ax.scatter(hs[:, 0], hs[:, 1], c=range(len(text)), cmap="viridis", zorder=2)
            for t, ch in enumerate(text):
                ax.annotate(ch, (hs[t, 0], hs[t, 1]), textcoords="offset points", xytext=(4, 4))
            ax.set_xlabel("h[0]")
            ax.set_ylabel("h[1]")
        else:
            ax.plot(hs[:, 0], "o-")
            ax.set_xticks(range(len(text)), list(text))
        ax.set_title("hidden-state trajectory")
        ax = fig.add_subplot(1, 3, 3)
        ax.imshow(probs.T, cmap="Greys", vmin=0, vmax=1, aspect="auto", interpolation="none")
        nxt = [self.vocab.index(c) for c in text[1:]]
        ax.scatter(range(len(nxt)), nxt, s=60, facecolors="none", edgecolors="tab:red")
        ax.set_title("P(next character)")
        ax.set_xticks(range(len(text)), list(text))
        ax.set_yticks(range(len(self.vocab)), self.vocab)
        fig.tight_layout()
        return fig
