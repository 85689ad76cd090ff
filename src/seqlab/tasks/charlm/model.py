"""Character language model: Embedding -> recurrent layer(s) -> Linear, log-softmax outputs.

Pure torch.nn: usable without Lightning.
"""

import torch
from torch import nn

from seqlab.recurrent import LockedDropout, Stacked, WeightDrop

FUSED = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}
UNROLLED = {"rnncell": nn.RNNCell, "grucell": nn.GRUCell}
CELLS = tuple(FUSED) + tuple(UNROLLED)


class UnrolledRNN(nn.Module):
    """The tutorial's teaching version: a Python loop over time with `nn.RNNCell`/`nn.GRUCell`.
    Same interface as the fused layers with `batch_first=True`; much slower."""

    def __init__(self, cell: str, input_size: int, hidden_size: int, num_layers: int, dropout: float):
        super().__init__()
        cls = UNROLLED[cell]
        self.cells = nn.ModuleList(cls(input_size if i == 0 else hidden_size, hidden_size) for i in range(num_layers))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # x: (batch, time, input); h: (layers, batch, hidden)
        hs = list(h.unbind(0))
        outputs = []
        for t in range(x.size(1)):
            inp = x[:, t]
            for i, cell in enumerate(self.cells):
                hs[i] = cell(inp if i == 0 else self.drop(inp), hs[i])
                inp = hs[i]
            outputs.append(inp)
        return torch.stack(outputs, 1), torch.stack(hs, 0)


class CharRNN(nn.Module):
    """Embedding -> recurrent layer(s) -> Linear, with the regularisers a small corpus needs:
    `dropout` on the recurrent output and between layers, `emb_dropout` on the embeddings (None:
    the same as `dropout`), `weight_dropout` on the recurrent weights (fused cells only) and
    `tie_weights` (the output layer reads the embedding matrix, through a projection to the
    embedding width when the hidden layer is wider); with `locked_dropout` each dropout keeps one
    mask for a whole window (fused cells only)."""

    def __init__(
        self,
        vocab_size: int,
        cell: str,
        emb_dim: int,
        hidden_size: int,
        n_layers: int,
        dropout: float,
        emb_dropout: float | None = None,
        weight_dropout: float = 0.0,
        tie_weights: bool = False,
        locked_dropout: bool = False,
    ):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")
        if (weight_dropout or locked_dropout) and cell not in FUSED:
            raise ValueError(f"weight_dropout and locked_dropout are for the fused cells {tuple(FUSED)}, got {cell!r}")
        self.cell, self.n_layers, self.hidden_size = cell, n_layers, hidden_size
        self.embedding = nn.Embedding(vocab_size, emb_dim)
        rnn_dropout = dropout if n_layers > 1 else 0.0
        drop = LockedDropout if locked_dropout else nn.Dropout

        def fused(n: int, first: bool = True):  # (wrapped only when used: checkpoints without it keep their keys)
            inp = emb_dim if first else hidden_size
            rnn = FUSED[cell](inp, hidden_size, n, batch_first=True, dropout=rnn_dropout if n > 1 else 0.0)
            return WeightDrop(rnn, weight_dropout) if weight_dropout else rnn

        if locked_dropout and n_layers > 1:
            self.rnn = Stacked([fused(1, i == 0) for i in range(n_layers)], drop(dropout))
        elif cell in FUSED:
            self.rnn = fused(n_layers)
        else:
            self.rnn = UnrolledRNN(cell, emb_dim, hidden_size, n_layers, rnn_dropout)
        self.emb_drop = drop(dropout if emb_dropout is None else emb_dropout)
        self.drop = drop(dropout)
        self.proj = nn.Linear(hidden_size, emb_dim) if tie_weights and emb_dim != hidden_size else nn.Identity()
        self.out = nn.Linear(emb_dim if tie_weights else hidden_size, vocab_size)
        if tie_weights:
            self.out.weight = self.embedding.weight

    def init_hidden(self, batch_size: int, device=None):
        h = torch.zeros(self.n_layers, batch_size, self.hidden_size, device=device)
        return (h, h.clone()) if self.cell == "lstm" else h

    def forward(self, x: torch.Tensor, hidden=None):
        """x: (batch, time) token ids -> (log-probs (batch, time, vocab), new hidden)."""
        if hidden is None:
            hidden = self.init_hidden(x.size(0), x.device)
        out, hidden = self.rnn(self.emb_drop(self.embedding(x)), hidden)
        return torch.log_softmax(self.out(self.proj(self.drop(out))), dim=-1), hidden


@torch.no_grad()
def generate(
    model: CharRNN,
    prompt_ids: torch.Tensor,
    length: int,
    temperature: float,
    generator: torch.Generator | None = None,
    suppress: int | None = None,
) -> list[int]:
    """Feed the prompt, then `length` times pick a character and feed it back in.
    `suppress` (e.g. the <unk> index) is never picked."""
    from seqlab.sampling import next_token

    logp, h = model(prompt_ids.view(1, -1))
    out = []
    for _ in range(length):
        logits = logp[:, -1]
        if suppress is not None:
            logits = logits.index_fill(-1, torch.tensor([suppress], device=logits.device), float("-inf"))
        tok = next_token(logits, temperature, generator)
        out.append(tok)
        logp, h = model(tok.view(1, 1), h)
    return torch.cat(out).tolist() if out else []  # read back once, not once per character
