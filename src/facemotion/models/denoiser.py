"""DiffPoseTalk's transformer-decoder denoising network (§3.2.1, Figure 2 left)."""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from facemotion.models.layers import sinusoidal, step_mlp, transformer_decoder


def alignment_mask(num_frames: int, device=None) -> torch.Tensor:
    """Cross-attention mask ``[1 + T, T]`` (True = blocked) of the alignment mask.

    Query 0 is the condition token (step n, style s, shape β) and sees every audio frame;
    motion query ``1 + t`` sees only audio frame ``t`` (DiffPoseTalk §3.2.1, after FaceFormer).
    """
    mask = ~torch.eye(num_frames, dtype=torch.bool, device=device)
    return torch.cat([torch.zeros(1, num_frames, dtype=torch.bool, device=device), mask])


class TransformerDenoiser(nn.Module):
    """D(X^n_{0:T_w}, X^0_{-T_p:0}, A_{-T_p:T_w}, s, β, n) → X̂^0_{-T_p:T_w} (eq. 7).

    Target tokens: one condition token (sinusoidal step embedding through an MLP + projected
    style + projected shape), then ``T_p + T_w`` motion tokens (the clean previous frames and
    the noisy current frames, projected, plus a sinusoidal frame encoding). Memory: the audio
    features ``A_{-T_p:T_w}`` projected to ``d_model`` plus the same frame encoding. A
    pre-norm ``nn.TransformerDecoder`` with the alignment mask on cross-attention and full
    (or causal) self-attention; a linear head returns one vector per motion frame.

    For the first window (``first``) the previous frames and their audio are replaced by the
    learnable start features X_start ``[T_p, D]`` and A_start ``[T_p, C]``. Dropped
    conditions (classifier-free guidance) use learned null embeddings: ∅ audio replaces every
    projected audio frame, ∅ style the projected style.

    Args:
        motion_dim: D; audio_dim: C; style_dim: d_s; shape_dim: size of β (0 = none).
        d_model, n_layers, n_heads, ff_mult, dropout: transformer sizes (paper: 512, 8, 8).
        n_prev: T_p (frames).
        causal: causal self-attention over motion tokens instead of full.
        align: use the alignment mask (False = every token sees all audio; ablation "w/o AM").
    """

    def __init__(self, motion_dim: int, audio_dim: int, style_dim: int, shape_dim: int = 0, d_model: int = 256,
                 n_layers: int = 4, n_heads: int = 4, ff_mult: int = 4, dropout: float = 0.1, n_prev: int = 10,
                 causal: bool = False, align: bool = True):
        super().__init__()
        self.n_prev, self.d_model, self.causal, self.align = n_prev, d_model, causal, align
        self.motion_start = nn.Parameter(torch.zeros(n_prev, motion_dim))
        self.audio_start = nn.Parameter(torch.zeros(n_prev, audio_dim))
        self.null_audio = nn.Parameter(torch.randn(d_model) * 0.02)
        self.null_style = nn.Parameter(torch.randn(d_model) * 0.02)
        self.motion_in = nn.Linear(motion_dim, d_model)
        self.audio_in = nn.Linear(audio_dim, d_model)
        self.style_in = nn.Linear(style_dim, d_model)
        self.shape_in = nn.Linear(shape_dim, d_model) if shape_dim else None
        self.step_mlp = step_mlp(d_model)
        self.decoder = transformer_decoder(d_model, n_layers, n_heads, ff_mult, dropout)
        self.out = nn.Linear(d_model, motion_dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: Mapping[str, torch.Tensor],
                drop: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Predict x0 (or eps) for the previous and current frames.

        Args:
            x: noisy current motion X^n ``[B, T_w, D]`` (normalised); T_w may vary per call.
            t: diffusion step n ``[B]`` (long).
            cond: the conditions, by name (absent = not given):
                ``audio`` ``[B, T_p + T_w, C]`` features (required; the first T_p belong to the
                previous frames); ``prev`` ``[B, T_p, D]`` clean previous motion (absent: the
                first window for every sample); ``style`` ``[B, d_s]`` (absent: ∅ for all);
                ``first`` ``[B]`` bool, samples that are a sequence's first window (they use the
                start features); ``valid`` ``[B, T_p + T_w]`` bool, False on padding frames
                (ignored as attention keys); ``shape`` β ``[B, shape_dim]``.
            drop: ``audio`` / ``style`` ``[B]`` bool, samples whose condition is replaced by ∅
                (classifier-free guidance, :func:`facemotion.diffusion.guidance.guided_output`).
        Returns:
            ``[B, T_p + T_w, D]``.
        Raises:
            KeyError: ``cond`` has no ``audio``.
        """
        drop = drop or {}
        prev, audio, style = cond.get("prev"), cond["audio"], cond.get("style")
        first, valid, shape = cond.get("first"), cond.get("valid"), cond.get("shape")
        drop_audio, drop_style = drop.get("audio"), drop.get("style")
        b, tw, _ = x.shape
        length = self.n_prev + tw
        dev = x.device
        first = torch.ones(b, dtype=torch.bool, device=dev) if prev is None else \
            (first if first is not None else torch.zeros(b, dtype=torch.bool, device=dev))
        start = self.motion_start.expand(b, -1, -1)
        prev = start if prev is None else torch.where(first[:, None, None], start, prev)
        audio = torch.cat([torch.where(first[:, None, None], self.audio_start.expand(b, -1, -1),
                                       audio[:, :self.n_prev]), audio[:, self.n_prev:]], dim=1)
        pos = sinusoidal(torch.arange(length, device=dev), self.d_model)
        memory = self.audio_in(audio)
        if drop_audio is not None:
            memory = torch.where(drop_audio[:, None, None], self.null_audio.expand_as(memory), memory)
        memory = memory + pos
        cond = self.step_mlp(sinusoidal(t, self.d_model))
        style_emb = self.null_style.expand(b, -1) if style is None else self.style_in(style)
        if style is not None and drop_style is not None:
            style_emb = torch.where(drop_style[:, None], self.null_style.expand(b, -1), style_emb)
        cond = cond + style_emb
        if self.shape_in is not None and shape is not None:
            cond = cond + self.shape_in(shape)
        tokens = self.motion_in(torch.cat([prev, x], dim=1)) + pos
        tgt = torch.cat([cond[:, None], tokens], dim=1)
        tgt_mask = nn.Transformer.generate_square_subsequent_mask(length + 1, device=dev, dtype=torch.bool) \
            if self.causal else None
        mem_mask = alignment_mask(length, dev) if self.align else None
        pad = None
        if valid is not None:
            pad = torch.cat([torch.zeros(b, 1, dtype=torch.bool, device=dev), ~valid], dim=1)
        h = self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=mem_mask, tgt_key_padding_mask=pad)
        return self.out(h[:, 1:])
