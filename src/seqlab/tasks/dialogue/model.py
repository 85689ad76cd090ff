"""Encoder–decoder Transformer that replies to a sentence ("chloe"). Pure torch.nn.

As in the tutorial (which follows a popular Transformer repository): embeddings scaled by
sqrt(emb_dim) plus sinusoidal positions, pre-norm layers (LayerNorm before attention and
feed-forward), a final LayerNorm after each stack, a linear output layer. The layers are
PyTorch's own (`nn.TransformerEncoderLayer`/`DecoderLayer`), which run fused attention.
"""

import math

import torch
from torch import nn


def make_masks(src: torch.Tensor, tgt: torch.Tensor, pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The tutorial's masks, True where attention is allowed:

    source mask (batch, 1, src_len): the source positions that are not padding;
    target mask (batch, tgt_len, tgt_len): position i sees positions j <= i that are not
    padding (pad mask AND the no-peek, lower-triangular, mask).
    """
    src_mask = (src != pad).unsqueeze(-2)
    no_peek = torch.ones(tgt.size(1), tgt.size(1), dtype=torch.bool, device=tgt.device).tril()
    tgt_mask = (tgt != pad).unsqueeze(-2) & no_peek
    return src_mask, tgt_mask


def causal_mask(length: int, device=None) -> torch.Tensor:
    """PyTorch's form of the no-peek mask, True where attention is *blocked* (j > i). The model
    passes it with key-padding masks (batch, len) instead of one (batch, len, len) mask: the
    same masking, and what lets the fused attention kernels run."""
    return torch.ones(length, length, dtype=torch.bool, device=device).triu(1)


def positions(length: int, dim: int, device=None) -> torch.Tensor:
    """Sinusoidal position encodings (length, dim) of "Attention is all you need".
    (The tutorial's loop uses 2*i where i already steps by 2, so its frequencies fall twice as fast.)"""
    pos = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(length, dim, device=device)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return pe


class Embed(nn.Module):
    """Token embedding * sqrt(dim) + position encoding, then dropout."""

    def __init__(self, vocab_size: int, dim: int, dropout: float):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim)
        self.drop = nn.Dropout(dropout)
        self.scale = math.sqrt(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x) * self.scale
        return self.drop(h + positions(x.size(1), h.size(-1), h.device))


class DialogueTransformer(nn.Module):
    def __init__(
        self,
        src_vocab_size: int,
        tgt_vocab_size: int,
        emb_dim: int,
        n_layers: int,
        n_heads: int,
        dropout: float,
        ff_dim: int,
        pad: int,
    ):
        super().__init__()
        if emb_dim % n_heads:
            raise ValueError(f"emb_dim ({emb_dim}) must be a multiple of n_heads ({n_heads})")
        self.pad = pad
        self.src_embed = Embed(src_vocab_size, emb_dim, dropout)
        self.tgt_embed = Embed(tgt_vocab_size, emb_dim, dropout)
        enc = nn.TransformerEncoderLayer(emb_dim, n_heads, ff_dim, dropout, batch_first=True, norm_first=True)
        dec = nn.TransformerDecoderLayer(emb_dim, n_heads, ff_dim, dropout, batch_first=True, norm_first=True)
        # (nested tensors only speed up post-norm encoders; off to keep PyTorch quiet)
        self.encoder = nn.TransformerEncoder(enc, n_layers, norm=nn.LayerNorm(emb_dim), enable_nested_tensor=False)
        self.decoder = nn.TransformerDecoder(dec, n_layers, norm=nn.LayerNorm(emb_dim))
        self.out = nn.Linear(emb_dim, tgt_vocab_size)
        for p in self.parameters():  # Xavier on every matrix, as the tutorial's source repository does
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """src (batch, src_len) -> (memory (batch, src_len, emb_dim), source padding mask)."""
        src_pad = src == self.pad
        return self.encoder(self.src_embed(src), src_key_padding_mask=src_pad), src_pad

    def decode(self, tgt: torch.Tensor, memory: torch.Tensor, src_pad: torch.Tensor) -> torch.Tensor:
        """tgt (batch, tgt_len) starting with <sos> -> next-token logits (batch, tgt_len, vocab)."""
        h = self.decoder(
            self.tgt_embed(tgt),
            memory,
            tgt_mask=causal_mask(tgt.size(1), tgt.device),
            tgt_key_padding_mask=tgt == self.pad,
            memory_key_padding_mask=src_pad,
            tgt_is_causal=True,
        )
        return self.out(h)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: logits of the token after each position of `tgt`."""
        memory, src_pad = self.encode(src)
        return self.decode(tgt, memory, src_pad)

    @torch.no_grad()
    def cross_attention(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        """Weights (batch, tgt_len, src_len) of the last decoder layer's attention over the source,
        averaged over heads. The fused kernels do not return weights, so the layer's attention is
        called once more on the same inputs with need_weights=True."""
        attn = self.decoder.layers[-1].multihead_attn
        seen = {}

        def grab(module, args, kwargs):
            seen["args"], seen["kwargs"] = args, kwargs

        handle = attn.register_forward_pre_hook(grab, with_kwargs=True)
        try:
            self(src, tgt)
        finally:
            handle.remove()
        kwargs = {**seen["kwargs"], "need_weights": True, "average_attn_weights": True}
        return attn(*seen["args"], **kwargs)[1]
