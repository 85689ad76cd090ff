"""Tao: a one-layer recurrent net over one-hot characters (the arithmetic tutorial). Pure torch.nn.

The hidden update is the tutorial's single `Linear(input + hidden -> hidden)` on the concatenation,
followed by `activation`: "identity" is the tutorial's net (no nonlinearity), "tanh" (the default)
and "relu" are the usual vanilla RNNs. activation="gru" replaces that update by a GRU cell
(PyTorch's fused nn.GRU). The output is `Linear(hidden -> alphabet)` of the new hidden state.
"""

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {"identity": lambda h: h, "tanh": torch.tanh, "relu": torch.relu}
UPDATES = (*ACTIVATIONS, "gru")  # the values of `activation`


class TaoRNN(nn.Module):
    def __init__(self, alphabet_size: int, hidden_size: int = 101, activation: str = "tanh"):
        super().__init__()
        if activation not in UPDATES:
            raise ValueError(f"activation must be one of {UPDATES}, got {activation!r}")
        self.alphabet_size, self.hidden_size, self.activation = alphabet_size, hidden_size, activation
        if activation == "gru":
            self.rnn = nn.GRU(alphabet_size, hidden_size, batch_first=True)
        else:
            self.xhh = nn.Linear(alphabet_size + hidden_size, hidden_size)
        self.ho = nn.Linear(hidden_size, alphabet_size)

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (batch, time) character ids; h: (batch, hidden) start state, zero if None (the tutorial
        resets it for every question). Returns logits (batch, time, alphabet) and the hidden
        state after each step (batch, time, hidden)."""
        one_hot = F.one_hot(x, self.alphabet_size).float()
        if h is None:
            h = one_hot.new_zeros(x.size(0), self.hidden_size)
        if self.activation == "gru":
            hs, _ = self.rnn(one_hot, h.unsqueeze(0).contiguous())
        else:
            # xhh(cat(x, h)) = x W_x^T + b + h W_h^T: the input part for all steps at once,
            # then only the recurrent part in the loop over time.
            n_in = self.alphabet_size
            w_x, w_h = self.xhh.weight[:, :n_in], self.xhh.weight[:, n_in:]
            xp = F.linear(one_hot, w_x, self.xhh.bias)
            act = ACTIVATIONS[self.activation]
            steps = []
            for t in range(x.size(1)):
                h = act(xp[:, t] + h @ w_h.T)
                steps.append(h)
            hs = torch.stack(steps, 1)
        return self.ho(hs), hs


@torch.no_grad()
def answer(model: TaoRNN, x: torch.Tensor, q_len: torch.Tensor, steps: int, temperature: float = 0.0,
           generator: torch.Generator | None = None, end: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Answer the questions x[i, :q_len[i]] character by character, feeding the net's own
    characters back in (no teacher forcing). Characters in x after a question are ignored
    (the net is causal). Returns the answers (batch, steps), `end` after each one's end, and
    the logits each character was picked from (batch, steps, alphabet)."""
    from seqlab.sampling import next_token

    logits, hs = model(x)
    rows = torch.arange(x.size(0), device=x.device)
    logits, h = logits[rows, q_len - 1], hs[rows, q_len - 1]  # what the net says on reading "?"
    out, seen = [], []
    done = torch.zeros(x.size(0), dtype=torch.bool, device=x.device)
    for i in range(steps):
        tok = next_token(logits, temperature, generator).masked_fill(done, end)
        out.append(tok)
        seen.append(logits)
        done = done | (tok == end)
        if i + 1 == steps or bool(done.all()):
            break
        step_logits, hs = model(tok[:, None], h)
        logits, h = step_logits[:, -1], hs[:, -1]
    ids = torch.full((x.size(0), steps), end, dtype=torch.long, device=x.device)
    ids[:, : len(out)] = torch.stack(out, 1)
    return ids, torch.stack(seen, 1)
