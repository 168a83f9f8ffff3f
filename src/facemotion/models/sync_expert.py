"""DF-3DFace's mesh–audio sync expert S_sync (Park et al. 2023, §3.4; after Wav2Lip's SyncNet,
Prajwal et al. 2020): embeds an n-frame window of lip-region vertex motion and the audio window
under it, and scores them by cosine similarity."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _encoder(in_dim: int, hidden: int, window: int, dim: int) -> nn.Sequential:
    """Two temporal convolutions then a linear layer over the flattened window (so the order of
    the frames inside the window matters): ``[B, window, in_dim] -> [B, dim]``."""
    return nn.Sequential(nn.Conv1d(in_dim, hidden, 3, padding=1), nn.GELU(),
                         nn.Conv1d(hidden, hidden, 3, padding=1), nn.GELU(),
                         nn.Flatten(), nn.Linear(hidden * window, dim))


class SyncExpert(nn.Module):
    """S_sync: cosine similarity of lip-motion and audio embeddings of one window (§3.4).

    The lip input is m_lip · x_motion^{i:i+n}: the displacements of the lip vertices from their
    rest positions, in millimetres, flattened per frame (``[B, n, 3L]``); the audio input the
    recipe's normalised features of the same frames (``[B, n, C]``; the paper uses HuBERT).
    Trained contrastively (:meth:`contrastive_loss`), then frozen and used for L_sync
    (:meth:`sync_loss`, eq. 7).

    Args:
        lip_dim: 3L (L lip vertices). audio_dim: C. window: n frames.
        hidden: convolution channels. dim: embedding size.
    """

    def __init__(self, lip_dim: int, audio_dim: int, window: int = 5, hidden: int = 64, dim: int = 64):
        super().__init__()
        self.window = int(window)
        self.lip_encoder = _encoder(lip_dim, hidden, self.window, dim)
        self.audio_encoder = _encoder(audio_dim, hidden, self.window, dim)

    def _check(self, x: torch.Tensor, what: str) -> None:
        if x.dim() != 3 or x.shape[1] != self.window:
            raise ValueError(f"SyncExpert: {what} must be [B, {self.window}, C], got {tuple(x.shape)}")

    def embed_lips(self, lips: torch.Tensor) -> torch.Tensor:
        """Unit-norm embeddings ``[B, dim]`` of lip windows ``[B, n, 3L]`` (mm).

        Raises:
            ValueError: not n frames.
        """
        self._check(lips, "lips")
        return F.normalize(self.lip_encoder(lips.transpose(1, 2)), dim=-1)

    def embed_audio(self, audio: torch.Tensor) -> torch.Tensor:
        """Unit-norm embeddings ``[B, dim]`` of audio windows ``[B, n, C]`` (normalised features).

        Raises:
            ValueError: not n frames.
        """
        self._check(audio, "audio")
        return F.normalize(self.audio_encoder(audio.transpose(1, 2)), dim=-1)

    def forward(self, lips: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """Cosine similarity ``[B]`` in [-1, 1] of paired windows (1: in sync).

        Args:
            lips: ``[B, n, 3L]`` lip displacements (mm). audio: ``[B, n, C]``.
        """
        return (self.embed_lips(lips) * self.embed_audio(audio)).sum(-1)

    def similarity(self, lips: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """All-pairs cosine similarity ``[B_lips, B_audio]`` (for ranking and the contrastive loss)."""
        return self.embed_lips(lips) @ self.embed_audio(audio).T

    def contrastive_loss(self, lips: torch.Tensor, audio: torch.Tensor, tau: float = 0.1) -> torch.Tensor:
        """Pull synchronised pairs together and push out-of-sync pairs apart (§3.4): symmetric
        InfoNCE over cosine similarities / ``tau``, row k of ``lips`` and ``audio`` being the
        in-sync pair and every other row (other clips, or the same clip shifted in time) out of
        sync. Inputs ``[B, n, ·]``, B ≥ 2; returns a scalar."""
        logits = self.similarity(lips, audio) / tau
        target = torch.arange(len(logits), device=logits.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))

    def sync_loss(self, lips: torch.Tensor, audio: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """L_sync (eq. 7): the mean cosine distance ``1 - S_sync`` of generated lip windows and
        their audio; ``mask [B]`` (float) weights the windows. Returns a scalar in [0, 2]."""
        d = 1.0 - self(lips, audio)
        if mask is None:
            return d.mean()
        return (d * mask).sum() / mask.sum().clamp_min(1.0)


__all__ = ["SyncExpert"]
