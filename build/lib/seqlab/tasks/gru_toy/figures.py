"""The GRU toy's picture: how the explicit-matrix GRU reads a text. Matplotlib only."""

import torch
from matplotlib.figure import Figure


@torch.no_grad()
def reading_figure(model, vocab: list[str], text: str, device=None) -> Figure:
    """Reading `text` from a zero state: the hidden state after each character (as a heat map,
    and as a path through the first two units) and the predicted next-character probabilities
    (the true next character circled)."""
    ids = torch.tensor([[vocab.index(c) for c in text]], device=device)
    logits, hs = model(ids)
    hs, probs = hs[0].float().cpu().numpy(), logits[0].softmax(-1).float().cpu().numpy()
    fig = Figure(figsize=(14, 4.5))
    ax = fig.add_subplot(1, 3, 1)
    im = ax.imshow(hs.T, cmap="coolwarm", vmin=-1, vmax=1, aspect="auto", interpolation="none")
    ax.set_title("hidden state after each character")
    ax.set_xticks(range(len(text)), list(text))
    ax.set_ylabel("unit")
    fig.colorbar(im, ax=ax, fraction=0.04)
    ax = fig.add_subplot(1, 3, 2)
    if hs.shape[1] >= 2:
        ax.plot(hs[:, 0], hs[:, 1], "-", color="0.7", zorder=1)
        ax.scatter(hs[:, 0], hs[:, 1], c=range(len(text)), cmap="viridis", zorder=2)
        for t, ch in enumerate(text):
            ax.annotate(ch, (hs[t, 0], hs[t, 1]), textcoords="offset points", xytext=(4, 4))
        ax.set_xlabel("h[0]")
        ax.set_ylabel("h[1]")
    else:
        ax.plot(hs[:, 0], "o-")
        ax.set_xticks(range(len(text)), list(text))
    ax.set_title("hidden-state trajectory")
    ax = fig.add_subplot(1, 3, 3)
    ax.imshow(probs.T, cmap="Greys", vmin=0, vmax=1, aspect="auto", interpolation="none")
    nxt = [vocab.index(c) for c in text[1:]]
    ax.scatter(range(len(nxt)), nxt, s=60, facecolors="none", edgecolors="tab:red")
    ax.set_title("P(next character)")
    ax.set_xticks(range(len(text)), list(text))
    ax.set_yticks(range(len(vocab)), vocab)
    fig.tight_layout()
    return fig
