"""Dialogue Transformer ("chloe"): teacher-forced training, replies by greedy or beam search.

Metrics per stage: loss (cross-entropy over reply tokens, <pad> ignored), token accuracy
(teacher-forced next-token accuracy), exact_acc (the decoded reply, by beam search, equals one
of the replies the data gives for the prompt) and bleu (corpus BLEU-4 of the decoded replies).
"""

import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy
from torchmetrics.text import BLEUScore

from seqlab.decoding import Hypotheses, beam_search, greedy_search
from seqlab.errors import SeqlabError
from seqlab.module import SeqlabModule
from seqlab.tasks.dialogue.data import EOS, PAD, SOS, UNK, detokenize, tokenize
from seqlab.tasks.dialogue.model import DialogueTransformer
from seqlab.vocab import Vocab

STAGES = ("train", "val", "test")
KEY = {"train": "fit", "val": "val", "test": "test"}


class DialogueModule(SeqlabModule):
    task = "dialogue"

    def __init__(
        self,
        src_vocab: list[str],
        tgt_vocab: list[str],
        emb_dim: int = 32,
        n_layers: int = 3,
        heads: int = 8,
        ff_dim: int = 2048,
        dropout: float = 0.01,
        label_smoothing: float = 0.0,
        lr: float = 0.01,
        betas: list[float] = (0.9, 0.98),
        eps: float = 1e-9,
        weight_decay: float = 0.0,
        scheduler: str = "plateau",
        plateau_factor: float = 0.5,
        plateau_patience: int = 5,
        plateau_monitor: str | None = "train/loss",
        plateau_mode: str | None = "min",
        lr_milestones: list[int] = (100,),
        lr_gamma: float = 0.1,
        monitor: str = "val/exact_acc",
        monitor_mode: str = "max",
        beam_width: int = 3,
        max_len: int = 25,
        length_penalty: float = 0.0,
        n_examples: int = 6,
    ):
        super().__init__()
        if emb_dim % heads:
            raise SeqlabError(f"model.emb_dim={emb_dim} must be a multiple of model.heads={heads}")
        self.save_hyperparameters()
        self.src_vocab, self.tgt_vocab = Vocab(src_vocab), Vocab(tgt_vocab)
        if [self.tgt_vocab.itos[i] for i in (UNK, PAD, SOS, EOS)] != ["<unk>", "<pad>", "<sos>", "<eos>"]:
            raise SeqlabError("the reply vocabulary must start with <unk> <pad> <sos> <eos>; build it with the dialogue data module")
        self.model = DialogueTransformer(len(src_vocab), len(tgt_vocab), emb_dim, n_layers, heads, dropout, ff_dim, PAD)
        n_out = len(tgt_vocab)
        # (a ModuleDict key cannot be "train": nn.Module.train exists; hence "fit")
        self.token_acc = torch.nn.ModuleDict(
            {KEY[s]: MulticlassAccuracy(n_out, average="micro", ignore_index=PAD) for s in STAGES})
        self.loss_mean = torch.nn.ModuleDict({s: MeanMetric() for s in ("val", "test")})
        self.exact = torch.nn.ModuleDict({s: MeanMetric() for s in ("val", "test")})
        self.bleu = torch.nn.ModuleDict({s: BLEUScore(n_gram=4) for s in ("val", "test")})
        self._examples = None  # the first validation batch's prompts, for log_examples

    def forward(self, src, tgt):
        return self.model(src, tgt)

    def setup(self, stage: str) -> None:
        # Evaluating a checkpoint on other data: encode it with this model's vocabularies.
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if dm is not None and hasattr(dm, "use_vocabs"):
            dm.use_vocabs(self.src_vocab.itos, self.tgt_vocab.itos)

    # ---- training and evaluation -------------------------------------------------------------
    def _teacher_forced(self, batch, stage: str):
        tgt_in, tgt_out = batch["tgt"][:, :-1], batch["tgt"][:, 1:]
        logits = self.model(batch["src"], tgt_in)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), tgt_out.reshape(-1), ignore_index=PAD,
                               label_smoothing=self.hparams.label_smoothing if stage == "train" else 0.0)
        self.token_acc[KEY[stage]].update(logits.reshape(-1, logits.size(-1)), tgt_out.reshape(-1))
        return loss, (tgt_out != PAD).sum()

    def training_step(self, batch, batch_idx):
        loss, _ = self._teacher_forced(batch, "train")
        bs = batch["src"].size(0)
        # Epoch means only: the LR plateau follows the epoch loss, as in the tutorial.
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=bs)
        self.log("train/token_acc", self.token_acc["fit"], on_step=False, on_epoch=True, batch_size=bs)
        return loss

    def _eval_step(self, batch, stage: str):
        loss, n_tokens = self._teacher_forced(batch, stage)
        self.loss_mean[stage].update(loss, n_tokens)
        hyp = self.decode(batch["src"], self.hparams.beam_width, self.hparams.max_len)
        self.exact[stage].update(exact_match(hyp.tokens, batch["refs"]).float())
        self.bleu[stage].update([" ".join(self.reply_tokens(row)) for row in hyp.tokens.tolist()], batch["ref_text"])

    def validation_step(self, batch, batch_idx):
        if batch_idx == 0:
            n = self.hparams.n_examples
            self._examples = (batch["src"][:n].detach(), [" / ".join(r) for r in batch["ref_text"][:n]])
        self._eval_step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, "test")

    def _log_epoch(self, stage: str):
        values = {
            f"{stage}/loss": self.loss_mean[stage].compute(),
            f"{stage}/token_acc": self.token_acc[KEY[stage]].compute(),
            f"{stage}/exact_acc": self.exact[stage].compute(),
            f"{stage}/bleu": self.bleu[stage].compute(),
        }
        for metric in (self.loss_mean, self.token_acc, self.exact, self.bleu):
            metric[KEY[stage]].reset()
        self.log_dict(values, prog_bar=stage == "val")

    def on_validation_epoch_end(self):
        self._log_epoch("val")

    def on_test_epoch_end(self):
        self._log_epoch("test")

    # ---- inference ---------------------------------------------------------------------------
    def _step(self, tokens, state):
        """One decoding step for seqlab.decoding: log-probs of the next reply token. The model
        recomputes the decoder over the whole prefix (no cache: replies are a few words)."""
        memory, src_pad = state
        logits = self.model.decode(tokens, memory, src_pad)[:, -1].float()
        logits[:, [UNK, PAD, SOS]] = float("-inf")  # never said: not words
        return logits.log_softmax(-1), state

    @torch.no_grad()
    def decode(self, src: torch.Tensor, beam_width: int = 3, max_len: int = 25) -> Hypotheses:
        """Replies to a batch of encoded prompts: greedy for beam_width 1, else beam search."""
        was_training = self.model.training
        self.model.eval()
        try:
            state = self.model.encode(src)
            common = dict(batch_size=src.size(0), sos=SOS, eos=EOS, max_len=max_len, pad=PAD, device=src.device)
            if beam_width == 1:
                return greedy_search(self._step, state, **common)
            return beam_search(self._step, state, beam_width=beam_width,
                               length_penalty=self.hparams.length_penalty, **common)
        finally:
            self.model.train(was_training)

    def reply_tokens(self, ids: list[int]) -> list[str]:
        """Reply words of one decoded row: up to <eos>, padding dropped."""
        out = []
        for i in ids:
            if i == EOS:
                break
            if i != PAD:
                out.append(self.tgt_vocab.itos[i])
        return out

    def encode_prompt(self, prompt: str) -> torch.Tensor:
        tokens = tokenize(prompt or "")
        if not tokens:
            raise SeqlabError(f"the prompt {prompt!r} has no words; pass a sentence, e.g. prompt=\"hi, who are you?\"")
        return self.src_vocab.encode(tokens).to(self.device)[None]  # unknown words become <unk>

    def respond(self, prompt: str, beam_width: int = 3, max_len: int = 25) -> str:
        """The reply to one sentence, by beam search (beam_width=1: greedy)."""
        beam_width, max_len = check_int("beam_width", beam_width, 3), check_int("max_len", max_len, 25)
        hyp = self.decode(self.encode_prompt(prompt), beam_width, max_len)
        return detokenize(self.reply_tokens(hyp.tokens[0].tolist()))

    # ---- TensorBoard -------------------------------------------------------------------------
    def log_examples(self, writer) -> None:
        """A table of prompts, decoded replies and the data's replies; the decoder's attention
        over the source for the first prompt, as an image."""
        if self._examples is None:
            return
        src, refs = self._examples
        hyp = self.decode(src, self.hparams.beam_width, self.hparams.max_len)
        rows = ["| prompt | reply (beam search) | reply in the data |", "|---|---|---|"]
        for s, h, r in zip(src.tolist(), hyp.tokens.tolist(), refs):
            prompt = " ".join(self.src_vocab.itos[i] for i in s if i != PAD)
            rows.append("| " + " | ".join(_cell(x) for x in (prompt, " ".join(self.reply_tokens(h)), r)) + " |")
        writer.add_text("examples/replies", "\n".join(rows), self.global_step)
        writer.add_figure("examples/attention", self.attention_figure(src[:1], hyp.tokens[:1]), self.global_step)

    def attention_figure(self, src: torch.Tensor, reply: torch.Tensor):
        """Heat map of the last decoder layer's attention (mean over heads): one row per reply
        token produced, one column per prompt token."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        words = self.reply_tokens(reply[0].tolist())
        src = src[:, (src[0] != PAD)]
        tgt = torch.tensor([[SOS] + [self.tgt_vocab.stoi[w] for w in words]], device=src.device)
        was_training = self.model.training
        self.model.eval()
        weights = self.model.cross_attention(src, tgt)[0].float().cpu()  # (reply + 1, prompt)
        self.model.train(was_training)
        fig, ax = plt.subplots(figsize=(1 + 0.5 * src.size(1), 1 + 0.4 * weights.size(0)))
        ax.imshow(weights.numpy(), cmap="viridis", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(src.size(1)), [self.src_vocab.itos[i] for i in src[0].tolist()], rotation=45, ha="right")
        ax.set_yticks(range(weights.size(0)), [*words, "<eos>"])
        ax.set_xlabel("prompt")
        ax.set_ylabel("reply token produced")
        fig.tight_layout()
        plt.close(fig)
        return fig


def exact_match(tokens: torch.Tensor, refs: torch.Tensor) -> torch.Tensor:
    """(batch,) bool: the decoded row (ending with <eos>, then <pad>) equals one of its
    references (batch, n_refs, len), each ending with <eos> and padded with <pad>."""
    length = max(tokens.size(1), refs.size(2))
    tokens = F.pad(tokens, (0, length - tokens.size(1)), value=PAD)
    refs = F.pad(refs, (0, length - refs.size(2)), value=PAD)
    return (tokens[:, None, :] == refs).all(-1).any(-1)


def check_int(name: str, value, example: int) -> int:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == int(value) and value >= 1
    if not ok:
        raise SeqlabError(f"{name} must be a positive integer, got {value!r}; pass e.g. {name}={example}")
    return int(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|") or " "
