"""The built-in head rig: geometry, symmetry, blendshape regions, jaw, blinks, identities."""
import numpy as np
import pytest

from facemotion.face.arkit import ARKIT_BLENDSHAPES, ARKIT_INDEX, mirror_name
from facemotion.face.rig import LANDMARK_NAMES, load_head_rig

FLIP = np.array([-1.0, 1.0, 1.0], np.float32)


@pytest.fixture(scope="module")
def rig():
    return load_head_rig()


def _aperture(rig, v):
    lm = rig.landmarks
    return float(np.linalg.norm(v[lm["upper_lip_mid"]] - v[lm["lower_lip_mid"]]))


def _pose(rig, **weights):
    w = np.zeros(52, np.float32)
    for k, x in weights.items():
        w[ARKIT_INDEX[k]] = x
    return rig.vertices(w)


def test_mesh_is_a_head_sized_closed_mouth_mesh(rig):
    v, f = rig.neutral, rig.faces
    assert 3000 <= len(v) <= 15000
    assert f.dtype == np.int32 and f.min() >= 0 and f.max() < len(v)
    assert len(np.unique(f)) == len(v)                          # no stray vertices
    skin = v[rig.regions["skin"]]
    head = skin[skin[:, 1] > v[rig.landmarks["chin"], 1] - 1e-6]
    assert 0.14 < np.ptp(head[:, 0]) < 0.18                     # width incl. ears
    assert 0.21 < np.ptp(head[:, 1]) < 0.25                     # chin to crown
    assert _aperture(rig, v) < 0.001                            # lips meet at neutral
    assert set(LANDMARK_NAMES) <= set(rig.landmarks)
    assert {"lips", "upper_face", "eyes", "jaw"} <= set(rig.regions)
    assert len(rig.identity_names) >= 6 and rig.identity_basis.shape == (len(rig.identity_names), len(v), 3)
    assert rig.deltas.shape == (52, len(v), 3)


def test_mesh_and_landmarks_are_mirror_symmetric(rig):
    m = rig.mirror
    assert np.array_equal(m[m], np.arange(len(m)))
    np.testing.assert_allclose(rig.neutral[m] * FLIP, rig.neutral, atol=1e-6)
    lm = rig.landmarks
    for a, b in [("lip_corner_left", "lip_corner_right"), ("upper_eyelid_left", "upper_eyelid_right"),
                 ("lower_eyelid_left", "lower_eyelid_right")]:
        assert m[lm[a]] == lm[b] and rig.neutral[lm[a], 0] > 0.01
    for k in ("upper_lip_mid", "lower_lip_mid", "nose_tip", "chin"):
        assert m[lm[k]] == lm[k]


@pytest.mark.parametrize("name", ARKIT_BLENDSHAPES)
def test_mirrored_pairs_mirror(rig, name):
    d = rig.deltas
    i, j = ARKIT_INDEX[name], ARKIT_INDEX[mirror_name(name)]
    np.testing.assert_allclose(d[j][rig.mirror] * FLIP, d[i], atol=1e-6)


def _region(rig, name):
    """Where blendshape ``name`` may move vertices (boolean [V]), from its name alone."""
    v = rig.neutral
    side = v[:, 0] if "Left" in name else -v[:, 0] if "Right" in name else np.full(len(v), 1.0)
    eye = rig.eye_centers[0] if "Left" in name else rig.eye_centers[1]
    nose_y = v[rig.landmarks["nose_tip"], 1]
    skin = np.zeros(len(v), bool)
    skin[rig.regions["skin"]] = True
    eye_y = rig.eye_centers[0, 1]
    if name.startswith("eye"):
        return (side > 0) & (np.linalg.norm(v - eye, axis=1) < 0.04)
    if name.startswith("brow"):
        return skin & (v[:, 1] > eye_y - 0.005) & (v[:, 2] > 0.03) & (side > -0.005)
    if name.startswith("cheekSquint"):
        return skin & (side > 0) & (v[:, 1] > eye_y - 0.05) & (v[:, 1] < eye_y + 0.005)
    if name == "cheekPuff":
        return skin & (v[:, 1] < eye_y - 0.01) & (v[:, 1] > -0.1)
    if name.startswith("noseSneer"):
        return skin & (side > -0.01) & (np.abs(v[:, 0]) < 0.035) & (v[:, 1] > -0.04) & (v[:, 1] < 0.02)
    assert name.startswith(("mouth", "jaw", "tongue")), name
    lower_face = (v[:, 1] < nose_y) & (np.abs(v[:, 0]) < 0.08)
    whole_mouth = name in ("jawLeft", "jawRight", "mouthLeft", "mouthRight")
    return lower_face & (whole_mouth | (side > -0.015))


@pytest.mark.parametrize("name", ARKIT_BLENDSHAPES)
def test_blendshape_moves_only_its_region(rig, name):
    mag = np.linalg.norm(rig.deltas[ARKIT_INDEX[name]], axis=1)
    assert mag.max() > 0.0015, "shape barely moves anything"
    moved = mag > 1e-5
    outside = moved & ~_region(rig, name)
    assert not outside.any(), f"{outside.sum()} vertices moved outside the region, e.g. {rig.neutral[outside][:3]}"


def test_jaw_open_opens_and_mouth_close_closes(rig):
    opened = _aperture(rig, _pose(rig, jawOpen=1.0))
    assert opened >= 0.015
    assert _aperture(rig, _pose(rig, jawOpen=1.0, mouthClose=1.0)) < 0.003
    assert _aperture(rig, _pose(rig, jawOpen=0.5)) > 0.006
    chin = rig.landmarks["chin"]
    moved = _pose(rig, jawOpen=1.0)[chin] - rig.neutral[chin]
    assert moved[1] < -0.01                                     # chin drops
    # the upper face and the upper lip stay put
    d = rig.deltas[ARKIT_INDEX["jawOpen"]]
    assert np.abs(d[rig.regions["upper_face"]]).max() == 0.0
    assert np.linalg.norm(d[rig.landmarks["upper_lip_mid"]]) < 1e-4


@pytest.mark.parametrize("side", ["Left", "Right"])
def test_blink_closes_the_lid_over_the_eyeball(rig, side):
    lm, s = rig.landmarks, side.lower()
    up, lo = lm[f"upper_eyelid_{s}"], lm[f"lower_eyelid_{s}"]
    v0 = rig.neutral
    assert np.linalg.norm(v0[up] - v0[lo]) > 0.006            # open at neutral
    v = _pose(rig, **{f"eyeBlink{side}": 1.0})
    assert np.linalg.norm(v[up] - v[lo]) < 0.0015
    centre = rig.eye_centers[0 if side == "Left" else 1]
    lid = v[rig.regions[f"eyelid_{s}"]] - centre
    dist = np.linalg.norm(lid, axis=1)
    near_pupil = lid[:, 2] / dist > np.cos(np.deg2rad(8.0))     # lid vertices on the line of sight
    assert near_pupil.any()
    assert (dist[near_pupil] > rig.eye_radius).all()
    other = "right" if s == "left" else "left"
    assert np.linalg.norm(v[lm[f"upper_eyelid_{other}"]] - v[lm[f"lower_eyelid_{other}"]]) > 0.006


@pytest.mark.parametrize("name,axis,sign", [("eyeLookOutLeft", 0, 1), ("eyeLookInLeft", 0, -1),
                                            ("eyeLookUpLeft", 1, 1), ("eyeLookDownLeft", 1, -1)])
def test_eye_look_rotates_the_eyeball(rig, name, axis, sign):
    ball = rig.regions["eyeball_left"]
    pupil = rig.regions["pupil_left"]
    c = rig.eye_centers[0]
    v = _pose(rig, **{name: 1.0})
    np.testing.assert_allclose(np.linalg.norm(v[ball] - c, axis=1), rig.eye_radius, atol=1e-5)
    gaze = v[pupil].mean(0) - c
    assert sign * gaze[axis] > 0.003


def test_identity_parameters_change_the_shape(rig):
    for k, name in enumerate(rig.identity_names):
        assert np.linalg.norm(rig.identity_basis[k], axis=1).max() > 0.001, name
        np.testing.assert_allclose(rig.identity_basis[k][rig.mirror] * FLIP, rig.identity_basis[k], atol=1e-6)
    beta = np.random.default_rng(0).standard_normal(len(rig.identity_names)).astype(np.float32)
    other = rig.with_identity(beta)
    assert np.abs(other.neutral - rig.neutral).max() > 0.002
    assert _aperture(other, other.neutral) < 0.001
    assert _aperture(other, other.vertices(np.eye(52, dtype=np.float32)[ARKIT_INDEX["jawOpen"]])) > 0.015
    width = lambda r: np.ptp(r.neutral[r.regions["skin"], 0])
    wide = rig.with_identity(np.eye(len(rig.identity_names))[rig.identity_names.index("head_width")] * 2)
    assert width(wide) > width(rig) + 0.005
    with pytest.raises(ValueError):
        rig.with_identity(np.zeros(len(rig.identity_names) + 1))
