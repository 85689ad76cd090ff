"""Choosing the next token from a distribution: greedy (temperature 0) or sampled."""

import torch

from seqlab.errors import SeqlabError


def check_temperature(temperature: float) -> float:
    if temperature is None or float(temperature) < 0:
        raise SeqlabError(f"temperature must be >= 0 (0 = greedy), got {temperature}; pass e.g. temperature=0.8")
    return float(temperature)


def next_token(logits: torch.Tensor, temperature: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Pick one token per row of `logits` (..., vocab).

    temperature == 0 takes the arg-max; otherwise samples from softmax(logits / temperature).
    `generator` makes sampling repeatable.
    """
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if not torch.isfinite(probs).all():  # multinomial would fail with a cryptic message
        raise SeqlabError("the model's outputs are not finite numbers (the training diverged); "
                          "use an earlier checkpoint or train again with a lower model.lr")
    flat = probs.reshape(-1, probs.size(-1))
    picked = torch.multinomial(flat, 1, generator=generator).squeeze(-1)
    return picked.reshape(probs.shape[:-1])


def make_generator(seed: int | None) -> torch.Generator | None:
    if seed is None:
        return None
    g = torch.Generator()
    g.manual_seed(int(seed))
    return g
