"""A GRU written with its matrices (the GRU tutorial), on one-hot characters. Pure torch.nn.

The tutorial's parameters, with the tutorial's shapes (inputs multiply from the left, x @ W):
Wz, Wr, Wh (vocab, hidden); Uz, Ur, Uh (hidden, hidden); bz, br, bh (hidden); Wy (hidden,
vocab), by (vocab); plus bhn (hidden), the hidden-side bias of the candidate state, which the
tutorial does not have and PyTorch does (zero at the start).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

INITS = ("randn", "uniform")


class MatrixGRU(nn.Module):
    """One-hot characters -> explicit GRU cell -> Linear(hidden -> vocab) logits.

    The cell computes exactly what `torch.nn.GRUCell` computes, in PyTorch's form:

        z  = σ(x Wz + h Uz + bz)                 update gate
        r  = σ(x Wr + h Ur + br)                 reset gate
        n  = tanh(x Wh + bh + r ⊙ (h Uh + bhn))  candidate: the reset gate scales h Uh + bhn
        h' = z ⊙ h + (1 − z) ⊙ n

    The tutorial writes the candidate as tanh(x Wh + (r ⊙ h) Uh + bh), i.e. it resets h before
    the matrix product; that is the GRU paper's other variant and differs from nn.GRUCell
    whenever r is not all ones. With nn.GRUCell's weights (rows r, z, n of weight_ih /
    weight_hh, transposed): bz = b_iz + b_hz, br = b_ir + b_hr, bh = b_in, bhn = b_hn
    (see `from_grucell`).

    init="randn" is the tutorial's: matrices N(0, 1), biases zero. init="uniform" is PyTorch's:
    everything U(-1/√hidden, 1/√hidden) (bhn starts at zero in both).
    """

    def __init__(self, vocab_size: int, hidden_size: int, init: str):
        super().__init__()
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        self.vocab_size, self.hidden_size = vocab_size, hidden_size
        V, H = vocab_size, hidden_size

        def p(*shape):
            return nn.Parameter(torch.empty(*shape))

        self.Wz, self.Wr, self.Wh = p(V, H), p(V, H), p(V, H)
        self.Uz, self.Ur, self.Uh = p(H, H), p(H, H), p(H, H)
        self.bz, self.br, self.bh, self.bhn = p(H), p(H), p(H), p(H)
        self.Wy, self.by = p(H, V), p(V)
        self.reset_parameters(init)

    @torch.no_grad()
    def reset_parameters(self, init: str) -> None:
        for _name, w in self.named_parameters():
            if init == "randn":
                w.normal_() if w.dim() == 2 else w.zero_()
            else:
                bound = 1.0 / math.sqrt(self.hidden_size)
                w.uniform_(-bound, bound)
        self.bhn.zero_()

    def cell(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """One step: x (batch, vocab) (one-hot or any vector), h (batch, hidden) -> h'."""
        z = torch.sigmoid(x @ self.Wz + h @ self.Uz + self.bz)
        r = torch.sigmoid(x @ self.Wr + h @ self.Ur + self.br)
        n = torch.tanh(x @ self.Wh + self.bh + r * (h @ self.Uh + self.bhn))
        return z * h + (1 - z) * n

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (batch, time) character ids; h: (batch, hidden), zero if None. Returns the logits
        (batch, time, vocab) and the hidden state after each step (batch, time, hidden)."""
        one_hot = F.one_hot(x, self.vocab_size).to(self.Wz.dtype)
        if h is None:
            h = one_hot.new_zeros(x.size(0), self.hidden_size)
        hs = []
        for t in range(x.size(1)):
            h = self.cell(one_hot[:, t], h)
            hs.append(h)
        hs = torch.stack(hs, 1)
        return hs @ self.Wy + self.by, hs

    @torch.no_grad()
    def from_grucell(self, cell: nn.GRUCell) -> "MatrixGRU":
        """Take the weights of an nn.GRUCell (same sizes)."""
        (w_ir, w_iz, w_in), (w_hr, w_hz, w_hn) = cell.weight_ih.chunk(3), cell.weight_hh.chunk(3)
        (b_ir, b_iz, b_in), (b_hr, b_hz, b_hn) = cell.bias_ih.chunk(3), cell.bias_hh.chunk(3)
        for mine, theirs in (
            (self.Wr, w_ir.T),
            (self.Wz, w_iz.T),
            (self.Wh, w_in.T),
            (self.Ur, w_hr.T),
            (self.Uz, w_hz.T),
            (self.Uh, w_hn.T),
            (self.br, b_ir + b_hr),
            (self.bz, b_iz + b_hz),
            (self.bh, b_in),
            (self.bhn, b_hn),
        ):
            mine.copy_(theirs)
        return self


@torch.no_grad()
def generate(
    model: MatrixGRU,
    prompt_ids: torch.Tensor,
    length: int,
    temperature: float = 0.0,
    generator: torch.Generator | None = None,
) -> list[int]:
    """Read the prompt from a zero state, then `length` times pick a character and feed it
    back in (the tutorial's sampler kept feeding the prompt instead)."""
    from seqlab.sampling import next_token

    logits, hs = model(prompt_ids.view(1, -1))
    h, out = hs[:, -1], []
    for _ in range(length):
        tok = next_token(logits[:, -1], temperature, generator)
        out.append(int(tok))
        logits, hs = model(tok.view(1, 1), h)
        h = hs[:, -1]
    return out
