"""FlameSpace on a synthetic FLAME model in FLAME 2020's pickle layout: chumpy-free loading, LBS
against a hand computation, regions, arrays round trip, settings and errors."""

from __future__ import annotations

import pickle
import sys

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from facemotion.errors import DataError
from facemotion.face.flame import FlameSpace, load_flame_model
from facemotion.face.space import build_space
from flame_helpers import LIPS, UPPER, V, write_flame_pkl, write_regions


@pytest.fixture()
def flame(tmp_path):
    model = write_flame_pkl(tmp_path / "generic_model.pkl")
    space = FlameSpace(tmp_path / "generic_model.pkl", regions_dir=write_regions(tmp_path / "regions"))
    return space, model


def hand_lbs(model, beta, psi, pose):
    """FLAME by hand: blend shapes, regressed joints, 4x4 joint transforms down the tree, pose
    correctives from (R_k - I), weighted sum (float64, scipy rotations)."""
    sd = model["shapedirs"]
    v_shaped = model["v_template"] + sd[..., :len(beta)] @ beta + sd[..., 300:300 + len(psi)] @ psi
    joints = model["J_regressor"].toarray() @ v_shaped
    rots = Rotation.from_rotvec(pose).as_matrix()
    feature = np.concatenate([(rots[k] - np.eye(3)).ravel() for k in range(1, 5)])
    v_posed = v_shaped + model["posedirs"] @ feature
    parents = [-1, 0, 1, 1, 1]
    world = []
    for k in range(5):
        local = np.eye(4)
        local[:3, :3] = rots[k]
        local[:3, 3] = joints[k] - (joints[parents[k]] if k else 0)
        world.append(local if k == 0 else world[parents[k]] @ local)
    skin = []
    for g, j in zip(world, joints):
        g = g.copy()
        g[:3, 3] -= g[:3, :3] @ j
        skin.append(g)
    out = np.zeros_like(v_posed)
    for i in range(V):
        t = sum(model["weights"][i, k] * skin[k] for k in range(5))
        out[i] = t[:3, :3] @ v_posed[i] + t[:3, 3]
    return out


def test_loads_without_chumpy(tmp_path):
    model = write_flame_pkl(tmp_path / "generic_model.pkl")
    assert "chumpy" not in sys.modules
    loaded = load_flame_model(tmp_path / "generic_model.pkl")
    assert "chumpy" not in sys.modules
    np.testing.assert_array_equal(loaded["shapedirs"], model["shapedirs"])
    np.testing.assert_array_equal(loaded["J_regressor"], model["J_regressor"].toarray())
    assert loaded["parents"].tolist() == [-1, 0, 1, 1, 1]
    np.savez(tmp_path / "flame.npz", **{**model, "J_regressor": model["J_regressor"].toarray()})
    np.testing.assert_array_equal(load_flame_model(tmp_path / "flame.npz")["v_template"], model["v_template"])


def test_lbs_matches_hand_computation(flame):
    space, model = flame
    rng = np.random.default_rng(1)
    beta, psi = rng.normal(0, 1, 100), rng.normal(0, 1, 50)
    pose = rng.normal(0, 0.3, (5, 3))
    got = space.flame(torch.tensor(beta), torch.tensor(psi)[None], torch.tensor(pose)[None]).double().numpy()[0]
    want = hand_lbs(model, beta, psi, pose)
    assert np.abs(got - want).max() < 1e-6  # metres

    # the motion vector path: x = [psi, global (3), jaw x], shape per sequence, neck and eyes zero
    x = np.concatenate([psi, pose[0], pose[2, :1]])[None]
    full = np.zeros((5, 3))
    full[0], full[2, 0] = pose[0], pose[2, 0]
    verts, head = space.decode(torch.tensor(x, dtype=torch.float32), shape=torch.tensor(beta, dtype=torch.float32))
    assert np.abs(verts.double().numpy()[0] - hand_lbs(model, beta, psi, full)).max() < 1e-6
    want_head = Rotation.from_rotvec(pose[0]).as_euler("YXZ")[[1, 0, 2]]  # (pitch, yaw, roll)
    np.testing.assert_allclose(head.numpy()[0], want_head, atol=1e-5)
    lips = space.expression_vertices(torch.tensor(x, dtype=torch.float32), indices=torch.tensor(LIPS),
                                     shape=torch.tensor(beta, dtype=torch.float32))
    full[0] = 0
    assert np.abs(lips.double().numpy()[0] - hand_lbs(model, beta, psi, full)[LIPS]).max() < 1e-6


def test_jaw_rotation_by_hand(tmp_path):
    """No blend shapes, a vertex bound to the jaw alone: it turns about the jaw joint."""
    model = write_flame_pkl(tmp_path / "m.pkl")
    model.update(shapedirs=np.zeros_like(model["shapedirs"]), posedirs=np.zeros_like(model["posedirs"]))
    model["weights"][4] = [0, 0, 1, 0, 0]
    with open(tmp_path / "m.pkl", "wb") as f:
        pickle.dump(model, f)
    space = FlameSpace(tmp_path / "m.pkl", regions_dir=write_regions(tmp_path / "r"), head_pose=False)
    x = torch.zeros(space.dim)
    x[-1] = np.pi / 2  # jaw x by 90 degrees: (y, z) -> (-z, y) about the joint
    v = space.expression_vertices(x).numpy()
    jaw = (model["J_regressor"].toarray() @ model["v_template"])[2]
    d = model["v_template"][4] - jaw
    np.testing.assert_allclose(v[4], jaw + [d[0], -d[2], d[1]], atol=1e-6)


def test_regions_arrays_and_settings(flame, tmp_path):
    space, model = flame
    assert space.dim == 54 and space.names[50:] == ("global_rx", "global_ry", "global_rz", "jaw_rx")
    assert space.lip_indices.tolist() == LIPS.tolist() and space.upper_face_indices.tolist() == UPPER.tolist()
    assert space.lip_landmarks == (0, 1)  # midline lips, highest and lowest
    rng = np.random.default_rng(2)
    arrays = {"exp": rng.normal(0, 1, (7, 100)).astype(np.float32), "pose": rng.normal(0, 0.2, (7, 6)).astype(np.float32)}
    arrays["pose"][:, 4:] = 0  # DiffPoseTalk's layout has no jaw y/z
    x = space.from_arrays(arrays)
    assert x.shape == (7, 54)
    back = space.to_arrays(x)
    np.testing.assert_array_equal(back["exp"], arrays["exp"][:, :50])
    np.testing.assert_array_equal(back["pose"], arrays["pose"])
    np.testing.assert_array_equal(space.from_arrays(back), x)
    assert back["head_rotation"].shape == (7, 3)

    rebuilt = build_space("flame", space.settings())
    np.testing.assert_array_equal(rebuilt.vertices_np(x), space.vertices_np(x))
    mesh = space.mesh(np.ones(100, np.float32))
    assert mesh.neutral.shape == (V, 3) and mesh.faces.shape == (8, 3)

    full = FlameSpace(space.model_path, n_exp=100, jaw_dims=3, regions_dir=space.settings()["regions_dir"])
    assert full.dim == 106
    np.testing.assert_array_equal(full.to_arrays(full.from_arrays(arrays))["pose"], arrays["pose"])

    masks = {"lips": LIPS, "forehead": np.array([10, 11]), "eye_region": np.array([8, 9]), "nose": np.array([7])}
    with open(tmp_path / "FLAME_masks.pkl", "wb") as f:
        pickle.dump(masks, f)
    m = FlameSpace(space.model_path, masks=tmp_path / "FLAME_masks.pkl")
    assert m.upper_face_indices.tolist() == [7, 8, 9, 10, 11]


def test_errors_name_the_file(tmp_path, flame):
    space, _ = flame
    regions = space.settings()["regions_dir"]
    with pytest.raises(DataError, match="nothere.pkl: no such file; expected a FLAME model"):
        FlameSpace(tmp_path / "nothere.pkl", regions_dir=regions)
    with open(tmp_path / "bad.pkl", "wb") as f:
        pickle.dump({"v_template": np.zeros((3, 3))}, f)
    with pytest.raises(DataError, match=r"bad.pkl: missing keys \['shapedirs'"):
        FlameSpace(tmp_path / "bad.pkl", regions_dir=regions)
    (tmp_path / "junk.pkl").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="junk.pkl: not readable as a FLAME model"):
        FlameSpace(tmp_path / "junk.pkl", regions_dir=regions)
    with pytest.raises(DataError, match="expected n_shape <= 300"):
        FlameSpace(space.model_path, n_shape=301, regions_dir=regions)
    wide = write_regions(tmp_path / "wide")
    (wide / "lve.txt").write_text("1,2,3000")  # an index of the 5023-vertex FLAME mesh
    with pytest.raises(DataError, match="lips indices must be non-empty and below the model's 12 vertices"):
        FlameSpace(space.model_path, regions_dir=wide)
