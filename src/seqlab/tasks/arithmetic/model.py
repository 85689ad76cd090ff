"""Tao: a one-layer recurrent net over one-hot characters (the arithmetic tutorial). Pure torch.nn.

The hidden update is the tutorial's single `Linear(input + hidden -> hidden)` on the concatenation,
followed by `activation`: "identity" is the tutorial's net (no nonlinearity), "tanh"
and "relu" are the usual vanilla RNNs. activation="gru" replaces that update by a GRU cell
(PyTorch's fused nn.GRU), which may be stacked `n_layers` deep. The output is
`Linear(hidden -> alphabet)` of the (last layer's) new hidden state.
"""

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

ACTIVATIONS = {"identity": lambda h: h, "tanh": torch.tanh, "relu": torch.relu}
UPDATES = (*ACTIVATIONS, "gru")  # the values of `activation`


class TaoRNN(nn.Module):
    def __init__(self, alphabet_size: int, hidden_size: int, activation: str, n_layers: int):
        super().__init__()
        if activation not in UPDATES:
            raise ValueError(f"activation must be one of {UPDATES}, got {activation!r}")
        if n_layers > 1 and activation != "gru":
            raise ValueError("only the gru update stacks layers")
        self.alphabet_size, self.hidden_size, self.activation = alphabet_size, hidden_size, activation
        if activation == "gru":
            self.rnn = nn.GRU(alphabet_size, hidden_size, n_layers, batch_first=True)
        else:
            self.xhh = nn.Linear(alphabet_size + hidden_size, hidden_size)
        self.ho = nn.Linear(hidden_size, alphabet_size)

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (batch, time) character ids; h: (batch, hidden) start state ((layers, batch, hidden)
        for a stacked GRU), zero if None (the tutorial resets it for every question). Returns logits
        (batch, time, alphabet) and the (last layer's) hidden state after each step (batch, time, hidden)."""
        one_hot = F.one_hot(x, self.alphabet_size).float()
        if self.activation == "gru":
            hs, _ = self.rnn(one_hot, h[None].contiguous() if h is not None and h.dim() == 2 else h)
            return self.ho(hs), hs
        if h is None:
            h = one_hot.new_zeros(x.size(0), self.hidden_size)
        # xhh(cat(x, h)) = x W_x^T + b + h W_h^T: the input part for all steps at once, then
        # only the recurrent part in the loop over time.
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

    def read(self, x: torch.Tensor, q_len: torch.Tensor):
        """Read each question x[i, :q_len[i]]: what the net says on its last character (the
        "?": the answer's first character), and the state it is in then."""
        if self.activation == "gru":  # packed: each row's state stops at its own end, in every layer
            lengths = q_len.cpu()
            packed = pack_padded_sequence(
                F.one_hot(x, self.alphabet_size).float(), lengths, batch_first=True, enforce_sorted=False
            )
            _, h = self.rnn(packed)
            return self.ho(h[-1]), h
        logits, hs = self(x)
        rows = torch.arange(x.size(0), device=x.device)
        return logits[rows, q_len - 1], hs[rows, q_len - 1]

    def step(self, tok: torch.Tensor, h: torch.Tensor):
        """One more character per row, from state `h` (as `read` gives it): (logits, new state)."""
        if self.activation == "gru":
            out, h = self.rnn(F.one_hot(tok[:, None], self.alphabet_size).float(), h)
            return self.ho(out[:, -1]), h
        logits, hs = self(tok[:, None], h)
        return logits[:, -1], hs[:, -1]


@torch.no_grad()
def answer(
    model: TaoRNN,
    x: torch.Tensor,
    q_len: torch.Tensor,
    steps: int,
    temperature: float = 0.0,
    generator: torch.Generator | None = None,
    end: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Answer the questions x[i, :q_len[i]] character by character, feeding the net's own
    characters back in (no teacher forcing). Characters in x after a question are ignored
    (the net is causal). Returns the answers (batch, steps), `end` after each one's end, and
    the logits each character was picked from (batch, steps, alphabet)."""
    from seqlab.sampling import next_token

    logits, h = model.read(x, q_len)  # what the net says on reading "?"
    out, seen = [], []
    done = torch.zeros(x.size(0), dtype=torch.bool, device=x.device)
    for i in range(steps):
        tok = next_token(logits, temperature, generator).masked_fill(done, end)
        out.append(tok)
        seen.append(logits)
        done = done | (tok == end)
        if i + 1 == steps or bool(done.all()):
            break
        logits, h = model.step(tok, h)
    ids = torch.full((x.size(0), steps), end, dtype=torch.long, device=x.device)
    ids[:, : len(out)] = torch.stack(out, 1)
    return ids, torch.stack(seen, 1)
