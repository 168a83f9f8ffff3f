"""Head-rotation conventions: Euler angles ``[pitch, yaw, roll]`` <-> rotation matrices.

Coordinates: metres, +y up, +z out of the face, +x toward the subject's left.
``pitch`` turns about x (positive = chin down / nod), ``yaw`` about y (positive = turn
toward the subject's left), ``roll`` about z; the matrix is
``R = Ry(yaw) @ Rx(pitch) @ Rz(roll)``, applied to column vectors.
Every function takes numpy arrays or torch tensors and returns the same type.
"""
from __future__ import annotations

import numpy as np
import torch


def _backend(x):
    return torch if isinstance(x, torch.Tensor) else np


def euler_to_matrix(angles):
    """Rotation matrices from Euler angles.

    Args:
        angles: ``[..., 3]`` radians ``(pitch, yaw, roll)``, numpy array or torch tensor
            (differentiable).

    Returns:
        ``[..., 3, 3]`` matrices ``Ry(yaw) @ Rx(pitch) @ Rz(roll)``, same type and dtype
        (numpy integers become float64).

    Raises:
        ValueError: the last dimension is not 3.
    """
    xp = _backend(angles)
    if angles.shape[-1] != 3:
        raise ValueError(f"euler_to_matrix: expected [..., 3] angles, got shape {tuple(angles.shape)}")
    if xp is np:
        angles = np.asarray(angles)
        if not np.issubdtype(angles.dtype, np.floating):
            angles = angles.astype(np.float64)
    p, y, r = angles[..., 0], angles[..., 1], angles[..., 2]
    cp, sp, cy, sy, cr, sr = xp.cos(p), xp.sin(p), xp.cos(y), xp.sin(y), xp.cos(r), xp.sin(r)
    # Ry(y) @ Rx(p) @ Rz(r), expanded
    rows = [
        [cy * cr + sy * sp * sr, -cy * sr + sy * sp * cr, sy * cp],
        [cp * sr, cp * cr, -sp],
        [-sy * cr + cy * sp * sr, sy * sr + cy * sp * cr, cy * cp],
    ]
    return xp.stack([xp.stack(row, -1) for row in rows], -2)


def matrix_to_euler(matrix):
    """Inverse of :func:`euler_to_matrix`.

    Args:
        matrix: ``[..., 3, 3]`` rotation matrices (numpy or torch).

    Returns:
        ``[..., 3]`` radians ``(pitch, yaw, roll)`` with pitch in ``[-pi/2, pi/2]``; at
        gimbal lock (``|pitch| = pi/2``) roll is reported as 0 and yaw absorbs it.

    Raises:
        ValueError: the trailing dimensions are not ``3 x 3``.
    """
    xp = _backend(matrix)
    if tuple(matrix.shape[-2:]) != (3, 3):
        raise ValueError(f"matrix_to_euler: expected [..., 3, 3], got shape {tuple(matrix.shape)}")
    m = matrix
    pitch = xp.arcsin(xp.clip(-m[..., 1, 2], -1.0, 1.0)) if xp is np else torch.asin(torch.clamp(-m[..., 1, 2], -1.0, 1.0))
    atan2 = np.arctan2 if xp is np else torch.atan2
    cp = xp.cos(pitch)
    locked = cp < 1e-6
    yaw = atan2(m[..., 0, 2], m[..., 2, 2])
    roll = atan2(m[..., 1, 0], m[..., 1, 1])
    yaw_locked = atan2(-m[..., 2, 0], m[..., 0, 0])
    yaw = xp.where(locked, yaw_locked, yaw)
    roll = xp.where(locked, xp.zeros_like(roll), roll)
    return xp.stack([pitch, yaw, roll], -1)
