"""Small building blocks shared by the denoisers and encoders."""

from __future__ import annotations

import torch
from diffusers.models.embeddings import get_timestep_embedding


def sinusoidal(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding (Vaswani et al. 2017) of ``positions [L]`` (frames or diffusion
    steps) → ``[L, dim]``."""
    return get_timestep_embedding(positions, dim, flip_sin_to_cos=True, downscale_freq_shift=0)
