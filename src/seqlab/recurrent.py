"""Recurrent state of any nesting (a tensor, or tuples/lists/dicts of them, e.g. an LSTM's (h, c)):
what the modules that carry it from batch to batch need."""

import torch


def apply(fn, state):
    """`fn` on every tensor of `state`, keeping its structure."""
    if isinstance(state, torch.Tensor):
        return fn(state)
    if isinstance(state, dict):
        return {k: apply(fn, v) for k, v in state.items()}
    if isinstance(state, (tuple, list)):
        return type(state)(apply(fn, v) for v in state)
    return state


def detach(state):
    """Keep the values, drop the history: truncated backprop through time ("repackage")."""
    return apply(torch.Tensor.detach, state)


def to(state, device):
    return apply(lambda t: t.to(device), state)


class WeightDrop(torch.nn.Module):
    """DropConnect on the hidden-to-hidden weights of a fused `nn.RNN`/`nn.GRU`/`nn.LSTM` (the
    weight-dropped LSTM of Merity et al., 2017): while training, each forward call sees its own
    dropped copy of `weight_hh_l*`, so the regulariser reaches the recurrence without giving up the
    fused kernel. Evaluation uses the weights as they are (dropout's usual 1/(1-p) scaling)."""

    def __init__(self, rnn: torch.nn.RNNBase, p: float):
        super().__init__()
        self.rnn, self.p = rnn, p
        self.names = [n for n, _ in rnn.named_parameters() if n.startswith("weight_hh")]

    def forward(self, *args):
        if not (self.training and self.p):
            return self.rnn(*args)
        dropped = {n: torch.nn.functional.dropout(getattr(self.rnn, n), self.p) for n in self.names}
        return torch.func.functional_call(self.rnn, dropped, args)


class LockedDropout(torch.nn.Module):
    """Dropout with one mask per sequence of a (batch, time, features) tensor, the same at every
    time step (variational dropout, Gal & Ghahramani 2016): a unit dropped is dropped for the whole
    window, so the recurrence cannot route around it from one step to the next."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and self.p):
            return x
        mask = x.new_empty(x.size(0), 1, x.size(2)).bernoulli_(1 - self.p)
        return x * mask / (1 - self.p)


class Stacked(torch.nn.Module):
    """Single-layer fused recurrent modules run one over another, with `drop` between them: what a
    multi-layer `nn.LSTM` does, where its own between-layer dropout cannot be locked. The state is
    the same (layers, batch, hidden) tensor, or (h, c) pair, as the multi-layer module's."""

    def __init__(self, layers: list[torch.nn.Module], drop: torch.nn.Module):
        super().__init__()
        self.layers, self.drop = torch.nn.ModuleList(layers), drop

    def forward(self, x: torch.Tensor, state):
        states = []
        for i, layer in enumerate(self.layers):
            x, s = layer(x if i == 0 else self.drop(x), apply(lambda t, i=i: t[i : i + 1], state))
            states.append(s)
        lstm = isinstance(state, tuple)
        return x, tuple(map(torch.cat, zip(*states, strict=True))) if lstm else torch.cat(states)
