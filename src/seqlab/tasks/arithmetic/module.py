"""Tao learns arithmetic: trained with teacher forcing on the sensei's targets, evaluated by
answering held-out questions with its own characters fed back.

Metrics: `loss` (teacher-forced NLL per target character), `exact_acc` (answers right to the
last character, closing END included) and `char_acc` (answer characters, closing END
included, right at their position) of answers the net generates greedily.
"""

import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric

from seqlab.errors import SeqlabError
from seqlab.module import SeqlabModule
from seqlab.sampling import check_temperature, make_generator
from seqlab.tasks.arithmetic.data import END, FORMAT_HINT, IGNORE, parse_question
from seqlab.tasks.arithmetic.model import UPDATES, TaoRNN, answer

STAGES = ("val", "test")


def shown(ch: str) -> str:
    # the seed prints its \x00 as "_" (and matplotlib's default font has no ␀ glyph)
    return "_" if ch == END else ch


class ArithmeticModule(SeqlabModule):
    task = "arithmetic"

    def __init__(
        self,
        alphabet: list[str],
        max_answer_len: int,
        activation: str = "tanh",
        hidden_size: int = 256,
        lr: float = 2e-4,
        betas: list[float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        scheduler: str = "none",
        plateau_factor: float = 0.5,
        plateau_patience: int = 2,
        lr_milestones: list[int] = (10,),
        lr_gamma: float = 0.1,
        monitor: str = "val/exact_acc",
        monitor_mode: str = "max",
    ):
        super().__init__()
        if activation not in UPDATES:
            raise SeqlabError(f"model.activation={activation!r} is not one of {', '.join(UPDATES)}")
        if not isinstance(hidden_size, int) or hidden_size < 1:
            raise SeqlabError(f"model.hidden_size must be a positive integer, got {hidden_size!r}")
        self.save_hyperparameters()
        self.alphabet = list(alphabet)
        self.stoi = {c: i for i, c in enumerate(self.alphabet)}
        self.end = self.stoi[END]
        self.model = TaoRNN(len(alphabet), hidden_size, activation)
        self.metrics = torch.nn.ModuleDict({
            f"{s}_{m}": MeanMetric() for s in STAGES for m in ("loss", "exact", "char")
        })
        self._examples = None  # the first few validation questions, for log_examples

    def forward(self, x, h=None):
        return self.model(x, h)

    def _loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.nll_loss(F.log_softmax(logits, -1).flatten(0, 1), y.flatten(), ignore_index=IGNORE)

    def training_step(self, batch, batch_idx):
        x, y, _ = batch
        logits, _ = self.model(x)
        loss = self._loss(logits, y)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=x.size(0))
        return loss

    def _evaluate(self, batch, stage: str):
        x, y, q_len = batch
        logits, _ = self.model(x)
        n_targets = (y != IGNORE).sum()
        self.metrics[f"{stage}_loss"].update(self._loss(logits, y), n_targets)
        steps = self.hparams.max_answer_len + 1
        got, _ = answer(self.model, x, q_len, steps, end=self.end)
        # expected: the target from the "?" on, i.e. the answer and its closing END
        j = torch.arange(steps, device=x.device)
        pos = (q_len - 1)[:, None] + j
        expected = y.gather(1, pos.clamp(max=y.size(1) - 1))
        answer_len = (y != IGNORE).sum(1) - q_len  # the input is question + answer
        mask = j <= answer_len[:, None]
        right = (got == expected) & mask
        self.metrics[f"{stage}_exact"].update((right | ~mask).all(1).float())
        self.metrics[f"{stage}_char"].update(right.sum() / mask.sum(), mask.sum())
        return got

    def validation_step(self, batch, batch_idx):
        got = self._evaluate(batch, "val")
        if batch_idx == 0:
            x, y, q_len = batch
            self._examples = (x[:8].cpu(), q_len[:8].cpu(), y[:8].cpu(), got[:8].cpu())

    def test_step(self, batch, batch_idx):
        self._evaluate(batch, "test")

    def _log_epoch(self, stage: str):
        values = {}
        for m, name in (("loss", "loss"), ("exact", "exact_acc"), ("char", "char_acc")):
            values[f"{stage}/{name}"] = self.metrics[f"{stage}_{m}"].compute()
            self.metrics[f"{stage}_{m}"].reset()
        self.log_dict(values, prog_bar=stage == "val")

    def on_validation_epoch_end(self):
        self._log_epoch("val")

    def on_test_epoch_end(self):
        self._log_epoch("test")

    # ---- inference ---------------------------------------------------------------
    def encode_question(self, prompt: str) -> torch.Tensor:
        if not isinstance(prompt, str):
            prompt = str(prompt)
        parse_question(prompt)  # one line naming the format if it is not a question
        prompt = prompt.strip()
        missing = sorted({c for c in prompt if c not in self.stoi})
        if missing:
            raise SeqlabError(f"this model's alphabet has no {''.join(missing)!r}; ask {FORMAT_HINT}")
        return torch.tensor([[self.stoi[c] for c in prompt]], device=self.device)

    def respond(self, prompt: str, temperature: float = 0.0, seed: int | None = None, max_len: int = 25) -> str:
        """The net's answer to a question like `12+7=?`, each character sampled with
        `temperature` (0 = greedy) and fed back in, up to its closing END or `max_len`."""
        temperature = check_temperature(temperature)
        if max_len is None or int(max_len) < 1:
            raise SeqlabError(f"max_len must be >= 1, got {max_len}; pass e.g. max_len=25")
        x = self.encode_question(prompt)
        was_training = self.model.training
        self.model.eval()
        ids, _ = answer(self.model, x, torch.tensor([x.size(1)], device=self.device), int(max_len), temperature,
                        make_generator(seed), end=self.end)
        self.model.train(was_training)
        chars = [self.alphabet[i] for i in ids[0].tolist()]
        return "".join(chars[: chars.index(END)] if END in chars else chars)

    # ---- TensorBoard -------------------------------------------------------------
    def log_examples(self, writer) -> None:
        if self._examples is None:
            return
        x, q_len, y, got = self._examples
        decode = lambda ids: "".join(self.alphabet[i] for i in ids if i != self.end)  # noqa: E731
        rows = ["| question | Tao | sensei |", "|---|---|---|"]
        for i in range(x.size(0)):
            expected = [int(t) for t in y[i, q_len[i] - 1:] if t != IGNORE]
            rows.append(f"| `{decode(x[i, :q_len[i]].tolist())}` | `{decode(got[i].tolist()) or '␀'}` "
                        f"| `{decode(expected)}` |")
        writer.add_text("examples/answers", "\n".join(rows), self.global_step)
        writer.add_figure("examples/tao", self.figure(x[0, : q_len[0]].tolist()), self.global_step, close=True)

    @torch.no_grad()
    def figure(self, question: list[int]):
        """The seed's three pictures for one question answered by the net: the one-hot input
        (the question, then its own answer fed back), the raw outputs, and their softmax."""
        from matplotlib.figure import Figure

        was_training = self.model.training
        self.model.eval()
        q = torch.tensor([question], device=self.device)
        got, _ = answer(self.model, q, torch.tensor([len(question)], device=self.device),
                        self.hparams.max_answer_len + 1, end=self.end)
        said = got[0].tolist()
        said = said[: said.index(self.end)] if self.end in said else said
        inp = torch.tensor([question + said], device=self.device)
        logits, _ = self.model(inp)
        self.model.train(was_training)
        one_hot = F.one_hot(inp[0], len(self.alphabet)).float()
        pictures = (("Input", one_hot), ("Output", logits[0]), ("Softmax output", logits[0].softmax(-1)))
        labels = [shown(self.alphabet[i]) for i in inp[0].tolist()]
        fig = Figure(figsize=(12, 3 + 0.25 * len(labels)))
        for k, (title, m) in enumerate(pictures):
            ax = fig.add_subplot(1, 3, k + 1)
            ax.imshow(m.float().cpu().numpy(), cmap="Greys_r", interpolation="none", aspect="auto")
            ax.set_title(title)
            ax.set_yticks(range(len(labels)), labels)
            if len(self.alphabet) <= 32:
                ax.set_xticks(range(len(self.alphabet)), [shown(c) for c in self.alphabet], fontsize=7)
            ax.set_xlabel("character")
        fig.suptitle(f"{''.join(labels[: len(question)])}  →  {''.join(labels[len(question):]) or '(nothing)'}")
        fig.tight_layout()
        return fig
