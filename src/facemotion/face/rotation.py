"""Head-rotation conventions: Euler angles ``[pitch, yaw, roll]`` <-> rotation matrices.

Coordinates: metres, +y up, +z out of the face, +x toward the subject's left.
``pitch`` turns about x (positive = chin down / nod), ``yaw`` about y (positive = turn
toward the subject's left), ``roll`` about z; the matrix is
``R = Ry(yaw) @ Rx(pitch) @ Rz(roll)``, applied to column vectors: scipy's intrinsic ``"YXZ"``
Euler sequence on ``(yaw, pitch, roll)``. Numpy arrays go through
``scipy.spatial.transform.Rotation``; torch tensors through the same formula written in torch
ops, so that training can differentiate through it. Each conversion returns the type it got.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
from scipy.spatial.transform import Rotation

#: scipy's name of the convention; angles in scipy's order are ``angles[..., _SCIPY_ORDER]``
SCIPY_SEQUENCE = "YXZ"
_SCIPY_ORDER = [1, 0, 2]  # (pitch, yaw, roll) <-> (yaw, pitch, roll), its own inverse


def _float(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    return a if np.issubdtype(a.dtype, np.floating) else a.astype(np.float64)


def _rotation(angles: np.ndarray) -> Rotation:
    flat = angles.reshape(-1, 3).astype(np.float64)
    return Rotation.from_euler(SCIPY_SEQUENCE, flat[:, _SCIPY_ORDER])


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
    if angles.shape[-1] != 3:
        raise ValueError(f"euler_to_matrix: expected [..., 3] angles, got shape {tuple(angles.shape)}")
    if not isinstance(angles, torch.Tensor):
        angles = _float(angles)
        return _rotation(angles).as_matrix().reshape(angles.shape + (3,)).astype(angles.dtype)
    p, y, r = angles[..., 0], angles[..., 1], angles[..., 2]
    cp, sp, cy, sy, cr, sr = p.cos(), p.sin(), y.cos(), y.sin(), r.cos(), r.sin()
    # Ry(y) @ Rx(p) @ Rz(r), expanded (the matrix scipy builds for the numpy path)
    rows = [
        [cy * cr + sy * sp * sr, -cy * sr + sy * sp * cr, sy * cp],
        [cp * sr, cp * cr, -sp],
        [-sy * cr + cy * sp * sr, sy * sr + cy * sp * cr, cy * cp],
    ]
    return torch.stack([torch.stack(row, -1) for row in rows], -2)


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
    if tuple(matrix.shape[-2:]) != (3, 3):
        raise ValueError(f"matrix_to_euler: expected [..., 3, 3], got shape {tuple(matrix.shape)}")
    if not isinstance(matrix, torch.Tensor):
        m = _float(matrix)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Gimbal lock", UserWarning)  # documented: roll = 0
            e = Rotation.from_matrix(m.reshape(-1, 3, 3).astype(np.float64)).as_euler(SCIPY_SEQUENCE)
        return e[:, _SCIPY_ORDER].reshape(m.shape[:-2] + (3,)).astype(m.dtype)
    m = matrix
    pitch = torch.asin(torch.clamp(-m[..., 1, 2], -1.0, 1.0))
    locked = pitch.cos() < 1e-6
    yaw = torch.where(locked, torch.atan2(-m[..., 2, 0], m[..., 0, 0]), torch.atan2(m[..., 0, 2], m[..., 2, 2]))
    roll = torch.where(locked, torch.zeros_like(pitch), torch.atan2(m[..., 1, 0], m[..., 1, 1]))
    return torch.stack([pitch, yaw, roll], -1)


def head_quaternions(head_rotation) -> np.ndarray:
    """Unit quaternions of head rotations, for glTF and USD.

    Args:
        head_rotation: ``[T, 3]`` radians ``(pitch, yaw, roll)`` (numpy or anything
            ``np.asarray`` takes).
    Returns:
        ``[T, 4]`` float32 ``(x, y, z, w)`` (scipy's order, glTF's), signs chosen so that
        consecutive quaternions lie in the same hemisphere (interpolating between frames takes
        the short way).
    Raises:
        ValueError: the last dimension is not 3.
    """
    angles = _float(head_rotation)
    if angles.shape[-1] != 3:
        raise ValueError(f"head_quaternions: expected [T, 3] angles, got shape {angles.shape}")
    q = _rotation(angles).as_quat().reshape(-1, 4)
    flip = np.cumsum(np.r_[0, np.sum(q[1:] * q[:-1], axis=1) < 0][:len(q)]) % 2 == 1
    q[flip] *= -1
    return q.astype(np.float32)
