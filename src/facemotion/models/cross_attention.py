"""Media2Face's denoiser (§4.1, Figure 3): a transformer decoder whose motion tokens cross-attend
to the concatenated audio features and prompt embedding."""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from facemotion.models.layers import sinusoidal, step_mlp, transformer_decoder


class CrossAttentionDenoiser(nn.Module):
    """G(X_t, t, A, P) -> X̂_0 (Media2Face eq. 4).

    Memory (what cross-attention reads): per frame the audio features ``A_t`` concatenated with
    the prompt embedding ``P`` (the same for every frame, or per frame for a prompt schedule),
    projected to ``d_model``, plus a sinusoidal frame encoding. The two random masks of training
    (§4.1) are the two drops: ``prompt`` replaces P by a learned null embedding before the
    concatenation, ``audio`` then replaces the whole concatenated memory by a learned null
    token (no audio, no prompt). Targets: the noisy motion ``X_t`` projected, plus the frame
    encoding and the diffusion-step embedding (sinusoidal through an MLP). A pre-norm
    ``nn.TransformerDecoder``; with ``align`` motion frame t attends only to memory frame t
    (FaceFormer's alignment mask; context flows through self-attention), else to all.

    Args:
        motion_dim: D; audio_dim: C; prompt_dim: P.
        d_model, n_layers, n_heads, ff_mult, dropout: transformer sizes (paper: 512, 8, 4).
        align: use the alignment mask.
    """

    def __init__(self, motion_dim: int, audio_dim: int, prompt_dim: int, d_model: int = 128, n_layers: int = 4,
                 n_heads: int = 4, ff_mult: int = 4, dropout: float = 0.0, align: bool = True):
        super().__init__()
        self.d_model, self.align = d_model, align
        self.null_prompt = nn.Parameter(torch.zeros(prompt_dim))
        self.null_memory = nn.Parameter(torch.randn(d_model) * 0.02)
        self.cond_in = nn.Linear(audio_dim + prompt_dim, d_model)
        self.motion_in = nn.Linear(motion_dim, d_model)
        self.step_mlp = step_mlp(d_model)
        self.decoder = transformer_decoder(d_model, n_layers, n_heads, ff_mult, dropout)
        self.out = nn.Linear(d_model, motion_dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: Mapping[str, torch.Tensor],
                drop: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Predict X̂_0.

        Args:
            x: noisy motion ``[B, T, D]`` (normalised); t: diffusion steps ``[B]`` (long).
            cond: ``audio [B, T, C]`` (normalised features, required) and ``prompt`` ``[B, P]`` or
                ``[B, T, P]`` (absent: ∅ for all).
            drop: ``prompt`` / ``audio`` ``[B]`` bool, samples whose prompt (first mask) or whole
                condition (second mask) is replaced by ∅
                (:func:`facemotion.diffusion.guidance.guided_output`).
        Returns:
            ``[B, T, D]``.
        Raises:
            KeyError: no ``audio`` in ``cond``.
        """
        drop = drop or {}
        audio, prompt = cond["audio"], cond.get("prompt")
        b, n, _ = x.shape
        null = self.null_prompt.expand(b, n, -1)
        if prompt is None:
            prompt = null
        else:
            prompt = prompt[:, None].expand(-1, n, -1) if prompt.dim() == 2 else prompt
            if "prompt" in drop:
                prompt = torch.where(drop["prompt"][:, None, None], null, prompt)
        memory = self.cond_in(torch.cat([audio, prompt.to(audio.dtype)], dim=-1))
        if "audio" in drop:
            memory = torch.where(drop["audio"][:, None, None], self.null_memory.expand_as(memory), memory)
        pos = sinusoidal(torch.arange(n, device=x.device), self.d_model)
        step = self.step_mlp(sinusoidal(t, self.d_model))[:, None]
        tokens = self.motion_in(x) + pos + step
        mask = ~torch.eye(n, dtype=torch.bool, device=x.device) if self.align else None
        return self.out(self.decoder(tokens, memory + pos, memory_mask=mask))
