"""Training losses. Shapes: ``[B, T, ...]`` with a frame mask ``[B, T]`` (1 = real frame).

Every loss is a mean of squared errors over the masked frames (and over vertices and
coordinates), i.e. the ``||·||²`` of the papers taken as an MSE, as in DiffPoseTalk's code.
Vertices are in metres, head angles in radians.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _masked_mean(err: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``err [B, T, ...]`` over the frames where ``mask [B, T]`` is set (0 if none)."""
    per_frame = err.reshape(*err.shape[:2], -1).mean(dim=-1)
    return (per_frame * mask).sum() / mask.sum().clamp_min(1.0)


def _diff(x: torch.Tensor, mask: torch.Tensor, order: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Finite difference of ``order`` along T and the mask of frames whose stencil is all real."""
    for _ in range(order):
        x, mask = x[:, 1:] - x[:, :-1], mask[:, 1:] * mask[:, :-1]
    return x, mask


def simple_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L_simple (DiffPoseTalk eq. 2): ``||X̂^0 − X^0||²`` on ``[B, T, D]`` (normalised space)."""
    return _masked_mean((pred - target) ** 2, mask)


def vertex_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L_vert (eq. 3) on zero-head-pose vertices ``[B, T, V, 3]`` (m²)."""
    return _masked_mean((pred - target) ** 2, mask)


def velocity_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L_vel (eq. 4; also L_head_vel, eq. 12): error of the frame-to-frame differences of
    ``[B, T, ...]``."""
    dp, m = _diff(pred, mask, 1)
    dt, _ = _diff(target, mask, 1)
    return _masked_mean((dp - dt) ** 2, m)


def smooth_loss(pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L_smooth (eq. 5; also L_head_smooth, eq. 13): squared second difference (acceleration)
    of the prediction ``[B, T, ...]``."""
    acc, m = _diff(pred, mask, 2)
    return _masked_mean(acc**2, m)


def transition_loss(pred: torch.Tensor, target: torch.Tensor, n_prev: int, mask: torch.Tensor) -> torch.Tensor:
    """L_trans (DiffPoseTalk eq. 14) at the seam between the previous and the current window.

    With ``P̄_{-3:3} = {P_{-3:0}, P̂_{0:3}}`` (ground-truth previous frames, predicted first
    current frames), penalises the change of acceleration (second difference) and of jerk
    (third difference) across the seam.

    Args:
        pred, target: ``[B, T_p + T_w, k]`` (e.g. head angles, radians); frame ``n_prev`` is
            the window's first current frame.
        n_prev: T_p ≥ 3.
        mask: ``[B]`` float, samples that have a real previous window (not a first window)
            and ≥ 3 real current frames.
    """
    seam = torch.cat([target[:, n_prev - 3:n_prev], pred[:, n_prev:n_prev + 3]], dim=1)  # [B, 6, k]
    acc = seam[:, 3:5] - 2 * seam[:, 2:4] + seam[:, 1:3]
    jerk = seam[:, 3:6] - 3 * seam[:, 2:5] + 3 * seam[:, 1:4] - seam[:, 0:3]
    per = (acc**2).flatten(1).mean(1) + (jerk**2).flatten(1).mean(1)
    return (per * mask).sum() / mask.sum().clamp_min(1.0)


def closure_loss(pred_aperture: torch.Tensor, target_aperture: torch.Tensor, mask: torch.Tensor,
                 sigma: float = 0.003) -> torch.Tensor:
    """Lip-closure loss: aperture error weighted toward frames where the lips are (nearly) shut.

    Per frame ``w = exp(−a/σ)`` of the ground-truth aperture a (so /p b m/ closures get weight
    ≈ 1, an open mouth ≈ 0), loss ``Σ w (â − a)² / Σ w`` over masked frames. Generic lip
    vertex losses barely notice a 2 mm gap that reads as "not closed"; this one targets it.

    Args:
        pred_aperture, target_aperture: ``[B, T]`` upper-to-lower lip distance (metres).
        mask: ``[B, T]``; sigma: closure scale (metres).
    Returns:
        m².
    """
    w = torch.exp(-target_aperture.detach().clamp_min(0.0) / sigma) * mask
    return (w * (pred_aperture - target_aperture) ** 2).sum() / w.sum().clamp_min(1e-6)


def nt_xent(z_i: torch.Tensor, z_j: torch.Tensor, tau: float = 0.1) -> torch.Tensor:
    """NT-Xent (Chen et al. 2020; DiffPoseTalk eq. 9), averaged over both orders of every pair.

    Args:
        z_i, z_j: ``[N, d]`` embeddings; row k of ``z_i`` and of ``z_j`` form a positive pair,
            the other 2(N − 1) rows are negatives. Cosine similarity, temperature ``tau``.
    Returns:
        scalar.
    """
    z = F.normalize(torch.cat([z_i, z_j]), dim=-1)
    n = z_i.shape[0]
    sim = z @ z.T / tau
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, targets)
