"""Build the built-in head rig (``src/facemotion/face/data/head_rig.npz``).

The head is written from scratch: a signed-distance function of smoothly blended
ellipsoids and capsules (skull, face, jaw, chin, cheekbones, brow ridge, nose, lips,
ears, neck) with a mouth pocket (slit + oral cavity) and eye sockets, meshed once with
marching cubes, smoothed, and made exactly mirror-symmetric. The mouth slit is then
closed by a vertical squeeze so upper and lower lip touch at neutral. Eyeballs, eyelids
(a spherical shell with an almond opening) and a tongue are separate parametric parts.
The 52 ARKit blendshapes are displacement fields: skinned rotations for the jaw, eye
and lid rotations about the eye centres, and compactly supported (Wendland) falloffs
around named anchors for the rest. "Right" shapes are exact mirrors of "Left" shapes.

Run: ``python scripts/build_head_rig.py [--out PATH]``. Deterministic (no randomness).
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import trimesh
from scipy.spatial import cKDTree
from skimage.measure import marching_cubes

from facemotion.face.arkit import ARKIT_BLENDSHAPES, ARKIT_INDEX, mirror_name

VOXEL = 0.003                       # marching-cubes spacing (m)
EYE = np.array([0.031, 0.024, 0.064])  # left eye centre (x > 0 is the subject's left)
EYE_R = 0.0120                      # eyeball radius
SOCKET_R = 0.0165                   # eye socket radius (carved from the skin)
SOCKET_SHIFT = np.array([0.0, 0.0, 0.004])  # socket centre relative to the eye centre
MOUTH_Y = -0.050                    # height of the mouth slit
MOUTH_Z = 0.097                     # front of the lips
MOUTH_HALF_W = 0.025                # half width of the mouth slit (corner x)
SLIT_HALF_H = 0.0033                # half height of the carved slit before closing
JAW_HINGE = np.array([0.0, -0.008, -0.005])
JAW_OPEN_DEG = 18.0
NECK_PIVOT = np.array([0.0, -0.075, -0.02])


# ----------------------------------------------------------------------------- SDF
def _ellipsoid(p, c, r):
    q = (p - c) / r
    k0 = np.linalg.norm(q, axis=-1)
    k1 = np.linalg.norm(q / r, axis=-1)
    return k0 * (k0 - 1.0) / np.maximum(k1, 1e-9)


def _capsule(p, a, b, ra, rb):
    ab = b - a
    t = np.clip(((p - a) @ ab) / (ab @ ab), 0.0, 1.0)
    return np.linalg.norm(p - (a + t[..., None] * ab), axis=-1) - (ra + (rb - ra) * t)


def _smin(a, b, k):
    h = np.maximum(k - np.abs(a - b), 0.0) / k
    return np.minimum(a, b) - h * h * k * 0.25


def _smax(a, b, k):
    return -_smin(-a, -b, k)


def _mirror_x(c):
    return c * np.array([-1.0, 1.0, 1.0])


def _pair(p, fn, *args):
    """Union of a feature on the left and its mirror on the right."""
    return np.minimum(fn(p, *args), fn(p * np.array([-1.0, 1.0, 1.0]), *args))


def head_sdf(p):
    """Signed distance (approx., metres, < 0 inside) of the skin surface, ``p [..., 3]``."""
    e = _ellipsoid
    d = e(p, np.array([0.0, 0.030, -0.012]), np.array([0.076, 0.086, 0.097]))        # cranium
    d = _smin(d, e(p, np.array([0.0, -0.005, 0.028]), np.array([0.064, 0.068, 0.062])), 0.02)  # mid face
    d = _smin(d, e(p, np.array([0.0, -0.062, 0.020]), np.array([0.058, 0.046, 0.060])), 0.025)  # jaw
    d = _smin(d, e(p, np.array([0.0, -0.094, 0.057]), np.array([0.029, 0.020, 0.022])), 0.02)   # chin
    d = _smin(d, _pair(p, e, np.array([0.044, 0.000, 0.062]), np.array([0.022, 0.016, 0.020])), 0.015)  # cheekbones
    d = _smin(d, e(p, np.array([0.0, 0.046, 0.068]), np.array([0.058, 0.013, 0.019])), 0.015)   # brow ridge
    d = _smin(d, _pair(p, e, np.array([0.034, -0.040, 0.064]), np.array([0.020, 0.022, 0.018])), 0.02)  # cheeks
    # nose: bridge, tip, alae
    d = _smin(d, _capsule(p, np.array([0.0, 0.034, 0.081]), np.array([0.0, -0.010, 0.104]), 0.0065, 0.0085), 0.01)
    d = _smin(d, e(p, np.array([0.0, -0.013, 0.102]), np.array([0.0105, 0.010, 0.011])), 0.006)
    d = _smin(d, _pair(p, e, np.array([0.0125, -0.018, 0.090]), np.array([0.0075, 0.0075, 0.008])), 0.006)
    # lips
    d = _smin(d, e(p, np.array([0.0, MOUTH_Y + 0.0062, MOUTH_Z - 0.0105]), np.array([0.027, 0.0095, 0.0105])), 0.008)
    d = _smin(d, e(p, np.array([0.0, MOUTH_Y - 0.0072, MOUTH_Z - 0.0115]), np.array([0.024, 0.0100, 0.0105])), 0.008)
    # ears and neck
    d = _smin(d, _pair(p, e, np.array([0.075, 0.008, -0.012]), np.array([0.011, 0.030, 0.017])), 0.008)
    neck = np.maximum(
        np.linalg.norm((p[..., [0, 2]] - np.array([0.0, -0.018])) / np.array([0.052, 0.050]), axis=-1) * 0.05 - 0.05,
        np.maximum(-0.165 - p[..., 1], p[..., 1] + 0.02))
    d = _smin(d, neck, 0.03)
    # nostrils
    d = _smax(d, -_pair(p, e, np.array([0.0065, -0.022, 0.096]), np.array([0.0035, 0.0025, 0.0045])), 0.002)
    # mouth pocket: slit + oral cavity
    slit = e(p, np.array([0.0, MOUTH_Y, MOUTH_Z - 0.012]), np.array([MOUTH_HALF_W, SLIT_HALF_H, 0.022]))
    cavity = e(p, np.array([0.0, MOUTH_Y - 0.006, 0.055]), np.array([0.024, 0.016, 0.028]))
    d = _smax(d, -_smin(slit, cavity, 0.006), 0.002)
    # eye sockets
    d = _smax(d, -_pair(p, lambda q: np.linalg.norm(q - EYE - SOCKET_SHIFT, axis=-1) - SOCKET_R), 0.002)
    return d


def _axis(lo, hi, fine, coarse, fine_lo, fine_hi, ramp=0.02):
    """Grid coordinates from ``lo`` to ``hi``: spacing ``fine`` inside [fine_lo, fine_hi], ``coarse`` outside."""
    out = [lo]
    while out[-1] < hi:
        c = out[-1]
        outside = max(fine_lo - c, c - fine_hi, 0.0)
        out.append(c + fine + (coarse - fine) * min(outside / ramp, 1.0))
    return np.array(out)


def build_skin():
    """Marching-cubes skin on a grid that is finer over the face; Taubin-smoothed, exactly symmetric.

    Returns (verts [V, 3] float64 metres, faces [F, 3] int32).
    """
    half = _axis(0.0, 0.095, 0.0038, 0.0070, -1.0, 0.05)
    xs = np.concatenate([-half[:0:-1], half])
    ys = _axis(-0.150, 0.125, 0.0036, 0.0070, -0.118, 0.06)
    zs = _axis(-0.118, 0.125, 0.0034, 0.0070, 0.035, 1.0)
    grid = np.stack(np.meshgrid(xs, ys, zs, indexing="ij"), -1)
    vol = head_sdf(grid)
    vol = 0.5 * (vol + vol[::-1])
    v, f, _, _ = marching_cubes(vol, 0.0)
    idx = [np.arange(len(a)) for a in (xs, ys, zs)]
    v = np.stack([np.interp(v[:, k], idx[k], a) for k, a in enumerate((xs, ys, zs))], -1)
    mesh = trimesh.Trimesh(v, f, process=True)
    if mesh.volume < 0:
        mesh.invert()
    mesh = max(mesh.split(only_watertight=False), key=lambda m: len(m.vertices))
    v, f = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    mirror = mirror_map(v, tol=1e-6)
    v = symmetrize(v, mirror)
    mesh = trimesh.Trimesh(v, f, process=False)
    trimesh.smoothing.filter_taubin(mesh, lamb=0.5, nu=-0.53, iterations=12)
    v = symmetrize(np.asarray(mesh.vertices), mirror)
    return v, f.astype(np.int32)


def mirror_map(v, tol=1e-7):
    """Index of each vertex's mirror image under x -> -x, ``[V]``; raises if one is missing."""
    dist, idx = cKDTree(v).query(v * np.array([-1.0, 1.0, 1.0]))
    if dist.max() > tol:
        raise RuntimeError(f"mesh is not mirror-symmetric (max mismatch {dist.max():.2e} m)")
    return idx


def symmetrize(v, mirror):
    out = 0.5 * (v + v[mirror] * np.array([-1.0, 1.0, 1.0]))
    return out


# ----------------------------------------------------------------------------- helpers
FLIP = np.array([-1.0, 1.0, 1.0])


def _smooth01(t):
    t = np.clip(t, 0.0, 1.0)
    return t * t * t * (t * (6.0 * t - 15.0) + 10.0)


def band(u, inner, outer):
    """1 for ``|u| <= inner``, smoothly 0 at ``|u| >= outer`` (C2, compact support)."""
    return 1.0 - _smooth01((np.abs(u) - inner) / (outer - inner))


def kernel(p, centre, inner, outer):
    """Product of per-axis plateaus around ``centre``: ``p [N, 3] -> [N]`` in [0, 1]."""
    q = p - np.asarray(centre)
    return np.prod([band(q[:, k], inner[k], outer[k]) for k in range(3)], axis=0)


def rot_x(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rot_y(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def rotation_delta(p, centre, rot):
    """Displacement ``[N, 3]`` of points rotated by ``rot [3, 3]`` about ``centre``."""
    return (p - centre) @ rot.T + centre - p


def uv_sphere(n_lat, n_lon):
    """Unit sphere with poles on +-z, longitudes symmetric under x -> -x. Returns (dirs, faces)."""
    th = np.pi * np.arange(1, n_lat) / n_lat
    ph = 2 * np.pi * np.arange(n_lon) / n_lon
    T, P = np.meshgrid(th, ph, indexing="ij")
    d = np.stack([np.sin(T) * np.sin(P), np.sin(T) * np.cos(P), np.cos(T)], -1).reshape(-1, 3)
    d = np.concatenate([[[0, 0, 1.0]], d, [[0, 0, -1.0]]])
    faces = []
    ring = lambda i, j: 1 + i * n_lon + j % n_lon
    for j in range(n_lon):
        faces.append([0, ring(0, j), ring(0, j + 1)])
        faces.append([len(d) - 1, ring(n_lat - 2, j + 1), ring(n_lat - 2, j)])
        for i in range(n_lat - 2):
            a, b, c, e = ring(i, j), ring(i + 1, j), ring(i + 1, j + 1), ring(i, j + 1)
            faces += [[a, b, c], [a, c, e]]
    return d, _orient_outward(d, np.array(faces), np.zeros(3))


def _orient_outward(v, f, centre):
    """Flip ``f`` so that face normals point away from ``centre`` on average."""
    tri = v[f]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    return f if np.sum(n * (tri.mean(1) - centre)) > 0 else f[:, ::-1]


# ----------------------------------------------------------------------------- eyelids
LID_N_PHI = 64
LID_S = np.array([0.0, 0.025, 0.07, 0.13, 0.21, 0.31, 0.43, 0.57, 0.73, 0.88, 1.0])
ALMOND = dict(bc=np.deg2rad(2.0), ac=np.deg2rad(3.0), w=np.deg2rad(50.0),
              h_up=np.deg2rad(21.0), h_lo=np.deg2rad(15.0))
LID_OUTER = np.deg2rad(80.0)        # angular radius of the lid patch around the opening
MEET = 0.25                         # closed lids meet this fraction up the opening


def _almond_radius(phi):
    """Angular distance from the opening centre to the lid margin in direction ``phi``."""
    c, s = np.abs(np.cos(phi)), np.abs(np.sin(phi))
    h = np.where(np.sin(phi) >= 0, ALMOND["h_up"], ALMOND["h_lo"])
    w = ALMOND["w"]
    qa = h * c * c / (w * w)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = (-s + np.sqrt(s * s + 4 * qa * h)) / (2 * qa)
    return np.where(qa < 1e-12, h, rho)


def _margins(b):
    """Upper and lower margin elevations (rad) at eye azimuth ``b``; equal outside the opening."""
    t = np.clip(1.0 - ((b - ALMOND["bc"]) / ALMOND["w"]) ** 2, 0.0, None)
    return ALMOND["ac"] + ALMOND["h_up"] * t, ALMOND["ac"] - ALMOND["h_lo"] * t


def _eye_dir(b, a):
    return np.stack([np.sin(b) * np.cos(a), np.sin(a), np.cos(b) * np.cos(a)], -1)


def _socket_distance(u):
    """Distance from the eye centre along unit ``u [N, 3]`` to the socket wall."""
    c = u @ SOCKET_SHIFT
    return c + np.sqrt(c * c + SOCKET_R ** 2 - SOCKET_SHIFT @ SOCKET_SHIFT)


def build_lids():
    """Left eyelid patch around the eye centre (a spherical shell with an almond opening).

    Returns dict with verts [N, 3], faces, b/a/s/upper per vertex and the margin indices.
    """
    phi = 2 * np.pi * np.arange(LID_N_PHI) / LID_N_PHI
    rho0 = _almond_radius(phi)
    S, P = np.meshgrid(LID_S, phi, indexing="ij")
    rho = rho0[None] + S * (LID_OUTER - rho0[None])
    b = ALMOND["bc"] + rho * np.cos(P)
    a = ALMOND["ac"] + rho * np.sin(P)
    u = _eye_dir(b, a)
    wall = _socket_distance(u.reshape(-1, 3)).reshape(S.shape)
    r_rim = EYE_R + 0.0024
    r = np.where(S <= LID_S[1], EYE_R + 0.0006 + (r_rim - EYE_R - 0.0006) * S / LID_S[1],
                 r_rim + (wall - 0.0007 - r_rim) * _smooth01((S - LID_S[1]) / (1 - LID_S[1])) ** 0.7)
    v = EYE + r[..., None] * u
    n_s = len(LID_S)
    idx = np.arange(n_s * LID_N_PHI).reshape(n_s, LID_N_PHI)
    faces = []
    for i in range(n_s - 1):
        for j in range(LID_N_PHI):
            a0, a1, b0, b1 = idx[i, j], idx[i, (j + 1) % LID_N_PHI], idx[i + 1, j], idx[i + 1, (j + 1) % LID_N_PHI]
            faces += [[a0, b0, b1], [a0, b1, a1]]
    v = v.reshape(-1, 3)
    faces = _orient_outward(v, np.array(faces), EYE)
    return dict(verts=v, faces=faces, b=b.ravel(), a=a.ravel(), s=S.ravel(), r=r.ravel(),
                upper=(np.sin(P) > 0).ravel(), upper_mid=int(idx[0, LID_N_PHI // 4]),
                lower_mid=int(idx[0, 3 * LID_N_PHI // 4]))


def lid_delta(lids, shift_up, shift_lo):
    """Displacement of lid vertices when margins move by elevation ``shift_up(b)`` / ``shift_lo(b)`` (rad).

    The shift fades from the margin (s = 0) to the patch border (s = 1); vertices keep their
    distance to the eye centre, so the lids slide over the eyeball.
    """
    b, a, s = lids["b"], lids["a"], lids["s"]
    g = (1.0 - _smooth01(s / 0.75))
    da = np.where(lids["upper"], shift_up(b), shift_lo(b)) * g
    new = EYE + lids["r"][:, None] * _eye_dir(b, a + da)
    return new - lids["verts"]


# ----------------------------------------------------------------------------- mouth
def slit_half_height(p):
    """Half height of the carved mouth slit at each point's (x, z), 0 outside it."""
    q = (p[:, [0, 2]] - np.array([0.0, MOUTH_Z - 0.012])) / np.array([MOUTH_HALF_W, 0.022])
    return SLIT_HALF_H * np.sqrt(np.clip(1.0 - (q * q).sum(1), 0.0, None))


def close_mouth(v):
    """Squeeze the skin vertically about the slit so the lips touch; returns (closed, lower_side [N])."""
    d = v[:, 1] - MOUTH_Y
    h = slit_half_height(v)
    # squeeze a little more than the slit so the rounded lip edges press together
    shift = (h + 0.002 * np.sqrt(h / SLIT_HALF_H)) * band(np.abs(d) - h, 0.002, 0.012)
    new_d = np.where(h > 0, np.sign(d) * np.maximum(np.abs(d) - shift, 0.00012), d)
    out = v.copy()
    out[:, 1] = MOUTH_Y + new_d
    # lower side: sharp across the slit, a smooth ramp beyond the mouth corners
    eps = 0.0002 + 0.012 * _smooth01((np.abs(v[:, 0]) - MOUTH_HALF_W + 0.003) / 0.012)
    lower = np.clip(0.5 - d / (2 * eps), 0.0, 1.0)
    return out, lower


def build():
    """Build the rig arrays (dict of numpy arrays, the layout of ``head_rig.npz``)."""
    skin_open, skin_f = build_skin()
    skin_mirror = mirror_map(skin_open, tol=1e-9)
    skin, lower = close_mouth(skin_open)
    n_skin = len(skin)

    # parts: eyeballs, lids, tongue (left parts mirrored to the right)
    sph, sph_f = uv_sphere(16, 24)
    eye_l = EYE + EYE_R * sph
    lids = build_lids()
    tongue_c = np.array([0.0, MOUTH_Y - 0.0105, 0.056])
    tongue = tongue_c + sph * np.array([0.0165, 0.0055, 0.024])
    parts = [("skin", skin, skin_f, None)]
    parts += [("eyeball_left", eye_l, sph_f, "eyeball_right"), ("eyeball_right", eye_l * FLIP, sph_f[:, ::-1], "eyeball_left")]
    parts += [("eyelid_left", lids["verts"], lids["faces"], "eyelid_right"),
              ("eyelid_right", lids["verts"] * FLIP, lids["faces"][:, ::-1], "eyelid_left")]
    parts += [("tongue", tongue, sph_f, None)]
    offset, start = 0, {}
    verts, faces = [], []
    for name, pv, pf, _ in parts:
        start[name] = offset
        verts.append(pv)
        faces.append(pf + offset)
        offset += len(pv)
    V = offset
    v = np.concatenate(verts)
    faces = np.concatenate(faces).astype(np.int32)
    part_idx = {name: np.arange(start[name], start[name] + len(pv)) for name, pv, _, _ in parts}
    mirror = np.arange(V)
    mirror[:n_skin] = skin_mirror
    for name, _, _, other in parts:
        if other is not None:
            mirror[part_idx[name]] = part_idx[other]
    tq = part_idx["tongue"]
    mirror[tq] = tq[mirror_map(tongue, tol=1e-9)]

    sk = part_idx["skin"]
    low = np.zeros(V)
    low[sk] = lower
    low[tq] = 1.0
    up = np.zeros(V)
    up[sk] = 1.0 - lower
    is_skin = np.zeros(V, bool)
    is_skin[sk] = True
    normals = np.zeros((V, 3))
    normals[sk] = trimesh.Trimesh(skin, skin_f, process=False).vertex_normals

    # jaw skinning weights
    y, z = v[:, 1], v[:, 2]
    base = _smooth01((-0.022 - y) / 0.06) * _smooth01((z - 0.0) / 0.07) * _smooth01((y + 0.135) / 0.05)
    mouth = kernel(v, [0.0, MOUTH_Y, 0.07], [0.03, 0.011, 0.04], [0.042, 0.022, 0.06])
    jaw_w = np.where(is_skin, mouth * low + (1 - mouth) * base, 0.0)
    jaw_w[tq] = 1.0

    deltas = {}
    jaw_open = jaw_w[:, None] * rotation_delta(v, JAW_HINGE, rot_x(np.deg2rad(JAW_OPEN_DEG)))
    deltas["jawOpen"] = jaw_open
    deltas["jawLeft"] = jaw_w[:, None] * rotation_delta(v, JAW_HINGE, rot_y(np.deg2rad(6.0)))
    deltas["jawForward"] = jaw_w[:, None] * np.array([0.0, 0.0, 0.006])

    lips = np.where(is_skin, kernel(v, [0.0, MOUTH_Y, MOUTH_Z], [0.021, 0.011, 0.02], [0.034, 0.024, 0.036]), 0.0)
    lips_near = np.where(is_skin, kernel(v, [0.0, MOUTH_Y, MOUTH_Z], [0.02, 0.004, 0.02], [0.032, 0.014, 0.034]), 0.0)
    lip_mid_ids = _lip_mids(v, is_skin, low)
    j_mid = jaw_open[lip_mid_ids[1]]
    deltas["mouthClose"] = -0.8 * lips[:, None] * low[:, None] * jaw_open + 0.2 * (lips * up)[:, None] * j_mid

    d_slit = v[:, 1] - MOUTH_Y
    xr = np.clip(v[:, 0] / MOUTH_HALF_W, -1.0, 1.0)
    funnel = np.stack([-0.2 * v[:, 0], (0.003 * up - 0.004 * low) * (1 - xr ** 2), 0.005 * np.ones(V)], -1)
    deltas["mouthFunnel"] = lips[:, None] * funnel
    pucker = np.stack([-0.35 * v[:, 0], -0.15 * d_slit, 0.008 * (1 - 0.5 * xr ** 2)], -1)
    deltas["mouthPucker"] = lips[:, None] * pucker
    deltas["mouthRollLower"] = (lips_near * low)[:, None] * np.array([0.0, 0.0, -0.005])
    deltas["mouthRollUpper"] = (lips_near * up)[:, None] * np.array([0.0, 0.0, -0.005])
    chin_k = np.where(is_skin, kernel(v, [0.0, MOUTH_Y - 0.02, 0.085], [0.018, 0.014, 0.02], [0.04, 0.032, 0.04]), 0.0)
    deltas["mouthShrugLower"] = (chin_k * low)[:, None] * np.array([0.0, 0.002, 0.004])
    deltas["mouthShrugUpper"] = (lips * up)[:, None] * np.array([0.0, 0.003, 0.003])
    whole = np.where(is_skin, kernel(v, [0.0, MOUTH_Y, MOUTH_Z - 0.005], [0.02, 0.012, 0.015], [0.045, 0.03, 0.04]), 0.0)
    deltas["mouthLeft"] = whole[:, None] * np.array([0.008, 0.0, 0.0])

    corner = np.where(is_skin, kernel(v, [MOUTH_HALF_W, MOUTH_Y, MOUTH_Z - 0.008], [0.006, 0.006, 0.012], [0.03, 0.03, 0.04]), 0.0)
    for name, vec in [("mouthSmileLeft", (0.004, 0.007, -0.004)), ("mouthFrownLeft", (0.001, -0.006, -0.001)),
                      ("mouthDimpleLeft", (0.003, 0.0, -0.005)), ("mouthStretchLeft", (0.007, -0.003, -0.002))]:
        deltas[name] = corner[:, None] * np.array(vec)
    half_l = np.where(is_skin, kernel(v, [0.012, MOUTH_Y, MOUTH_Z], [0.012, 0.011, 0.02], [0.026, 0.02, 0.034]), 0.0)
    deltas["mouthPressLeft"] = half_l[:, None] * np.stack([np.zeros(V), -0.35 * d_slit, -0.0015 * np.ones(V)], -1)
    lo_k = np.where(is_skin, kernel(v, [0.012, MOUTH_Y - 0.006, MOUTH_Z], [0.011, 0.008, 0.015], [0.026, 0.025, 0.03]), 0.0)
    deltas["mouthLowerDownLeft"] = (lo_k * low)[:, None] * np.array([0.0, -0.006, 0.001])
    up_k = np.where(is_skin, kernel(v, [0.012, MOUTH_Y + 0.006, MOUTH_Z], [0.011, 0.008, 0.015], [0.026, 0.025, 0.03]), 0.0)
    deltas["mouthUpperUpLeft"] = (up_k * up)[:, None] * np.array([0.0, 0.005, 0.001])

    tongue_out = np.zeros((V, 3))
    tip = _smooth01((v[tq, 2] - tongue_c[2] + 0.03) / 0.05)
    tongue_out[tq] = np.stack([np.zeros(len(tq)), -0.004 * tip, 0.024 * tip + 0.006], -1)
    deltas["tongueOut"] = tongue_out + 0.35 * jaw_open

    def skin_field(centre, inner, outer, vec):
        k = np.where(is_skin, kernel(v, centre, inner, outer), 0.0)
        return k[:, None] * np.asarray(vec)

    v_abs_x = v * np.where(v[:, :1] < 0, FLIP, 1.0)
    puff = np.where(is_skin, kernel(v_abs_x, [0.042, MOUTH_Y + 0.008, 0.05], [0.008, 0.01, 0.02], [0.028, 0.028, 0.04]), 0.0)
    deltas["cheekPuff"] = 0.008 * puff[:, None] * normals
    deltas["cheekSquintLeft"] = skin_field([0.038, 0.0, 0.065], [0.01, 0.005, 0.02], [0.024, 0.018, 0.04], (0.0, 0.004, 0.001))
    deltas["noseSneerLeft"] = skin_field([0.013, -0.008, 0.09], [0.005, 0.006, 0.01], [0.018, 0.02, 0.03], (0.001, 0.004, -0.0005))
    deltas["browDownLeft"] = skin_field([0.028, EYE[1] + 0.023, 0.08], [0.01, 0.004, 0.015], [0.03, 0.022, 0.035], (-0.002, -0.004, 0.001))
    deltas["browOuterUpLeft"] = skin_field([0.046, EYE[1] + 0.021, 0.07], [0.008, 0.004, 0.02], [0.025, 0.025, 0.035], (0.0, 0.005, 0.0))
    inner_up = skin_field([0.014, EYE[1] + 0.024, 0.08], [0.006, 0.004, 0.015], [0.026, 0.03, 0.035], (0.0, 0.005, 0.0))
    deltas["browInnerUp"] = inner_up + inner_up[mirror] * FLIP

    # eyes (left): eyeball rotations, lid motions
    el, ll = part_idx["eyeball_left"], part_idx["eyelid_left"]
    a_up, a_lo = _margins(lids["b"])

    def eye_shape(ball_rot=None, lid_up=None, lid_lo=None, extra=None):
        d = np.zeros((V, 3))
        if ball_rot is not None:
            d[el] = rotation_delta(v[el], EYE, ball_rot)
        if lid_up is not None or lid_lo is not None:
            zero = lambda b: np.zeros_like(b)
            d[ll] = lid_delta(lids, lid_up or zero, lid_lo or zero)
        return d if extra is None else d + extra

    meet = lambda b: _margins(b)[1] + MEET * (_margins(b)[0] - _margins(b)[1])
    deltas["eyeBlinkLeft"] = eye_shape(lid_up=lambda b: meet(b) - _margins(b)[0], lid_lo=lambda b: meet(b) - _margins(b)[1])
    open_frac = lambda b, f: f * (_margins(b)[0] - _margins(b)[1]) / max(ALMOND["h_up"] + ALMOND["h_lo"], 1e-9)
    deltas["eyeLookDownLeft"] = eye_shape(rot_x(np.deg2rad(25.0)), lambda b: -open_frac(b, np.deg2rad(10.0)), lambda b: -open_frac(b, np.deg2rad(5.0)))
    deltas["eyeLookUpLeft"] = eye_shape(rot_x(np.deg2rad(-22.0)), lambda b: open_frac(b, np.deg2rad(7.0)))
    deltas["eyeLookInLeft"] = eye_shape(rot_y(np.deg2rad(-28.0)))
    deltas["eyeLookOutLeft"] = eye_shape(rot_y(np.deg2rad(28.0)))
    deltas["eyeSquintLeft"] = eye_shape(lid_lo=lambda b: 0.35 * (_margins(b)[0] - _margins(b)[1]),
                                        extra=skin_field([EYE[0] + 0.002, EYE[1] - 0.018, 0.075], [0.007, 0.004, 0.02], [0.016, 0.009, 0.025], (0.0, 0.002, 0.0005)))
    deltas["eyeWideLeft"] = eye_shape(lid_up=lambda b: open_frac(b, np.deg2rad(9.0)), lid_lo=lambda b: -open_frac(b, np.deg2rad(2.0)))

    # mirror Left -> Right; symmetrise the unpaired shapes
    out = np.zeros((52, V, 3))
    for i, name in enumerate(ARKIT_BLENDSHAPES):
        if name in deltas:
            out[i] = deltas[name]
    for i, name in enumerate(ARKIT_BLENDSHAPES):
        m = mirror_name(name)
        if m != name and name not in deltas:
            out[i] = out[ARKIT_INDEX[m]][mirror] * FLIP
        elif m == name:
            out[i] = 0.5 * (out[i] + out[i][mirror] * FLIP)
    missing = [n for n in ARKIT_BLENDSHAPES if n not in deltas and mirror_name(n) not in deltas]
    assert not missing, missing

    # identity basis: skin fields; eyes and tongue move rigidly with their anchor point
    anchor = v.copy()
    for name, centre in [("eyeball_left", EYE), ("eyelid_left", EYE), ("eyeball_right", EYE * FLIP),
                         ("eyelid_right", EYE * FLIP), ("tongue", tongue_c)]:
        anchor[part_idx[name]] = centre
    ax = anchor * np.where(anchor[:, :1] < 0, FLIP, 1.0)        # |x| for symmetric kernels
    sx = np.where(anchor[:, 0] < 0, -1.0, 1.0)
    ones, zeros = np.ones(V), np.zeros(V)
    ident = {
        "head_width": np.stack([0.05 * anchor[:, 0], zeros, zeros], -1),
        "jaw_width": np.stack([0.10 * anchor[:, 0] * _smooth01((-0.03 - anchor[:, 1]) / 0.05), zeros, zeros], -1),
        "nose_length": kernel(anchor, [0.0, -0.012, 0.1], [0.012, 0.012, 0.015], [0.025, 0.035, 0.03])[:, None]
        * np.array([0.0, -0.002, 0.004]),
        "lip_fullness": lips[:, None] * np.stack([zeros, 0.2 * d_slit, 0.002 * ones], -1),
        "face_length": np.stack([zeros, -0.05 * 0.01 * np.logaddexp(0.0, -anchor[:, 1] / 0.01), zeros], -1),
        "eye_spacing": kernel(ax, EYE, [0.012, 0.012, 0.03], [0.028, 0.028, 0.05])[:, None]
        * np.stack([0.002 * sx, zeros, zeros], -1),
        "brow_height": kernel(ax, [0.028, EYE[1] + 0.022, 0.08], [0.015, 0.005, 0.02], [0.035, 0.015, 0.04])[:, None]
        * np.array([0.0, 0.003, 0.0]),
        "chin_protrusion": kernel(anchor, [0.0, -0.095, 0.07], [0.012, 0.01, 0.02], [0.035, 0.03, 0.04])[:, None]
        * np.array([0.0, 0.0, 0.004]),
    }
    for k in ident:   # exact symmetry
        ident[k] = 0.5 * (ident[k] + ident[k][mirror] * FLIP)

    # landmarks and regions
    upper_mid, lower_mid = lip_mid_ids
    on_slit = is_skin & (np.abs(v[:, 1] - MOUTH_Y) < 0.0005) & (v[:, 2] > MOUTH_Z - 0.014)
    corner_l = int(np.flatnonzero(on_slit)[np.argmax(v[on_slit, 0])])
    midline = np.flatnonzero(is_skin & (np.abs(v[:, 0]) < 1e-9))
    lid0 = start["eyelid_left"]
    landmarks = {
        "upper_lip_mid": upper_mid, "lower_lip_mid": lower_mid,
        "lip_corner_left": corner_l, "lip_corner_right": int(mirror[corner_l]),
        "upper_eyelid_left": lid0 + lids["upper_mid"], "lower_eyelid_left": lid0 + lids["lower_mid"],
        "upper_eyelid_right": int(mirror[lid0 + lids["upper_mid"]]),
        "lower_eyelid_right": int(mirror[lid0 + lids["lower_mid"]]),
        "nose_tip": int(midline[np.argmax(v[midline, 2])]),
        "chin": int(midline[np.argmin(np.linalg.norm(v[midline] - np.array([0.0, -0.105, 0.09]), axis=1))]),
    }
    front = v[:, 2] > 0.0
    regions = dict(part_idx)
    regions["lips"] = np.flatnonzero(is_skin & (lips > 0.5) & (v[:, 2] > MOUTH_Z - 0.02))
    regions["jaw"] = np.flatnonzero(jaw_w > 0.5)
    regions["eyes"] = np.concatenate([part_idx[k] for k in ("eyeball_left", "eyeball_right", "eyelid_left", "eyelid_right")])
    regions["upper_face"] = np.flatnonzero((is_skin & front & (v[:, 1] > EYE[1] - 0.022)) | np.isin(np.arange(V), regions["eyes"]))
    for side, centre in (("left", EYE), ("right", EYE * FLIP)):
        ball = part_idx[f"eyeball_{side}"]
        cos = (v[ball] - centre)[:, 2] / EYE_R
        regions[f"iris_{side}"] = ball[cos > np.cos(np.deg2rad(30.0))]
        regions[f"pupil_{side}"] = ball[cos > np.cos(np.deg2rad(12.0))]

    arrays = {
        "neutral": v.astype(np.float32), "faces": faces, "deltas": out.astype(np.float32),
        "blendshape_names": np.array(ARKIT_BLENDSHAPES), "mirror": mirror.astype(np.int32),
        "identity_names": np.array(list(ident)), "identity_basis": np.stack(list(ident.values())).astype(np.float32),
        "neck_pivot": NECK_PIVOT.astype(np.float32), "eye_centers": np.stack([EYE, EYE * FLIP]).astype(np.float32),
        "eye_radius": np.float32(EYE_R), "jaw_weights": jaw_w.astype(np.float32),
        "landmark_names": np.array(list(landmarks)), "landmark_indices": np.array(list(landmarks.values()), np.int32),
    }
    for k, idx in regions.items():
        arrays[f"region_{k}"] = np.asarray(idx, np.int32)
    return arrays


def _lip_mids(v, is_skin, low):
    """Indices of the front-most midline vertices just above and below the slit."""
    mid = is_skin & (np.abs(v[:, 0]) < 1e-9) & (np.abs(v[:, 1] - MOUTH_Y) < 0.0005) & (v[:, 2] > MOUTH_Z - 0.02)
    ids = np.flatnonzero(mid)
    upper = ids[low[ids] < 0.5]
    lower = ids[low[ids] >= 0.5]
    return int(upper[np.argmax(v[upper, 2])]), int(lower[np.argmax(v[lower, 2])])


def main(argv=None):
    """Build the rig and write it atomically to ``--out`` (default: the package data file)."""
    default = Path(__file__).resolve().parents[1] / "src" / "facemotion" / "face" / "data" / "head_rig.npz"
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=default)
    args = ap.parse_args(argv)
    arrays = build()
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
    print(f"{args.out}: {len(arrays['neutral'])} vertices, {len(arrays['faces'])} faces, "
          f"{args.out.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
