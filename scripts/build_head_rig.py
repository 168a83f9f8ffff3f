"""Build the built-in head rig (``src/facemotion/face/data/head_rig.npz``) from the ICT Face Model.

Input: the ICT Face Model Light repacked as ``ict_facekit_light.npz`` + ``vertex_indices.json``
(``../shared/assets/ict_facekit/``; USC ICT, MIT licence, copied beside the output as
``ICT_FACEKIT_LICENSE``). What the script does:

- centimetres -> metres; quads split into triangles; the transparent overlay meshes (lacrimal
  fluid, eye blend, eye occlusion), which need alpha textures, are dropped;
- a mirror map under ``x -> -x`` (mutual nearest neighbours, the rest by optimal assignment);
  the neutral, every identity mode and every symmetric shape are symmetrised through it, and
  each ``...Right`` shape is the exact mirror of its ``...Left`` twin (the mean of ICT's ``_L``
  and the mirrored ``_R``);
- the 52 ARKit shapes in Apple's order: ICT's ``X_L``/``X_R`` -> ``XLeft``/``XRight``, the split
  ``browInnerUp_L/_R`` and ``cheekPuff_L/_R`` summed into ARKit's single shapes; ``mouthClose``
  scaled so that, as in ARKit, it shuts the lips that ``jawOpen`` at the same weight opened
  (ICT's left 18 % of the opening); eye and brow shapes faded out over the lips and mouth, jaw
  and mouth shapes over the upper face (the scans move everything a little); ``eyeLook*`` add
  a rotation of the eyeball about its fitted centre (ICT's shapes only move the lids);
  ``tongueOut`` (ICT has none) pushes the tongue forward and down, more at its tip;
- the first :data:`IDENTITY_MODES` identity modes (the OBJ at one unit of its coefficient, which
  is about one standard deviation of the scans: the mode norms fall from 61 cm to 1 cm);
- landmarks (lip midpoints on the inner lip line, lip corners, eyelid margins, nose tip, chin,
  and the 68 Multi-PIE landmarks), regions and parts, eye centres and radius, neck pivot.

Deltas and identity modes are stored as float16 (error <= 0.005 mm), the deltas only for the
vertices each shape moves by more than :data:`MOVE_EPS` metres.

Run: ``python scripts/build_head_rig.py [--ict DIR] [--out PATH]``. Deterministic.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
from skimage.measure import points_in_poly

from facemotion.face.arkit import ARKIT_BLENDSHAPES, ARKIT_INDEX, mirror_name

ROOT = Path(__file__).resolve().parents[1]
FLIP = np.array([-1.0, 1.0, 1.0])
IDENTITY_MODES = 60          # of ICT's 100: 99.15 % of the summed squared displacement of all 100
MOVE_EPS = 1e-5              # m: a shape "moves" a vertex by more than this; less is set to 0
UPPER_FADE = (0.004, 0.014)  # m above the upper lip's top over which eye and brow shapes fade in
LOWER_FADE = (-0.040, -0.024)  # m about the eye centres' height over which mouth shapes fade out
EYE_LOOK_DEG = {"eyeLookUp": 25.0, "eyeLookDown": 28.0, "eyeLookIn": 32.0, "eyeLookOut": 32.0}
IRIS_DEG, PUPIL_DEG = 23.0, 9.0  # half-angles of the iris and pupil about the gaze axis
TONGUE_OUT = np.array([0.0, -0.004, 0.035])  # m, displacement of the tongue tip at weight 1
# ICT vertex ranges (SOURCE.md) and the parts kept
PARTS = {"face": (0, 9409), "head": (9409, 11248), "mouth_socket": (11248, 13294),
         "eye_socket": (13294, 14062), "gums_tongue": (14062, 17039), "teeth": (17039, 21451),
         "eyeballs": (21451, 24591), "overlays": (24591, 25351), "eyelashes": (25351, 26719)}
LOWER_LASH_TOP_CM = 3.6     # ICT's lower lash cards reach up to 3.4 cm, the upper ones to 4.1
# Multi-PIE 68 landmark numbers (0-based) used for the named landmarks
MP_LIP_OUTER = range(48, 60)
MP_NOSE_TIP, MP_CHIN, MP_UPPER_OUTER, MP_UPPER_INNER, MP_LOWER_INNER = 30, 8, 51, 62, 66


def mirror_map(v: np.ndarray) -> np.ndarray:
    """``[V]`` index of each vertex's mirror image under ``x -> -x`` (an involution)."""
    tree = cKDTree(v)
    _, nn = tree.query(v * FLIP)
    mutual = nn[nn] == np.arange(len(v))
    rest = np.flatnonzero(~mutual)
    # the rest (seam duplicates, slightly asymmetric spots): greedy matching by distance, a
    # vertex may be its own mirror (on the midline)
    cost = np.linalg.norm((v[rest] * FLIP)[:, None] - v[rest][None], axis=-1)
    cost = cost + cost.T
    free = np.ones(len(rest), bool)
    for flat in np.argsort(cost, axis=None):
        a, b = np.unravel_index(flat, cost.shape)
        if free[a] and free[b]:
            nn[rest[a]], nn[rest[b]] = rest[b], rest[a]
            free[a] = free[b] = False
    if not np.array_equal(nn[nn], np.arange(len(v))):
        raise RuntimeError("mirror map is not an involution")
    return nn


def mirrored(d: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    """The mirror image of per-vertex vectors ``d [..., V, 3]``."""
    return d[..., mirror, :] * FLIP


def fit_sphere(p: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares sphere through points ``[n, 3]`` -> (centre [3], radius)."""
    a = np.c_[2 * p, np.ones(len(p))]
    sol, *_ = np.linalg.lstsq(a, (p ** 2).sum(1), rcond=None)
    centre = sol[:3]
    return centre, float(np.sqrt(sol[3] + centre @ centre))


def rotation(axis: str, angle: float) -> np.ndarray:
    """3×3 rotation by ``angle`` radians about the x or y axis."""
    c, s = np.cos(angle), np.sin(angle)
    if axis == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def smoothstep(t):
    """Hermite ramp ``3t² − 2t³`` of ``t`` clipped to [0, 1] (array in, array out)."""
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def triangles(quads: np.ndarray) -> np.ndarray:
    """ICT polygons ``[F, 4]`` (``-1`` in the last slot for a triangle) -> ``[F', 3]``."""
    quad = quads[:, 3] >= 0
    return np.concatenate([quads[:, [0, 1, 2]], quads[quad][:, [0, 2, 3]]]).astype(np.int32)


def components(faces: np.ndarray, num_vertices: int) -> np.ndarray:
    """``[V]`` connected-component label of each vertex of the triangle mesh ``faces [F, 3]``."""
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]]])
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(num_vertices,) * 2)
    return connected_components(graph, directed=False)[1]


def build(ict_dir: Path) -> dict[str, np.ndarray]:
    """All arrays of the rig file (see :func:`facemotion.face.rig.read_head_rig`)."""
    with np.load(ict_dir / "ict_facekit_light.npz") as z:
        ict = {k: z[k] for k in z.files}
    indices = json.loads((ict_dir / "vertex_indices.json").read_text())
    keep = np.ones(len(ict["neutral"]), bool)
    keep[slice(*PARTS["overlays"])] = False
    # the lower eyelash cards hang below the eye as wide strips that only an alpha texture thins
    # into lashes: drop them, keep the upper ones (a dark lash line)
    card = components(triangles(ict["faces"]), len(keep))
    lash = np.arange(*PARTS["eyelashes"])
    top = np.full(card.max() + 1, -np.inf)
    np.maximum.at(top, card[lash], ict["neutral"][lash, 1])
    keep[lash[top[card[lash]] < LOWER_LASH_TOP_CM]] = False
    new_index = np.cumsum(keep) - 1
    part = {k: new_index[np.arange(a, b)[keep[a:b]]].astype(np.int32)   # kept vertices, new indices
            for k, (a, b) in PARTS.items() if k != "overlays"}

    v = ict["neutral"].astype(np.float64)[keep] * 0.01
    tris = triangles(ict["faces"])
    tris = tris[keep[tris].all(1)]
    faces = new_index[tris].astype(np.int32)
    mirror = np.arange(len(v))
    for ix in part.values():                 # parts map onto themselves
        mirror[ix] = ix[mirror_map(v[ix])]
    v = 0.5 * (v + mirrored(v, mirror))
    V = len(v)

    names = [str(n) for n in ict["expression_names"]]
    expr = {n: ict["expression_deltas"][i].astype(np.float64)[keep] * 0.01 for i, n in enumerate(names)}
    ident = ict["identity_deltas"][:IDENTITY_MODES].astype(np.float64)[:, keep] * 0.01
    ident = 0.5 * (ident + mirrored(ident, mirror))

    # eyeballs: each eye is an outer shell (sclera with the cornea's bulge, ICT's "sclera") around an
    # inner one (ICT's "iris"); centre and radius from a sphere fitted to the outer shell less
    # its cornea, gaze axis toward the cornea
    balls = part["eyeballs"]
    eyeball = {"left": balls[v[balls, 0] > 0], "right": balls[v[balls, 0] < 0]}
    outer = eyeball["left"][:770]                     # ICT lists the sclera shell first
    centre_l, r = fit_sphere(v[outer])
    bulge = np.linalg.norm(v[outer] - centre_l, axis=1) - r
    centre_l, r = fit_sphere(v[outer][bulge < 0.5 * bulge.max()])
    gaze = (v[outer] - centre_l)[bulge > 0.5 * bulge.max()].mean(0)
    gaze_l = gaze / np.linalg.norm(gaze)
    eye_centers = np.stack([centre_l, centre_l * FLIP])

    def shape(arkit: str) -> np.ndarray:
        """ICT's delta of an ARKit shape (``XLeft`` -> ``X_L``; the split shapes summed)."""
        if arkit in ("browInnerUp", "cheekPuff"):
            return expr[arkit + "_L"] + expr[arkit + "_R"]
        if arkit == "tongueOut":
            return np.zeros_like(v)
        if arkit in expr:
            return expr[arkit].copy()
        return expr[arkit[:-4] + "_L"] if arkit.endswith("Left") else expr[arkit[:-5] + "_R"]

    deltas = np.zeros((len(ARKIT_BLENDSHAPES), V, 3))
    for i, name in enumerate(ARKIT_BLENDSHAPES):
        if name.endswith("Right"):
            continue
        d = shape(name)
        if name.endswith("Left"):
            d = 0.5 * (d + mirrored(shape(mirror_name(name)), mirror))
        look = next((k for k in EYE_LOOK_DEG if name.startswith(k)), None)
        if look is not None:
            angle = np.deg2rad(EYE_LOOK_DEG[look])
            axis, sign = {"eyeLookUp": ("x", -1), "eyeLookDown": ("x", 1),
                          "eyeLookIn": ("y", -1), "eyeLookOut": ("y", 1)}[look]
            rot = rotation(axis, sign * angle)
            p = v[eyeball["left"]] - centre_l
            d[eyeball["left"]] = p @ rot.T - p      # the right eye follows by mirroring
        deltas[i] = d
    # tongueOut: tongue vertices (gums/tongue moved by the jaw, inside the lower dental arch)
    lower_teeth = part["teeth"][np.linalg.norm(expr["jawOpen"][part["teeth"]], axis=1) > 1e-3]
    gt = part["gums_tongue"]
    lower = gt[np.linalg.norm(expr["jawOpen"][gt], axis=1) > 1e-3]
    dist_teeth, _ = cKDTree(v[lower_teeth]).query(v[lower])
    tongue = lower[(dist_teeth > 0.003) & (v[lower, 1] > v[lower_teeth, 1].min())]
    z = v[tongue, 2]
    w_tip = smoothstep((z - z.min()) / (z.max() - z.min())) ** 1.5
    deltas[ARKIT_INDEX["tongueOut"], tongue] = w_tip[:, None] * TONGUE_OUT
    mp = np.asarray(indices["idx_to_landmark_verts"])
    lm_ids = new_index[mp]
    # ARKit's mouthClose shuts the lips whatever jawOpen opened (the pair at equal weights meets
    # the lips); ICT's leaves 18 % of jawOpen's opening, so scale it until the lips meet
    up, lo = lm_ids[MP_UPPER_INNER], lm_ids[MP_LOWER_INNER]
    jaw_gap = (deltas[ARKIT_INDEX["jawOpen"], up] - deltas[ARKIT_INDEX["jawOpen"], lo])
    close_gap = (deltas[ARKIT_INDEX["mouthClose"], up] - deltas[ARKIT_INDEX["mouthClose"], lo])
    deltas[ARKIT_INDEX["mouthClose"]] *= -(jaw_gap @ close_gap) / (close_gap @ close_gap)
    # unpaired shapes symmetric; "Right" shapes the mirrors of "Left" ones
    for i, name in enumerate(ARKIT_BLENDSHAPES):
        j = ARKIT_INDEX[mirror_name(name)]
        if i == j:
            deltas[i] = 0.5 * (deltas[i] + mirrored(deltas[i], mirror))
        elif name.endswith("Right"):
            deltas[i] = mirrored(deltas[j], mirror)
    # confine the scans' far-field motion: eye and brow shapes leave the lips and the mouth's
    # inside still (LVE's region), jaw, mouth, tongue and cheekPuff the upper face (FDD's region)
    lip_y = v[lm_ids[MP_UPPER_OUTER], 1]
    mouth = np.zeros(V, bool)
    mouth[np.concatenate([part[k] for k in ("mouth_socket", "gums_tongue", "teeth")])] = True
    upper_w = smoothstep((v[:, 1] - lip_y - UPPER_FADE[0]) / (UPPER_FADE[1] - UPPER_FADE[0])) * ~mouth
    lower_w = 1.0 - smoothstep((v[:, 1] - centre_l[1] - LOWER_FADE[0]) / (LOWER_FADE[1] - LOWER_FADE[0]))
    for i, name in enumerate(ARKIT_BLENDSHAPES):
        if name.startswith(("eye", "brow")):
            deltas[i] *= upper_w[:, None]
        elif name.startswith(("jaw", "mouth", "tongue", "cheekPuff")):
            deltas[i] *= lower_w[:, None]
    deltas[np.linalg.norm(deltas, axis=-1) < MOVE_EPS] = 0.0

    # landmarks
    lm = {"upper_lip_mid": lm_ids[MP_UPPER_INNER], "lower_lip_mid": lm_ids[MP_LOWER_INNER],
          "lip_corner_left": lm_ids[54], "lip_corner_right": lm_ids[48],
          "nose_tip": lm_ids[MP_NOSE_TIP], "chin": lm_ids[MP_CHIN]}
    if v[lm["lip_corner_left"], 0] < 0:
        lm["lip_corner_left"], lm["lip_corner_right"] = lm["lip_corner_right"], lm["lip_corner_left"]
    blink = np.linalg.norm(deltas[ARKIT_INDEX["eyeBlinkLeft"]], axis=1)
    skin_face = part["face"]
    up = int(skin_face[np.argmax(blink[skin_face])])
    closed = v + deltas[ARKIT_INDEX["eyeBlinkLeft"]]
    below = skin_face[(v[skin_face, 1] < v[up, 1] - 0.004) & (blink[skin_face] < 0.5 * blink[up])]
    lo = int(below[np.argmin(np.linalg.norm(closed[below] - closed[up], axis=1))])
    lm.update(upper_eyelid_left=up, lower_eyelid_left=lo,
              upper_eyelid_right=int(mirror[up]), lower_eyelid_right=int(mirror[lo]))

    # regions
    regions: dict[str, np.ndarray] = {}
    skin = np.concatenate([part["face"], part["head"]])
    regions["skin"] = skin
    for k in ("mouth_socket", "eye_socket", "teeth", "eyelashes"):
        regions[k] = part[k]
    regions["tongue"] = np.sort(tongue)
    regions["gums"] = np.setdiff1d(part["gums_tongue"], tongue)
    ball = eyeball["left"]
    cos = (v[ball] - centre_l) @ gaze_l / np.linalg.norm(v[ball] - centre_l, axis=1)
    lid = np.flatnonzero((v[:, 0] > 0) & (blink > 0.0005))
    left = {"eyeball": ball, "iris": ball[cos > np.cos(np.deg2rad(IRIS_DEG))],
            "pupil": ball[cos > np.cos(np.deg2rad(PUPIL_DEG))], "eyelid": np.intersect1d(lid, skin)}
    for k, ix in left.items():
        regions[f"{k}_left"] = ix
        regions[f"{k}_right"] = mirror[ix]
    regions["eyes"] = np.concatenate([regions[k] for k in ("eyeball_left", "eyeball_right", "eyelid_left", "eyelid_right")])
    lip_poly = v[lm_ids[list(MP_LIP_OUTER)], :2]
    regions["lips"] = _inside_lips(v, part["face"], lip_poly, lm, margin=0.003)
    jaw_move = np.linalg.norm(deltas[ARKIT_INDEX["jawOpen"]], axis=1)
    regions["jaw"] = np.flatnonzero(jaw_move > 0.5 * jaw_move[lm["chin"]])
    front = part["face"][v[part["face"], 2] > v[lm["lip_corner_left"], 2] - 0.03]
    eye_y = eye_centers[0, 1]
    regions["upper_face"] = np.union1d(front[v[front, 1] > eye_y - 0.022], regions["eyes"])

    # neck pivot: on the midline 2 cm below the lip corners, 3 cm behind the ends of the jaw
    # line (Multi-PIE 0 and 16)
    ears_z = v[lm_ids[[0, 16]], 2].mean()
    neck_pivot = np.array([0.0, v[lm["lip_corner_left"], 1] - 0.02, ears_z - 0.03])

    arrays = {
        "neutral": v.astype(np.float32), "faces": faces,
        "blendshape_names": np.array(ARKIT_BLENDSHAPES),
        "identity_names": np.array([f"identity{k:03d}" for k in range(IDENTITY_MODES)]),
        "identity_basis": ident.astype(np.float16),
        "neck_pivot": neck_pivot.astype(np.float32),
        "landmark_names": np.array(list(lm)), "landmark_indices": np.array([int(i) for i in lm.values()], np.int32),
        "multipie68": lm_ids.astype(np.int32),
        "mirror": mirror.astype(np.int32), "eye_centers": eye_centers.astype(np.float32), "eye_radius": np.float32(r),
    }
    moved = [np.flatnonzero(np.linalg.norm(d, axis=1) > 0) for d in deltas]
    arrays["delta_counts"] = np.array([len(m) for m in moved], np.int64)
    arrays["delta_vertices"] = np.concatenate(moved).astype(np.int32)
    arrays["delta_values"] = np.concatenate([d[m] for d, m in zip(deltas, moved)]).astype(np.float16)
    for k, ix in regions.items():
        arrays[f"region_{k}"] = np.unique(np.asarray(ix)).astype(np.int32)
    return arrays


def _inside_lips(v, candidates, poly, lm, margin):
    """Face vertices inside the outer lip contour ``poly [12, 2]`` (x, y) grown by ``margin`` m."""
    centre = poly.mean(0)
    grown = centre + (poly - centre) * (1 + margin / np.linalg.norm(poly - centre, axis=1, keepdims=True))
    inside = points_in_poly(v[candidates, :2], grown)
    near_front = v[candidates, 2] > v[lm["lip_corner_left"], 2] - 0.01
    return candidates[inside & near_front]


def main(argv=None):
    """Build the rig and write it atomically to ``--out`` (default: the package data file)."""
    default = ROOT / "src" / "facemotion" / "face" / "data" / "head_rig.npz"
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ict", type=Path, default=ROOT.parent / "shared" / "assets" / "ict_facekit")
    ap.add_argument("--out", type=Path, default=default)
    args = ap.parse_args(argv)
    arrays = build(args.ict)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".npz", dir=args.out.parent)
    os.close(fd)
    try:
        np.savez_compressed(tmp, **arrays)
        os.chmod(tmp, 0o644)
        os.replace(tmp, args.out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    shutil.copyfile(args.ict / "LICENSE", args.out.parent / "ICT_FACEKIT_LICENSE")
    print(f"{args.out}: {len(arrays['neutral'])} vertices, {len(arrays['faces'])} triangles, "
          f"{len(arrays['delta_vertices'])} moved vertices in 52 shapes, "
          f"{len(arrays['identity_names'])} identity modes, {args.out.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
