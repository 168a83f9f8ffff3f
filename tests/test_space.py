"""Rotation conventions and the blendshape face space (torch decode vs numpy rig)."""
import numpy as np
import pytest
import torch

from facemotion.face.arkit import ARKIT_BLENDSHAPES, ARKIT_INDEX
from facemotion.face.rotation import euler_to_matrix, matrix_to_euler
from facemotion.face.space import BlendshapeSpace, FaceSpace


@pytest.fixture(scope="module")
def space():
    return BlendshapeSpace()


def test_euler_conventions_and_inverse():
    front = np.array([0.0, 0.0, 1.0])
    assert (euler_to_matrix(np.array([0.3, 0, 0])) @ front)[1] < -0.2      # pitch > 0: chin down / nod
    assert (euler_to_matrix(np.array([0, 0.3, 0])) @ front)[0] > 0.2       # yaw > 0: face turns to +x (left)
    assert (euler_to_matrix(np.array([0, 0, 0.3])) @ np.array([0, 1.0, 0]))[0] < -0.2  # roll about +z
    rng = np.random.default_rng(0)
    a = rng.uniform(-1.2, 1.2, (64, 3))
    R = euler_to_matrix(a)
    Rx = lambda t: np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]])
    Ry = lambda t: np.array([[np.cos(t), 0, np.sin(t)], [0, 1, 0], [-np.sin(t), 0, np.cos(t)]])
    Rz = lambda t: np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    np.testing.assert_allclose(R[5], Ry(a[5, 1]) @ Rx(a[5, 0]) @ Rz(a[5, 2]), atol=1e-12)
    np.testing.assert_allclose(R @ R.transpose(0, 2, 1), np.broadcast_to(np.eye(3), R.shape), atol=1e-12)
    np.testing.assert_allclose(matrix_to_euler(R), a, atol=1e-9)
    Rt = euler_to_matrix(torch.tensor(a, dtype=torch.float64))
    assert isinstance(Rt, torch.Tensor)
    np.testing.assert_allclose(Rt.numpy(), R, atol=1e-12)
    np.testing.assert_allclose(matrix_to_euler(Rt).numpy(), a, atol=1e-9)
    with pytest.raises(ValueError):
        euler_to_matrix(np.zeros((2, 4)))


def test_space_layout(space):
    assert isinstance(space, FaceSpace)
    assert space.dim == 55 and len(space.names) == 55
    assert tuple(space.names[:52]) == ARKIT_BLENDSHAPES
    assert tuple(space.names[52:]) == ("headPitch", "headYaw", "headRoll")
    assert space.state_dict() == {}          # rig tensors never go into checkpoints
    with pytest.raises(ValueError):
        space.decode(torch.zeros(1, 2, 52))


def test_decode_matches_numpy_and_is_differentiable(space):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 55, generator=g)
    x[..., 52:] = (x[..., 52:] - 0.5) * 0.6
    x.requires_grad_(True)
    v, pose = space.decode(x)
    assert v.shape == (2, 3, space.num_vertices, 3) and pose.shape == (2, 3, 3)
    ref = space.vertices_np(x[1].detach().numpy())
    np.testing.assert_allclose(v[1].detach().numpy(), ref, atol=2e-5)
    space.lip_aperture(v).sum().backward()
    assert x.grad[..., ARKIT_INDEX["jawOpen"]].abs().min() > 0
    assert torch.isfinite(x.grad).all()


def test_head_rotation_is_about_the_pivot(space):
    x = torch.zeros(1, 2, 55)
    x[0, 1, ARKIT_INDEX["jawOpen"]] = 1.0
    x_rot = x.clone()
    x_rot[..., 52:] = torch.tensor([0.3, -0.5, 0.2])
    expr, (posed, pose) = space.expression_vertices(x_rot), space.decode(x_rot)
    torch.testing.assert_close(expr, space.decode(x)[0])
    torch.testing.assert_close(pose, x_rot[..., 52:])
    p = space.neck_pivot
    torch.testing.assert_close((posed - p).norm(dim=-1), (expr - p).norm(dim=-1), atol=1e-6, rtol=0)
    assert (posed - expr).norm(dim=-1).max() > 0.02
    torch.testing.assert_close(space.head_pose(x_rot), x_rot[..., 52:])
    ap = space.lip_aperture(posed)
    assert ap[0, 0] < 0.001 and ap[0, 1] > 0.015             # aperture is pose-invariant
