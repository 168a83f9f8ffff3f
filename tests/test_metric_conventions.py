"""Hand-computed cases of the metrics whose papers differ (LVE conventions) or that DF-3DFace adds
(NLDD, multimodality)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facemotion.face.lips import lip_vertex_error
from facemotion.metrics import fdd, lve, multimodality, nldd


def test_lve_conventions_by_hand():
    gt = np.zeros((2, 3, 3))
    pred = gt.copy()
    pred[0, 0] = [0.003, 0.004, 0]  # 5 mm at lip vertex 0
    pred[0, 1] = [0.001, 0, 0]      # 1 mm at lip vertex 1
    pred[1, 1] = [0, 0.002, 0]      # 2 mm
    pred[1, 2] = [0.010, 0, 0]      # not a lip vertex
    lips = [0, 1]
    assert lve(pred, gt, lips) == pytest.approx((0.005 + 0.002) / 2)                     # m
    assert lve(pred, gt, lips, convention="faceformer") == pytest.approx((25e-6 + 4e-6) / 2)  # m^2
    t = lip_vertex_error(torch.tensor(pred), torch.tensor(gt), lips, convention="faceformer")
    assert float(t) == pytest.approx(14.5e-6)
    with pytest.raises(ValueError, match="convention"):
        lve(pred, gt, lips, convention="meshtalk")


def test_nldd_by_hand():
    template = np.zeros((3, 3))
    gt = np.zeros((2, 3, 3))
    pred = np.zeros((2, 3, 3))
    gt[:, 0, 0] = [0.0, 0.5]      # lip vertex: ignored
    gt[:, 1, 1] = [0.0, 0.2]      # non-lip: |d| = 0, 0.2 -> std 0.1
    gt[:, 2, 2] = [0.1, 0.1]      # std 0
    pred[:, 1, 1] = [0.0, -0.6]   # |d| = 0, 0.6 -> std 0.3 (a norm, not the signed value)
    # gt: mean(0.1, 0) = 0.05; pred: mean(0.3, 0) = 0.15
    assert nldd(pred, gt, [0], template) == pytest.approx(0.1)
    # FDD on the same vertices squares the norm: gt std of (0, 0.04) = 0.02, pred (0, 0.36) = 0.18
    assert fdd(pred, gt, [1, 2], template) == pytest.approx(abs(0.01 - 0.09))


def test_multimodality_by_hand():
    s = np.zeros((4, 2, 1))
    s[2] = [[3.0], [4.0]]  # pair (0, 2): |(3, 4)| = 5
    s[1] = [[1.0], [0.0]]  # pair (1, 3): 1
    assert multimodality(s) == pytest.approx(3.0)
    # point by point (one coordinate a point here): pair (0, 2) (3 + 4) / 2, pair (1, 3) 1 / 2
    assert multimodality(s, point_size=1) == pytest.approx((3.5 + 0.5) / 2)
    with pytest.raises(ValueError, match="even"):
        multimodality(s[:3])


def test_closure_from_track_by_hand():
    from facemotion.face.lips import closure_from_track

    closure, hold = closure_from_track(np.array([0, 0, 0.6, 0.2, 0, 0, 0, 0.9, 0.0]), 25.0, 0.5)
    assert hold.tolist() == [False, False, True, False, False, False, False, True, False]
    # exp(-40 d), d the distance in seconds to the nearest held frame (frames 2 and 7, 40 ms apart)
    d = np.array([2, 1, 0, 1, 2, 2, 1, 0, 1]) / 25.0
    np.testing.assert_allclose(closure, np.exp(-40 * d))
    assert not closure_from_track(np.zeros(4), 25.0, 0.5)[1].any()


def test_close_lips_meets_the_lips_on_held_frames():
    from facemotion.face.arkit import ARKIT_BLENDSHAPES
    from facemotion.face.lips import CLOSURE_JAW, CLOSURE_LIP_ROLL, close_lips

    names = list(ARKIT_BLENDSHAPES)
    w = np.full((3, len(names)), 0.5)
    close_lips(w, names, np.array([0.0, 0.5, 1.0]), np.array([False, False, True]))
    jaw, close = names.index("jawOpen"), names.index("mouthClose")
    np.testing.assert_allclose(w[0], 0.5)                                   # no closure: unchanged
    assert w[1, jaw] == pytest.approx(0.5 * 0.5 + 0.5 * CLOSURE_JAW)         # eased half-way
    assert w[2, jaw] == CLOSURE_JAW and w[2, close] == CLOSURE_JAW
    assert w[2, names.index("mouthFunnel")] == 0 and w[2, names.index("mouthLowerDownLeft")] == 0
    assert w[2, names.index("mouthPressLeft")] == 0.5                        # press at least 0.3
    assert w[2, names.index("mouthRollLower")] == CLOSURE_LIP_ROLL           # a rolled lip parts the lips
    assert w[1, names.index("mouthRollUpper")] == pytest.approx(0.5 * 0.5 + 0.5 * CLOSURE_LIP_ROLL)


def test_close_lips_shuts_the_ict_head_with_rolled_lips():
    from facemotion.face.arkit import ARKIT_BLENDSHAPES
    from facemotion.face.lips import close_lips
    from facemotion.face.space import BlendshapeSpace
    from facemotion.metrics.lipsync import CLOSED_BELOW, aperture_from_motion

    space = BlendshapeSpace()
    names = list(space.names)  # the 52 ARKit blendshapes and the head rotation
    assert names[:52] == list(ARKIT_BLENDSHAPES)
    w = np.zeros((1, len(names)))
    w[0, names.index("jawOpen")], w[0, names.index("mouthRollLower")] = 0.3, 0.26
    w[0, names.index("mouthSmileLeft")] = w[0, names.index("mouthSmileRight")] = 0.6
    assert aperture_from_motion(space, w)[0] > 5e-3
    close_lips(w, names, np.ones(1), np.ones(1, bool))
    assert aperture_from_motion(space, w)[0] < CLOSED_BELOW / 2
