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


LVE_CONVENTIONS = ("diffposetalk", "faceformer")


def lip_vertex_error(pred, gt, lip_idx, convention: str = "diffposetalk"):
    """Lip vertex error (LVE; MeshTalk, FaceFormer, CodeTalker, DiffPoseTalk Table 1): per frame
    the largest error over the lip vertices, averaged over frames.

    Conventions: ``"diffposetalk"`` (default) takes the plain L2 norm of each lip vertex's error,
    so LVE is a length (DiffPoseTalk reports it in mm); ``"faceformer"`` takes the *squared* L2
    norm, as FaceFormer's and CodeTalker's evaluation code do (``max_l |v_l - v_l'|^2`` per frame,
    then the mean; FaceFormer's tables print it scaled by 1e5 for VOCASET and 1e4 for BIWI).

    Args:
        pred, gt: vertices ``[..., T, V, 3]`` metres (numpy or torch, same shape).
        lip_idx: lip vertex indices ``[L]``.
        convention: ``"diffposetalk"`` or ``"faceformer"``.
    Returns:
        ``[...]`` metres (``"diffposetalk"``) or square metres (``"faceformer"``); a scalar for
        ``[T, V, 3]``, same type as ``pred``.
    Raises:
        ValueError: an unknown convention.
    """
    if convention not in LVE_CONVENTIONS:
        raise ValueError(f"LVE convention {convention!r}: use one of {LVE_CONVENTIONS}")
    power = 2 if convention == "faceformer" else 1
    if _is_torch(pred):
        import torch

        idx = torch.as_tensor(lip_idx, device=pred.device).reshape(-1)
        return ((pred[..., idx, :] - gt[..., idx, :]).norm(dim=-1) ** power).amax(-1).mean(-1)
    idx = np.atleast_1d(lip_idx)
    err = np.linalg.norm(np.asarray(pred)[..., idx, :] - np.asarray(gt)[..., idx, :], axis=-1)
    return (err ** power).max(-1).mean(-1)


__all__ = ["LVE_CONVENTIONS", "lip_aperture", "lip_vertex_error"]
