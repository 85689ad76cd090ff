"""Dialogue Transformer ("chloe"): teacher-forced training, replies by greedy or beam search.

Metrics per stage: loss (cross-entropy over reply tokens, <pad> ignored), token accuracy
(teacher-forced next-token accuracy), exact_acc (the decoded reply, by beam search, equals one
of the replies the data gives for the prompt) and bleu (corpus BLEU-4 of the decoded replies).
"""

from typing import Annotated

import torch
import torch.nn.functional as F
from pydantic import Field
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy
from torchmetrics.text import BLEUScore

from seqlab.decoding import Hypotheses, beam_search, greedy_search
from seqlab.errors import SeqlabError, warn
from seqlab.module import Task
from seqlab.tasks.dialogue.data import EOS, PAD, SOS, SPECIALS, UNK, detokenize, tokenize
from seqlab.tasks.dialogue.figures import attention_figure
from seqlab.tasks.dialogue.model import DialogueTransformer
from seqlab.types import Dropout, NonNegativeFloat, PositiveInt, Rate
from seqlab.vocab import Vocab

BeamWidth = Annotated[int, Field(ge=1, le=100)]
ReplyLength = Annotated[int, Field(ge=1, le=1000)]  # tokens; decoding stops at <eos> long before
MAX_PROMPT = 500  # words of a message that are read (training pairs are far shorter)


class DialogueModule(Task):
    task = "dialogue"

    def __init__(
        self,
        src_vocab: list[str],
        tgt_vocab: list[str],
        emb_dim: PositiveInt,
        n_layers: PositiveInt,
        n_heads: PositiveInt,
        ff_dim: PositiveInt,
        dropout: Dropout,
        label_smoothing: Rate,  # (1 would make every target uniform: nothing to learn)
        beam_width: BeamWidth,
        max_len: ReplyLength,
        length_penalty: NonNegativeFloat,
        n_examples: PositiveInt,
        **common,
    ):
        super().__init__(**common)
        if emb_dim % n_heads:
            raise SeqlabError(
                f"model.emb_dim={emb_dim} must be a multiple of model.n_heads={n_heads}; "
                f"pass e.g. model.n_heads={next(h for h in (8, 4, 2, 1) if emb_dim % h == 0)}"
            )
        if tuple(tgt_vocab[:4]) != SPECIALS:
            raise SeqlabError(
                "the reply vocabulary must start with <unk> <pad> <sos> <eos>; build it with the dialogue data module"
            )
        self.src_vocab, self.tgt_vocab = Vocab(src_vocab), Vocab(tgt_vocab)
        self.model = DialogueTransformer(
            len(src_vocab), len(tgt_vocab), emb_dim, n_layers, n_heads, dropout, ff_dim, PAD
        )
        self.init_metrics(
            {
                "loss": MeanMetric(),
                "exact_acc": MeanMetric(),
                "bleu": BLEUScore(n_gram=4),
                "token_acc": MulticlassAccuracy(len(tgt_vocab), average="micro", ignore_index=PAD),
            }
        )
        self._examples = None  # the first validation batch's prompts, for log_examples

    def _teacher_forced(self, batch, label_smoothing: float = 0.0):
        tgt_in, tgt_out = batch["tgt"][:, :-1], batch["tgt"][:, 1:]
        logits = self.model(batch["src"], tgt_in).flatten(0, 1)
        return F.cross_entropy(logits, tgt_out.flatten(), ignore_index=PAD, label_smoothing=label_smoothing), logits

    def training_loss(self, batch):
        return self._teacher_forced(batch, self.hparams.label_smoothing)[0]

    def evaluate(self, batch, batch_idx, stage):
        loss, logits = self._teacher_forced(batch)
        tgt_out, metrics = batch["tgt"][:, 1:].flatten(), self.metrics[stage]
        metrics["loss"].update(loss, (tgt_out != PAD).sum())
        metrics["token_acc"].update(logits, tgt_out)
        hyp = self.decode(batch["src"], self.hparams.beam_width, self.hparams.max_len)
        metrics["exact_acc"].update(exact_match(hyp.tokens, batch["refs"]).float())
        metrics["bleu"].update([" ".join(self.reply_tokens(row)) for row in hyp.tokens.tolist()], batch["ref_text"])
        if stage == "val" and batch_idx == 0:
            n = self.hparams.n_examples
            self._examples = (batch["src"][:n], [" / ".join(r) for r in batch["ref_text"][:n]])

    # ---- decoding ---------------------------------------------------------------------------
    def _step(self, tokens, state):
        """One decoding step for seqlab.decoding: log-probs of the next reply token. The model
        recomputes the decoder over the whole prefix (no cache: replies are a few words)."""
        memory, src_pad = state
        logits = self.model.decode(tokens, memory, src_pad)[:, -1].float()
        logits[:, [UNK, PAD, SOS]] = float("-inf")  # never said: not words
        if tokens.size(1) == 1:  # (every reply in the data has a word: an empty one is no answer)
            logits[:, EOS] = float("-inf")
        return logits.log_softmax(-1), state

    def decode(self, src: torch.Tensor, beam_width: int, max_len: int) -> Hypotheses:
        """Replies to a batch of encoded prompts: greedy for beam_width 1, else beam search."""
        state = self.model.encode(src)
        common = dict(batch_size=src.size(0), sos=SOS, eos=EOS, max_len=max_len, pad=PAD, device=src.device)
        if beam_width == 1:
            return greedy_search(self._step, state, **common)
        return beam_search(
            self._step, state, beam_width=beam_width, length_penalty=self.hparams.length_penalty, **common
        )

    def reply_tokens(self, ids: list[int]) -> list[str]:
        """Reply words of one decoded row: up to <eos>, padding dropped."""
        ids = ids[: ids.index(EOS)] if EOS in ids else ids
        return [self.tgt_vocab.itos[i] for i in ids if i != PAD]

    def respond(self, prompt: str, *, beam_width: BeamWidth | None = None, max_len: ReplyLength | None = None) -> str:
        """The reply to one sentence, by beam search (beam_width=1: greedy); by default with the
        model's own beam_width and max_len. Unknown words read as <unk>."""
        tokens = tokenize(prompt or "")
        if not tokens:
            raise SeqlabError(f'the prompt {prompt!r} has no words; pass a sentence, e.g. prompt="hi, who are you?"')
        if len(tokens) > MAX_PROMPT:  # attention grows with the square of the length: 20,000 words take a minute
            warn(f"the message has {len(tokens)} words; only its first {MAX_PROMPT} are read")
            tokens = tokens[:MAX_PROMPT]
        src = self.src_vocab.encode(tokens).to(self.device)[None]
        hyp = self.decode(src, beam_width or self.hparams.beam_width, max_len or self.hparams.max_len)
        return detokenize(self.reply_tokens(hyp.tokens[0].tolist()))

    def log_examples(self, writer) -> None:
        """A table of prompts, decoded replies and the data's replies; the decoder's attention
        over the source for the first prompt, as an image."""
        if self._examples is None:
            return
        src, refs = self._examples
        hyp = self.decode(src, self.hparams.beam_width, self.hparams.max_len)
        rows = ["| prompt | reply (beam search) | reply in the data |", "|---|---|---|"]
        for s, h, r in zip(src.tolist(), hyp.tokens.tolist(), refs, strict=False):
            prompt = " ".join(self.src_vocab.itos[i] for i in s if i != PAD)
            rows.append("| " + " | ".join(_cell(x) for x in (prompt, " ".join(self.reply_tokens(h)), r)) + " |")
        writer.add_text("examples/replies", "\n".join(rows), self.global_step)
        words = self.reply_tokens(hyp.tokens[0].tolist())
        first = src[:1, src[0] != PAD]
        tgt = torch.tensor([[SOS] + [self.tgt_vocab.stoi[w] for w in words]], device=src.device)
        fig = attention_figure(self.model, first, tgt, [self.src_vocab.itos[i] for i in first[0].tolist()], words)
        writer.add_figure("examples/attention", fig, self.global_step, close=True)


def exact_match(tokens: torch.Tensor, refs: torch.Tensor) -> torch.Tensor:
    """(batch,) bool: the decoded row (ending with <eos>, then <pad>) equals one of its
    references (batch, n_refs, len), each ending with <eos> and padded with <pad>."""
    length = max(tokens.size(1), refs.size(2))
    tokens = F.pad(tokens, (0, length - tokens.size(1)), value=PAD)
    refs = F.pad(refs, (0, length - refs.size(2)), value=PAD)
    return (tokens[:, None, :] == refs).all(-1).any(-1)


def _cell(text: str) -> str:
    return text.replace("|", "\\|") or " "
