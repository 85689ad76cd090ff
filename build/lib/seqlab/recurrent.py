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
