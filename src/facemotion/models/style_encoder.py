"""DiffPoseTalk's speaking style encoder (§3.3.1, Figure 2 right)."""

from __future__ import annotations

import torch
from torch import nn

from facemotion.models.layers import sinusoidal


class StyleEncoder(nn.Module):
    """s = SE(X_{0:T}) (eq. 8): transformer encoder over motion frames, average-pooled.

    Args:
        motion_dim: D (normalised motion parameters per frame).
        style_dim: d_s (paper: 128); n_layers (4), n_heads (4), ff_mult, dropout.
    """

    def __init__(self, motion_dim: int, style_dim: int = 128, n_layers: int = 4, n_heads: int = 4,
                 ff_mult: int = 2, dropout: float = 0.1):
        super().__init__()
        self.style_dim = style_dim
        self.inp = nn.Linear(motion_dim, style_dim)
        layer = nn.TransformerEncoderLayer(style_dim, n_heads, ff_mult * style_dim, dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layers, norm=nn.LayerNorm(style_dim),
                                             enable_nested_tensor=False)

    def forward(self, motion: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """Style embedding of motion clips.

        Args:
            motion: ``[B, T, D]`` normalised motion (T = 100 frames in training).
            valid: ``[B, T]`` bool, False on padding frames (excluded from attention and pooling);
                every row needs at least one True.
        Returns:
            s ``[B, d_s]``.
        """
        h = self.inp(motion) + sinusoidal(torch.arange(motion.shape[1], device=motion.device), self.style_dim)
        h = self.encoder(h, src_key_padding_mask=None if valid is None else ~valid)
        if valid is None:
            return h.mean(dim=1)
        w = valid.to(h.dtype)[..., None]
        return (h * w).sum(dim=1) / w.sum(dim=1).clamp_min(1.0)
