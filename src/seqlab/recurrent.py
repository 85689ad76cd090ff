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
