"""Greedy and beam search for any autoregressive decoder.

The model is seen through one function, `step(tokens, state) -> (log_probs, state)`:

- `tokens` (N, t): every row's output so far, starting with the start token;
- `state`: whatever the model carries between steps (an encoder's memory and its pad mask,
  an RNN's hidden state, ...): a tensor or a nested tuple/list/dict of tensors whose first
  dimension is N, or None. A model that recomputes from `tokens` returns it unchanged;
- `log_probs` (N, vocab): log-probabilities of the next token of each row.

Beam search keeps `beam_width` hypotheses per input, all in one batch of N = batch * beam rows,
so each step is one call of `step`. When a row's order changes, its state is reordered with
`select(state, index)` (by default: index the first dimension of every tensor in it).
"""

from dataclasses import dataclass

import torch


@dataclass
class Hypotheses:
    """The search's answer for each input of the batch.

    tokens (batch, length): the generated tokens (no start token), ending with the end token
        when one was produced, then `pad`;
    scores (batch,): the sum of the tokens' log-probabilities (length-normalised for beam
        search with length_penalty > 0);
    finished (batch,): whether the end token was produced within max_len.
    """

    tokens: torch.Tensor
    scores: torch.Tensor
    finished: torch.Tensor


def select_rows(state, index: torch.Tensor):
    """The rows `index` (first dimension) of every tensor in `state` (nested tuple/list/dict)."""
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.index_select(0, index)
    if isinstance(state, dict):
        return {k: select_rows(v, index) for k, v in state.items()}
    if isinstance(state, (tuple, list)):
        return type(state)(select_rows(v, index) for v in state)
    return state  # constants (ints, flags) travel as they are


@torch.no_grad()
def greedy_search(
    step, state, batch_size: int, sos: int, eos: int, max_len: int, pad: int | None = None, device=None
) -> Hypotheses:
    """Pick the most probable token at each step until every row produced `eos` or `max_len`
    tokens. Rows that ended are padded with `pad` (default: eos) and their score stays put."""
    pad = eos if pad is None else pad
    tokens = torch.full((batch_size, 1), sos, dtype=torch.long, device=device)
    scores = torch.zeros(batch_size, device=device)
    finished = torch.zeros(batch_size, dtype=torch.bool, device=device)
    for _ in range(max_len):
        log_probs, state = step(tokens, state)
        best_logp, best = log_probs.max(dim=-1)
        scores = scores + torch.where(finished, torch.zeros_like(best_logp), best_logp)
        best = best.masked_fill(finished, pad)
        tokens = torch.cat([tokens, best[:, None]], dim=1)
        finished = finished | (best == eos)
        if bool(finished.all()):
            break
    return Hypotheses(tokens[:, 1:], scores, finished)


@torch.no_grad()
def beam_search(
    step,
    state,
    batch_size: int,
    sos: int,
    eos: int,
    max_len: int,
    beam_width: int = 3,
    length_penalty: float = 0.0,
    pad: int | None = None,
    select=select_rows,
    device=None,
) -> Hypotheses:
    """Keep the `beam_width` best partial replies of each input, batched over inputs and beams.

    - A beam that produced `eos` is finished: it is not extended any further (it carries `pad`
      tokens at no cost, so its score and its tokens stay as they were), but it keeps its place
      among the best hypotheses as long as it scores better than the others.
    - The answer is the best-scoring of the final hypotheses; if none produced `eos` within
      `max_len` (the tutorial's search crashed there), the best unfinished one is returned.
    - length_penalty (alpha) > 0 ranks the final hypotheses by score / length**alpha, so that
      longer replies are not penalised merely for having more tokens; 0 ranks by the raw sum.
    - It stops early once, for every input, a finished hypothesis scores at least as well as
      every unfinished one (log-probabilities are <= 0, so those can only get worse).
    """
    if beam_width < 1:
        raise ValueError(f"beam_width must be >= 1, got {beam_width}")
    pad = eos if pad is None else pad
    B, K = batch_size, beam_width
    # Every input's state, repeated once per beam: row b*K + k is beam k of input b.
    state = select(state, torch.arange(B, device=device).repeat_interleave(K))
    tokens = torch.full((B * K, 1), sos, dtype=torch.long, device=device)
    # At the start all beams are the same "<sos>": only beam 0 is live, or the K beams would be copies.
    scores = torch.full((B, K), float("-inf"), device=device)
    scores[:, 0] = 0.0
    finished = torch.zeros(B, K, dtype=torch.bool, device=device)
    lengths = torch.zeros(B, K, device=device)
    offsets = (torch.arange(B, device=device) * K)[:, None]

    for _ in range(max_len):
        log_probs, state = step(tokens, state)
        V = log_probs.size(-1)
        log_probs = log_probs.view(B, K, V).float()
        # A finished beam has exactly one continuation, `pad`, at log-prob 0: not extended, not lost.
        done_row = torch.full((V,), float("-inf"), device=log_probs.device)
        done_row[pad] = 0.0
        log_probs = torch.where(finished[:, :, None], done_row, log_probs)
        candidates = (scores[:, :, None] + log_probs).view(B, K * V)
        scores, flat = candidates.topk(K, dim=-1)
        beam, token = flat // V, flat % V
        rows = (offsets + beam).view(-1)
        state = select(state, rows)
        was_finished = finished.gather(1, beam)
        lengths = lengths.gather(1, beam) + (~was_finished).float()
        finished = was_finished | (token == eos)
        tokens = torch.cat([tokens.index_select(0, rows), token.view(-1, 1)], dim=1)
        if length_penalty == 0:
            best_done = scores.masked_fill(~finished, float("-inf")).max(dim=1).values
            best_open = scores.masked_fill(finished, float("-inf")).max(dim=1).values
            if bool((best_done >= best_open).all()):
                break
        elif bool(finished.all()):
            break

    ranked = scores / lengths.clamp(min=1) ** length_penalty if length_penalty else scores
    # The best score wins; on an exact tie a finished hypothesis beats an unfinished one.
    is_best = ranked == ranked.max(dim=1, keepdim=True).values
    best = (is_best.long() * 2 + finished.long()).argmax(dim=1)
    out = tokens.index_select(0, offsets.view(-1) + best)[:, 1:]
    return Hypotheses(out, ranked.gather(1, best[:, None]).squeeze(1), finished.gather(1, best[:, None]).squeeze(1))
