"""Token <-> index mapping shared by every task; stored in checkpoints as a plain list."""

from collections import Counter
from collections.abc import Iterable, Sequence

import torch


class Vocab:
    def __init__(self, itos: Sequence[str], unk: str | None = "<unk>"):
        self.itos = list(itos)
        self.stoi = {s: i for i, s in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ValueError("vocabulary has duplicate tokens")
        self.unk_index = self.stoi.get(unk) if unk is not None else None

    @classmethod
    def build(cls, tokens: Iterable[str], min_freq: int = 1, specials: Sequence[str] = ("<unk>",)) -> "Vocab":
        """Specials first, then tokens seen at least `min_freq` times, most frequent first
        (ties keep first-seen order, as torchtext does)."""
        counts = Counter(tokens)
        for s in specials:
            counts.pop(s, None)
        kept = [t for t, c in counts.most_common() if c >= min_freq]
        return cls([*specials, *kept], unk=specials[0] if specials else None)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def __getitem__(self, token: str) -> int:
        return self.stoi[token]

    def encode(self, tokens: Iterable[str]) -> torch.Tensor:
        if self.unk_index is None:
            ids = [self.stoi[t] for t in tokens]
        else:
            get, unk = self.stoi.get, self.unk_index
            ids = [get(t, unk) for t in tokens]
        return torch.tensor(ids, dtype=torch.long)

    def decode(self, ids: Iterable[int], sep: str = "") -> str:
        return sep.join(self.itos[int(i)] for i in ids)
