"""GRU encoder–decoder of the subsequence tutorial. Pure torch.nn: usable without Lightning.

Batch-first tensors throughout: src (batch, src_len), target (batch, out_len).
"""

import torch
from torch import nn


class Encoder(nn.Module):
    def __init__(self, vocab_size: int, emb_dim: int, hidden_size: int, n_layers: int, dropout: float):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, emb_dim)
        self.rnn = nn.GRU(emb_dim, hidden_size, n_layers, dropout=dropout if n_layers > 1 else 0.0, batch_first=True)
        self.drop = nn.Dropout(dropout)

    def forward(self, src: torch.Tensor) -> torch.Tensor:
        """The final hidden state of every layer, (n_layers, batch, hidden): the decoder's start state."""
        _, h = self.rnn(self.drop(self.embedding(src)))
        return h


class Decoder(nn.Module):
    def __init__(self, vocab_size: int, emb_dim: int, hidden_size: int, n_layers: int, dropout: float):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, emb_dim)
        self.rnn = nn.GRU(emb_dim, hidden_size, n_layers, dropout=dropout if n_layers > 1 else 0.0, batch_first=True)
        self.out = nn.Linear(hidden_size, vocab_size)
        self.drop = nn.Dropout(dropout)

    def forward(self, tokens: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens (batch, steps) fed one after the other -> logits (batch, steps, vocab), new state."""
        out, h = self.rnn(self.drop(self.embedding(tokens)), h)
        return self.out(out), h


class Seq2Seq(nn.Module):
    """Encoder and decoder of equal size; the decoder starts from the encoder's final state and a
    zero token, and then reads back either its own best guess or (teacher forcing) the target."""

    def __init__(
        self,
        in_vocab: int,
        out_vocab: int,
        out_len: int,
        emb_dim: int,
        hidden_size: int,
        n_layers: int,
        dropout: float,
        init_range: float,
    ):
        super().__init__()
        self.out_len = out_len
        self.encoder = Encoder(in_vocab, emb_dim, hidden_size, n_layers, dropout)
        self.decoder = Decoder(out_vocab, emb_dim, hidden_size, n_layers, dropout)
        if init_range:
            for p in self.parameters():
                nn.init.uniform_(p, -init_range, init_range)

    def forward(
        self, src: torch.Tensor, target: torch.Tensor | None = None, force: list[bool] | None = None
    ) -> torch.Tensor:
        """Logits (batch, out_len, vocab).

        `force[t]` says whether step t+1 reads the target's token t (teacher forcing) or the
        model's own arg-max at step t; None (or no target) decodes greedily. As in the tutorial, one
        coin per step decides for the whole batch. Steps whose inputs are known beforehand
        (a forced run) go through the GRU in one fused call — the same computation, fewer calls.
        """
        h = self.encoder(src)
        steps = self.out_len
        if target is None or force is None:
            force = [False] * (steps - 1)
        if len(force) != steps - 1:
            raise ValueError(f"force needs {steps - 1} entries (one per step after the first), got {len(force)}")
        tokens = src.new_zeros(src.size(0), 1)  # the decoder starts from a zero token
        logits, t = [], 0
        while t < steps:
            end = t + 1
            while end < steps and force[end - 1]:
                end += 1
            seg = tokens if end == t + 1 else torch.cat([tokens, target[:, t : end - 1]], dim=1)
            out, h = self.decoder(seg, h)
            logits.append(out)
            t = end
            if t < steps:
                tokens = out[:, -1].argmax(-1, keepdim=True)
        return torch.cat(logits, dim=1)

    @torch.no_grad()
    def predict(self, src: torch.Tensor) -> torch.Tensor:
        """Greedy output tokens (batch, out_len), never looking at a target."""
        return self(src).argmax(-1)
