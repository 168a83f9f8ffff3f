"""The built-in head rig (the ICT Face Model): geometry, symmetry, where each shape moves, jaw and
teeth, lids, gaze, identities, and the rig file's errors."""
import numpy as np
import pytest

from facemotion.errors import DataError
from facemotion.face.arkit import ARKIT_BLENDSHAPES, ARKIT_INDEX, mirror_name
from facemotion.face.rig import LANDMARK_NAMES, load_head_rig, read_head_rig

FLIP = np.array([-1.0, 1.0, 1.0], np.float32)
PARTS = ("skin", "mouth_socket", "eye_socket", "gums", "tongue", "teeth", "eyeball_left", "eyeball_right",
         "eyelashes")


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


def _mask(rig, *regions):
    m = np.zeros(rig.num_vertices, bool)
    for r in regions:
        m[rig.regions[r]] = True
    return m


def test_a_human_head_with_its_parts(rig):
    v, f = rig.neutral, rig.faces
    assert 20000 <= len(v) <= 30000
    assert f.dtype == np.int32 and f.shape[1] == 3 and f.min() >= 0 and f.max() < len(v)
    assert len(np.unique(f)) == len(v)                          # no stray vertices
    # the parts partition the mesh
    counts = np.zeros(len(v), int)
    for p in PARTS:
        counts[rig.regions[p]] += 1
    assert (counts == 1).all()
    lm = rig.landmarks
    face_height = v[rig.multipie68[27], 1] - v[lm["chin"], 1]   # nose bridge to chin
    assert 0.09 < face_height < 0.14
    assert 0.055 < np.linalg.norm(rig.eye_centers[0] - rig.eye_centers[1]) < 0.07   # interpupillary
    assert 0.010 < rig.eye_radius < 0.017
    assert _aperture(rig, v) < 0.001                            # lips meet at neutral
    assert set(LANDMARK_NAMES) <= set(rig.landmarks) and rig.multipie68.shape == (68,)
    assert {"lips", "upper_face", "eyes", "jaw", "iris_left", "pupil_right", "eyelid_left"} <= set(rig.regions)
    assert rig.deltas.shape == (52, len(v), 3)
    # the eyeballs are spheres about the eye centres, the pupils inside the irises
    for k, side in enumerate(("left", "right")):
        r = np.linalg.norm(v[rig.regions[f"eyeball_{side}"]] - rig.eye_centers[k], axis=1)
        assert np.median(r) < rig.eye_radius + 1e-3 and r.max() < rig.eye_radius + 3e-3
        assert set(rig.regions[f"pupil_{side}"]) < set(rig.regions[f"iris_{side}"])


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
    twin = {"eyeball_left": "eyeball_right", "eyeball_right": "eyeball_left"}
    for p in PARTS:
        assert set(m[rig.regions[p]]) == set(rig.regions[twin.get(p, p)])


@pytest.mark.parametrize("name", ARKIT_BLENDSHAPES)
def test_mirrored_pairs_mirror(rig, name):
    d = rig.deltas
    i, j = ARKIT_INDEX[name], ARKIT_INDEX[mirror_name(name)]
    np.testing.assert_allclose(d[j][rig.mirror] * FLIP, d[i], atol=1e-6)


@pytest.mark.parametrize("name", ARKIT_BLENDSHAPES)
def test_blendshape_moves_only_where_it_should(rig, name):
    mag = np.linalg.norm(rig.deltas[ARKIT_INDEX[name]], axis=1)
    assert mag.max() > 0.002, "shape barely moves anything"
    v = rig.neutral
    mouth = _mask(rig, "lips", "mouth_socket", "gums", "tongue", "teeth")
    eyes = _mask(rig, "eyeball_left", "eyeball_right")
    if name.startswith(("eye", "brow")):
        assert mag[mouth].max() == 0.0                          # the lips and the mouth stay still
        assert mag[v[:, 1] < v[rig.landmarks["chin"], 1] + 0.03].max() == 0.0
    if name.startswith(("jaw", "mouth", "tongue", "cheekPuff")):
        assert mag[_mask(rig, "upper_face")].max() == 0.0
        assert mag[eyes].max() == 0.0
    if name.startswith(("jaw", "mouth", "tongue")):
        assert v[np.argmax(mag), 1] < v[rig.landmarks["nose_tip"], 1] - 0.01   # moves the lower face most
    if not name.startswith("eyeLook"):
        assert mag[eyes].max() == 0.0                           # only gaze turns the eyeballs
    if not name.startswith(("jaw", "tongue")):
        assert mag[_mask(rig, "teeth", "tongue")].max() == 0.0
    if name.endswith("Left") and not name.startswith(("jaw", "mouthLeft")):
        own, other = mag[v[:, 0] > 0.01].max(), mag[v[:, 0] < -0.01].max()
        assert own > 3 * other, (own, other)                    # a left shape moves the left side


def test_jaw_open_opens_the_lips_and_carries_the_lower_teeth(rig):
    assert _aperture(rig, _pose(rig, jawOpen=1.0)) >= 0.030
    assert _aperture(rig, _pose(rig, jawOpen=0.3)) >= 0.010
    assert _aperture(rig, _pose(rig, jawOpen=1.0, mouthClose=1.0)) < _aperture(rig, _pose(rig, jawOpen=1.0)) - 0.02
    d = rig.deltas[ARKIT_INDEX["jawOpen"]]
    teeth = rig.regions["teeth"]
    lower = teeth[rig.neutral[teeth, 1] < rig.neutral[rig.landmarks["upper_lip_mid"], 1] - 0.007]
    upper = teeth[rig.neutral[teeth, 1] > rig.neutral[rig.landmarks["upper_lip_mid"], 1] + 0.005]
    assert len(lower) > 500 and len(upper) > 500
    assert (d[lower, 1] < -0.005).mean() > 0.95                 # lower teeth drop with the jaw
    assert np.abs(d[upper]).max() == 0.0                        # the upper teeth stay
    chin = rig.landmarks["chin"]
    assert d[chin, 1] < -0.01
    assert np.linalg.norm(d[rig.landmarks["upper_lip_mid"]]) < 0.003


@pytest.mark.parametrize("side", ["Left", "Right"])
def test_blink_closes_its_lids_and_leaves_the_other_eye(rig, side):
    lm, s = rig.landmarks, side.lower()
    other = "right" if s == "left" else "left"
    gap = lambda v, e: float(np.linalg.norm(v[lm[f"upper_eyelid_{e}"]] - v[lm[f"lower_eyelid_{e}"]]))
    v0 = rig.neutral
    assert gap(v0, s) > 0.008                                   # open at neutral
    v = _pose(rig, **{f"eyeBlink{side}": 1.0})
    assert gap(v, s) < 0.002
    assert gap(v, other) == pytest.approx(gap(v0, other), abs=1e-4)
    np.testing.assert_array_equal(v[rig.regions[f"eyelid_{other}"]], v0[rig.regions[f"eyelid_{other}"]])


@pytest.mark.parametrize("name,axis,sign", [("eyeLookOutLeft", 0, 1), ("eyeLookInLeft", 0, -1),
                                            ("eyeLookUpLeft", 1, 1), ("eyeLookDownLeft", 1, -1),
                                            ("eyeLookOutRight", 0, -1), ("eyeLookInRight", 0, 1)])
def test_eye_look_turns_the_eyeball(rig, name, axis, sign):
    side = "left" if name.endswith("Left") else "right"
    k = 0 if side == "left" else 1
    ball, pupil, c = rig.regions[f"eyeball_{side}"], rig.regions[f"pupil_{side}"], rig.eye_centers[k]
    v0, v = rig.neutral, _pose(rig, **{name: 1.0})
    np.testing.assert_allclose(np.linalg.norm(v[ball] - c, axis=1), np.linalg.norm(v0[ball] - c, axis=1), atol=1e-5)
    gaze = v[pupil].mean(0) - c
    gaze0 = v0[pupil].mean(0) - c
    assert sign * (gaze - gaze0)[axis] > 0.004
    other = rig.regions[f"eyeball_{'right' if side == 'left' else 'left'}"]
    np.testing.assert_array_equal(v[other], v0[other])


def test_tongue_out_pushes_the_tongue_past_the_lips(rig):
    v = _pose(rig, jawOpen=0.4, tongueOut=1.0)
    tip_z = v[rig.regions["tongue"], 2].max()
    assert tip_z > rig.neutral[rig.landmarks["lower_lip_mid"], 2] - 0.002


def test_identity_changes_the_shape_not_the_topology(rig):
    k = len(rig.identity_names)
    assert k >= 40 and rig.identity_basis.shape == (k, rig.num_vertices, 3)
    norms = np.linalg.norm(rig.identity_basis.reshape(k, -1), axis=1)
    assert (np.diff(norms[:10]) < 0).all()                       # ordered by variance
    for b in rig.identity_basis[:5]:
        np.testing.assert_allclose(b[rig.mirror] * FLIP, b, atol=2e-5)
    beta = np.random.default_rng(0).standard_normal(k).astype(np.float32)
    other = rig.with_identity(beta)
    assert np.abs(other.neutral - rig.neutral).max() > 0.003
    assert other.faces is rig.faces and other.deltas is rig.deltas
    assert _aperture(other, other.neutral) < 0.002
    assert _aperture(other, other.vertices(np.eye(52, dtype=np.float32)[ARKIT_INDEX["jawOpen"]])) > 0.03
    # the eyeballs travel with the face: still centred on the new eye centres
    ball = other.neutral[rig.regions["eyeball_left"]]
    assert np.linalg.norm(np.median(ball, 0) - other.eye_centers[0]) < np.linalg.norm(
        np.median(rig.neutral[rig.regions["eyeball_left"]], 0) - rig.eye_centers[0]) + 5e-4
    with pytest.raises(ValueError):
        rig.with_identity(np.zeros(k + 1))


def test_rig_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "rig.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="rig.npz"):
        read_head_rig(bad)
    np.savez(bad, neutral=np.zeros((3, 3)))
    with pytest.raises(DataError, match="rig.npz"):
        read_head_rig(bad)
