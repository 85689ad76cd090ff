"""The arithmetic tutorial's three pictures of one answered question. Matplotlib only."""

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from seqlab.tasks.arithmetic.data import END


def shown(ch: str) -> str:
    # the tutorial prints its \x00 as "_" (and matplotlib's default font has no ␀ glyph)
    return "_" if ch == END else ch


@torch.no_grad()
def answer_figure(model, alphabet: list[str], question: list[int], said: list[int]) -> Figure:
    """The one-hot input (the question, then the net's own answer fed back), the raw outputs
    and their softmax, one row per character read."""
    inp = torch.tensor([question + said], device=next(model.parameters()).device)
    logits, _ = model(inp)
    one_hot = F.one_hot(inp[0], len(alphabet)).float()
    pictures = (("Input", one_hot), ("Output", logits[0]), ("Softmax output", logits[0].softmax(-1)))
    labels = [shown(alphabet[i]) for i in inp[0].tolist()]
    fig = Figure(figsize=(12, 3 + 0.25 * len(labels)))
    for k, (title, m) in enumerate(pictures):
        ax = fig.add_subplot(1, 3, k + 1)
        ax.imshow(m.float().cpu().numpy(), cmap="Greys_r", interpolation="none", aspect="auto")
        ax.set_title(title)
        ax.set_yticks(range(len(labels)), labels)
        if len(alphabet) <= 32:
            ax.set_xticks(range(len(alphabet)), [shown(c) for c in alphabet], fontsize=7)
        ax.set_xlabel("character")
    fig.suptitle(f"{''.join(labels[: len(question)])}  →  {''.join(labels[len(question) :]) or '(nothing)'}")
    fig.tight_layout()
    return fig
