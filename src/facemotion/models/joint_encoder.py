"""DF-3DFace's 3D face mesh diffusion network G_θ (Park et al. 2023, §3.2, Figure 1): a transformer
encoder over one timestep token, N audio tokens, one identity token and N motion-and-pose tokens."""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from facemotion.models.layers import sinusoidal

#: rows of :attr:`JointEncoderDenoiser.modality`: learned modality embeddings
MODALITIES = ("time", "audio", "identity", "motion")


class JointEncoderDenoiser(nn.Module):
    """X̂_0 = G_θ(t, a, X_t) (DF-3DFace eq. 3) with X = [x_id, x_MP,1:N].

    The face representation is one tensor ``X [B, R + N, W]``: with an identity
    (``identity_dim`` I > 0, R = 1) row 0 is x_id zero-padded to ``W = max(I, D)`` (the paper pads
    x_id ∈ R^{3V} by 3 zeros to the width 3V + 3 of the motion-pose rows), rows ``R ..`` are the
    per-frame motion-and-pose vectors x_MP ``[N, D]`` (the face-space motion: expression
    ``D - pose_dim`` then head pose ``pose_dim``), zero-padded to W. Without an identity (I = 0,
    the paper's "w/o x_id" ablation) X is x_MP alone ``[B, N, D]``.

    Identity, motion and pose are projected individually (the motion and pose projections of a
    frame are summed into its token), the timestep ``t`` (sinusoidal embedding and an MLP) and
    the audio features (one per frame, already at the motion frame rate) are projected too;
    each token gets its learned modality embedding (:data:`MODALITIES`) and audio and motion
    tokens the sinusoidal embedding of their frame index. The ``2N + 2`` tokens
    ``[t, a_1..a_N, id, mp_1..mp_N]`` go through a pre-norm ``nn.TransformerEncoder``; the first
    ``N + 1`` outputs (t and a) are dropped and the rest projected back to X's layout (padding
    columns are zero). Masked conditioning (eq. 5–6, m(a)): the projected audio of the frames
    that ``cond["audio_mask"]`` marks is replaced by a learned mask embedding in the samples
    that ``drop["audio"]`` selects.

    Args:
        motion_dim: D, the face-space motion width (expression and head pose).
        audio_dim: C, audio feature channels.
        identity_dim: I, identity width (0: no identity token).
        pose_dim: trailing motion channels that are head pose (3 radians, or 0 for a space
            without head pose), projected by their own layer.
        d_model, n_layers, n_heads, ff_mult, dropout: transformer sizes.
    Raises:
        ValueError: ``pose_dim`` not in ``[0, motion_dim)``.
    """

    def __init__(self, motion_dim: int, audio_dim: int, identity_dim: int = 0, pose_dim: int = 3,
                 d_model: int = 128, n_layers: int = 4, n_heads: int = 4, ff_mult: int = 4, dropout: float = 0.0):
        super().__init__()
        if not 0 <= pose_dim < motion_dim:
            raise ValueError(f"pose_dim must be in [0, {motion_dim}), got {pose_dim}")
        self.motion_dim, self.identity_dim, self.pose_dim = int(motion_dim), int(identity_dim), int(pose_dim)
        self.expr_dim = self.motion_dim - self.pose_dim
        self.width = max(self.motion_dim, self.identity_dim)
        self.rows = 1 if self.identity_dim else 0
        self.d_model = d_model
        self.motion_in = nn.Linear(self.expr_dim, d_model)
        self.pose_in = nn.Linear(self.pose_dim, d_model) if self.pose_dim else None
        self.identity_in = nn.Linear(self.identity_dim, d_model) if self.identity_dim else None
        self.audio_in = nn.Linear(audio_dim, d_model)
        self.step_mlp = nn.Sequential(nn.Linear(d_model, d_model), nn.SiLU(), nn.Linear(d_model, d_model))
        self.modality = nn.Parameter(torch.randn(len(MODALITIES), d_model) * 0.02)
        self.audio_mask_token = nn.Parameter(torch.randn(d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, ff_mult * d_model, dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layers, norm=nn.LayerNorm(d_model),
                                             enable_nested_tensor=False)
        self.motion_out = nn.Linear(d_model, self.expr_dim)
        self.pose_out = nn.Linear(d_model, self.pose_dim) if self.pose_dim else None
        self.identity_out = nn.Linear(d_model, self.identity_dim) if self.identity_dim else None

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: Mapping[str, torch.Tensor],
                drop: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Predict the clean face representation X̂_0 (or eps, as the recipe trains it).

        Args:
            x: noisy X_t ``[B, R + N, W]`` (normalised; layout in the class docstring).
            t: diffusion steps ``[B]`` (long).
            cond: ``audio`` ``[B, N, C]`` features (required, normalised); ``audio_mask``
                ``[B, N]`` bool, the frames m hides in m(a) (absent: every frame); ``valid``
                ``[B, N]`` bool, False on padding frames (ignored as attention keys).
            drop: ``audio`` ``[B]`` bool, samples conditioned on m(a) instead of a (eq. 5–6,
                :func:`facemotion.diffusion.guidance.guided_output`).
        Returns:
            ``[B, R + N, W]``, zero in the padding columns.
        Raises:
            KeyError: ``cond`` has no ``audio``. ValueError: ``x`` or ``audio`` of the wrong shape.
        """
        drop = drop or {}
        audio = cond["audio"]
        b, rows, width = x.shape
        n = rows - self.rows
        if width != self.width or n < 1 or audio.shape[:2] != (b, n):
            raise ValueError(f"JointEncoderDenoiser: x {tuple(x.shape)} / audio {tuple(audio.shape)} do not fit "
                             f"[B, {self.rows} + N, {self.width}] / [B, N, C]")
        dev = x.device
        pos = sinusoidal(torch.arange(n, device=dev), self.d_model).to(x.dtype)
        a = self.audio_in(audio)
        if drop.get("audio") is not None:
            hide = cond.get("audio_mask")
            hide = torch.ones(b, n, dtype=torch.bool, device=dev) if hide is None else hide.to(dev, torch.bool)
            hide = hide & drop["audio"].to(dev)[:, None]
            a = torch.where(hide[..., None], self.audio_mask_token.to(a.dtype).expand_as(a), a)
        a = a + pos + self.modality[1]
        mp = x[:, self.rows:]
        m = self.motion_in(mp[..., :self.expr_dim])
        if self.pose_in is not None:
            m = m + self.pose_in(mp[..., self.expr_dim:self.motion_dim])
        m = m + pos + self.modality[3]
        step = (self.step_mlp(sinusoidal(t, self.d_model).to(x.dtype)) + self.modality[0])[:, None]
        parts = [step, a]
        if self.identity_in is not None:
            parts.append((self.identity_in(x[:, 0, :self.identity_dim]) + self.modality[2])[:, None])
        parts.append(m)
        tokens = torch.cat(parts, dim=1)
        pad = None
        if cond.get("valid") is not None:
            invalid = ~cond["valid"].to(dev, torch.bool)
            head = torch.zeros(b, 1, dtype=torch.bool, device=dev)
            pad = torch.cat([head, invalid, head[:, :self.rows], invalid], dim=1)
        h = self.encoder(tokens, src_key_padding_mask=pad)[:, n + 1:]
        out = self.motion_out(h[:, self.rows:])
        if self.pose_out is not None:
            out = torch.cat([out, self.pose_out(h[:, self.rows:])], dim=-1)
        out = F.pad(out, (0, self.width - self.motion_dim))
        if self.identity_out is not None:
            ident = F.pad(self.identity_out(h[:, 0]), (0, self.width - self.identity_dim))
            out = torch.cat([ident[:, None], out], dim=1)
        return out


__all__ = ["JointEncoderDenoiser", "MODALITIES"]
