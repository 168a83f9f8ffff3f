"""Lip geometry: the one lip aperture and the one lip vertex error of the package.

The training losses and validation of the recipes, the face spaces, the evaluation metrics
(:mod:`facemotion.metrics`) and the real-speech lip-sync check all call these two functions.
Each takes numpy arrays or torch tensors (differentiable) and returns the same type.
"""

from __future__ import annotations

import numpy as np


def _is_torch(x) -> bool:
    return type(x).__module__.split(".")[0] == "torch"


def lip_aperture(vertices, upper, lower):
    """Mouth opening: the distance between upper- and lower-lip vertices.

    Args:
        vertices: ``[..., V, 3]`` metres (numpy or torch).
        upper, lower: one vertex index each (e.g. the ``upper_lip_mid`` / ``lower_lip_mid``
            landmarks), or equally long index lists ``[P]`` of vertically opposite vertices
            (their distances are averaged).
    Returns:
        ``[...]`` metres, same type as ``vertices`` (torch: differentiable).
    Raises:
        IndexError: an index outside ``[0, V)``.
    """
    if _is_torch(vertices):
        import torch

        up = torch.as_tensor(upper, device=vertices.device).reshape(-1)
        lo = torch.as_tensor(lower, device=vertices.device).reshape(-1)
        return torch.linalg.vector_norm(vertices[..., up, :] - vertices[..., lo, :], dim=-1).mean(-1)
    v = np.asarray(vertices)
    up, lo = np.atleast_1d(upper), np.atleast_1d(lower)
    return np.linalg.norm(v[..., up, :] - v[..., lo, :], axis=-1).mean(-1)


def lip_vertex_error(pred, gt, lip_idx):
    """Lip vertex error (LVE; MeshTalk, FaceFormer, CodeTalker, DiffPoseTalk Table 1): per frame
    the largest L2 error over the lip vertices, averaged over frames.

    FaceFormer's code takes the maximum of the *squared* error; this follows DiffPoseTalk,
    which reports it as a length (the plain L2 norm).

    Args:
        pred, gt: vertices ``[..., T, V, 3]`` metres (numpy or torch, same shape).
        lip_idx: lip vertex indices ``[L]``.
    Returns:
        ``[...]`` metres (a scalar for ``[T, V, 3]``), same type as ``pred``.
    """
    if _is_torch(pred):
        import torch

        idx = torch.as_tensor(lip_idx, device=pred.device).reshape(-1)
        return (pred[..., idx, :] - gt[..., idx, :]).norm(dim=-1).amax(-1).mean(-1)
    idx = np.atleast_1d(lip_idx)
    return np.linalg.norm(np.asarray(pred)[..., idx, :] - np.asarray(gt)[..., idx, :], axis=-1).max(-1).mean(-1)


__all__ = ["lip_aperture", "lip_vertex_error"]
