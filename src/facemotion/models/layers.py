"""Small building blocks shared by the denoisers and encoders."""

from __future__ import annotations

import torch
from torch import nn
from diffusers.models.embeddings import get_timestep_embedding


def sinusoidal(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding (Vaswani et al. 2017) of ``positions [L]`` (frames or diffusion
    steps) → ``[L, dim]``."""
    return get_timestep_embedding(positions, dim, flip_sin_to_cos=True, downscale_freq_shift=0)


def step_mlp(d_model: int) -> nn.Sequential:
    """The MLP that turns a sinusoidal diffusion-step embedding into a ``d_model`` feature."""
    return nn.Sequential(nn.Linear(d_model, d_model), nn.SiLU(), nn.Linear(d_model, d_model))


def transformer_decoder(d_model: int, n_layers: int, n_heads: int, ff_mult: int, dropout: float) -> nn.TransformerDecoder:
    """A pre-norm batch-first ``nn.TransformerDecoder`` (GELU, feed-forward ``ff_mult * d_model``)
    with a final LayerNorm."""
    layer = nn.TransformerDecoderLayer(d_model, n_heads, ff_mult * d_model, dropout, activation="gelu",
                                       batch_first=True, norm_first=True)
    return nn.TransformerDecoder(layer, n_layers, norm=nn.LayerNorm(d_model))
