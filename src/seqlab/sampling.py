"""Picking the next token: greedy (temperature 0) or sampled with a temperature.

Draws are made on the CPU, with a CPU generator, whatever device the model is on: a seed gives
the same text on a GPU as on the CPU (a CUDA generator would draw other numbers), and a
generator never meets a tensor of another device. Generation reads each token back anyway, so
the copy costs nothing extra.
"""

import torch

from seqlab.errors import SeqlabError


def next_token(logits: torch.Tensor, temperature: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """One token per row of `logits` (..., vocab), on the logits' device."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    device = logits.device
    logits = logits.detach().double().cpu()  # (double: a temperature of 1e-300 is not 0 there)
    # (less the largest first: a tiny temperature then tends to the argmax instead of overflowing)
    probs = torch.softmax((logits - logits.max(dim=-1, keepdim=True).values) / temperature, dim=-1)
    if not torch.isfinite(probs).all():  # multinomial would fail with a cryptic message
        raise SeqlabError(
            "the model's outputs are not finite numbers (its weights are NaN or infinite: the "
            "training diverged); use an earlier checkpoint or train again with a lower model.optimizer.lr"
        )
    flat = probs.reshape(-1, probs.size(-1))
    picked = torch.multinomial(flat, 1, generator=generator).squeeze(-1)
    return picked.reshape(probs.shape[:-1]).to(device)


def make_generator(seed: int | None) -> torch.Generator | None:
    """A CPU generator for `next_token`; None (torch's global generator) without a seed."""
    return None if seed is None else torch.Generator().manual_seed(int(seed))
