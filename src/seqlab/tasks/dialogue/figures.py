"""The dialogue model's picture: where the decoder looks in the prompt. Matplotlib only."""

import torch
from matplotlib.figure import Figure


@torch.no_grad()
def attention_figure(
    model, src: torch.Tensor, tgt: torch.Tensor, src_words: list[str], reply_words: list[str]
) -> Figure:
    """Heat map of the last decoder layer's attention (mean over heads): one row per reply
    token produced (`tgt` is <sos> and the reply), one column per prompt token."""
    weights = model.cross_attention(src, tgt)[0].float().cpu()  # (reply + 1, prompt)
    fig = Figure(figsize=(1 + 0.5 * src.size(1), 1 + 0.4 * weights.size(0)))
    ax = fig.add_subplot()
    ax.imshow(weights.numpy(), cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(src.size(1)), src_words, rotation=45, ha="right")
    ax.set_yticks(range(weights.size(0)), [*reply_words, "<eos>"])
    ax.set_xlabel("prompt")
    ax.set_ylabel("reply token produced")
    fig.tight_layout()
    return fig
