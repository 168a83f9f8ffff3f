"""FLAME (Li et al. 2017, "Learning a model of facial shape and expression from 4D scans"):
loading the user's model file without chumpy, linear blend skinning in torch, and
:class:`FlameSpace`, the face space of DiffPoseTalk (Sun et al. 2024, Sec. 3.1).

FLAME is ``M(beta, theta, psi) = W(T_P(beta, theta, psi), J(beta), theta, W)`` (FLAME eq. 1-4):
the template plus shape and expression blend shapes ``B_S(beta) + B_E(psi)`` and pose
correctives ``B_P(theta)`` (eq. 4; linear in ``R(theta_k) - I`` of the non-root joints), joints
regressed from the shaped mesh ``J(beta) = J_reg (T + B_S)``, then linear blend skinning over
the kinematic tree root -> neck -> {jaw, left eye, right eye}. :func:`lbs` implements it batched
and differentiable.

Model files: FLAME 2020 ``generic_model.pkl`` (a Python 2 pickle whose ``shapedirs`` is a
``chumpy.ch.Ch``: :func:`load_flame_model` reads it with :class:`FlameUnpickler`, which maps the
chumpy classes to a shim holding the array, so chumpy is never imported), FLAME 2023 and 2023 Open
``.pkl`` (same keys, ``J_regressor`` a scipy sparse matrix) and ``.npz`` files with those keys.
Keys read: ``v_template [V, 3]``, ``shapedirs [V, 3, S + E]`` (identity components first, then
expression: 300 + 100 in FLAME 2020/2023), ``posedirs [V, 3, 9 (J - 1)]``, ``J_regressor [J, V]``
(dense or scipy sparse), ``weights [V, J]``, ``kintree_table [2, J]`` and ``f [F, 3]``.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from facemotion.errors import DataError
from facemotion.face.rotation import matrix_to_euler
from facemotion.face.space import FaceMesh, FaceSpace, _frames, _numpy

#: the keys of a FLAME model file that :func:`load_flame_model` reads
FLAME_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")
#: FLAME's joints, in the order of its full pose vector (3 axis-angle values each)
FLAME_JOINTS = ("global", "neck", "jaw", "left_eye", "right_eye")
#: expression components at the end of ``shapedirs`` when the file does not say (FLAME 2020/2023)
FILE_EXPRESSION_COMPONENTS = 100
#: the shared region files (lve.txt: lips, fdd.txt: upper face; FLAME/VOCASET topology), used
#: when they exist next to the repository (``../shared/assets/flame/regions``, see its SOURCE.md)
SHARED_REGIONS = Path(__file__).resolve().parents[4] / "shared" / "assets" / "flame" / "regions"
#: FLAME_masks.pkl regions that make up the upper face when regions come from the masks file
MASK_UPPER_FACE = ("forehead", "eye_region", "nose")


class _ChumpyShim:
    """Stands in for chumpy classes while unpickling: keeps the pickled state (chumpy's ``Ch``
    keeps its value in ``state["x"]``); :func:`_unshim` turns it into a numpy array."""

    def __init__(self, *args, **kwargs):
        self.args = args

    def __setstate__(self, state):
        self.state = state

    def array(self) -> np.ndarray:
        """The numpy value of the chumpy object. Raises ValueError if it holds none."""
        state = getattr(self, "state", None)
        if isinstance(state, dict) and "x" in state:
            return np.asarray(_unshim(state["x"]))
        if self.args:
            return np.asarray(_unshim(self.args[0]))
        raise ValueError("a chumpy object without a value ('x')")


_NUMPY_NAMES = {"_reconstruct", "ndarray", "dtype", "scalar", "_frombuffer", "matrix"}
_BUILTIN_NAMES = {"object", "set", "frozenset", "complex", "slice", "bytearray", "list", "dict", "tuple"}


class FlameUnpickler(pickle.Unpickler):
    """Unpickler for FLAME model files that never imports chumpy and loads only data classes.

    ``find_class`` maps any ``chumpy.*`` class to :class:`_ChumpyShim`, numpy's array
    reconstruction names to numpy (``numpy.core`` read as ``numpy._core``), ``scipy.sparse``
    matrix classes to the installed scipy (whatever submodule the file names, e.g. the old
    ``scipy.sparse.csc``), ``copy_reg``/``copyreg._reconstructor``, ``_codecs.encode`` (bytes in
    protocol 2) and a few builtin containers.

    Raises:
        pickle.UnpicklingError: the file names any other class (it is not a FLAME model).
    """

    def find_class(self, module: str, name: str):
        top = module.split(".")[0]
        if top == "chumpy":
            return _ChumpyShim
        if top == "numpy" and name in _NUMPY_NAMES:
            import importlib

            module = module.replace("numpy.core", "numpy._core", 1) if module.startswith("numpy.core") else module
            return getattr(importlib.import_module(module), name)
        if module.startswith("scipy.sparse") and name.endswith(("_matrix", "_array")):
            import scipy.sparse

            if hasattr(scipy.sparse, name):
                return getattr(scipy.sparse, name)
        if module in ("copy_reg", "copyreg") and name == "_reconstructor":
            import copyreg

            return copyreg._reconstructor
        if module == "_codecs" and name == "encode":  # bytes in protocol-2 pickles written by Python 3
            import codecs

            return codecs.encode
        if module in ("__builtin__", "builtins") and name in _BUILTIN_NAMES:
            import builtins

            return getattr(builtins, name)
        raise pickle.UnpicklingError(f"unexpected class {module}.{name} in a FLAME model file")


def _unshim(obj):
    if isinstance(obj, _ChumpyShim):
        return obj.array()
    if isinstance(obj, dict):
        return {k: _unshim(v) for k, v in obj.items()}
    return obj


def read_data_pickle(path, what: str):
    """Unpickle a data file (numpy arrays, scipy sparse matrices, dicts; chumpy objects become
    numpy arrays) with :class:`FlameUnpickler`, as Python 2 pickles need (``latin1``).

    Args:
        path: the file (FLAME model, ``FLAME_masks.pkl``, FaceFormer's ``templates.pkl``).
        what: what the file should hold, for the error message.
    Raises:
        DataError: the file is missing or does not unpickle to data (message names the file and ``what``).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file; expected {what}")
    with open(path, "rb") as f:
        return loads_data_pickle(f.read(), path, what)


def loads_data_pickle(data: bytes, source, what: str):
    """:func:`read_data_pickle` of pickled bytes (e.g. a value of DiffPoseTalk's LMDB).

    Args:
        data: the pickle. source: where it came from, for the message. what: what it should hold.
    Raises:
        DataError: it does not unpickle to data (message names ``source`` and ``what``).
    """
    import io

    try:
        return _unshim(FlameUnpickler(io.BytesIO(data), encoding="latin1").load())
    except Exception as exc:  # pickle, format and shim errors all mean "not that file"
        raise DataError(f"{source}: not readable as {what} ({type(exc).__name__}: {exc})") from None


def _dense(a) -> np.ndarray:
    return np.asarray(a.toarray() if hasattr(a, "toarray") else a)


def load_flame_model(path) -> dict:
    """Read a FLAME model file into numpy arrays, without chumpy.

    Args:
        path: FLAME 2020 ``generic_model.pkl`` / ``female_model.pkl`` / ``male_model.pkl``,
            FLAME 2023 (Open) ``.pkl``, or an ``.npz`` with the same keys.
    Returns:
        ``{"v_template" [V, 3] float64 m, "shapedirs" [V, 3, S + E], "posedirs" [V, 3, 9 (J - 1)],
        "J_regressor" [J, V] dense, "weights" [V, J], "parents" [J] int (-1 for the root),
        "faces" [F, 3] int64, "n_expression_in_file" E}``.
    Raises:
        DataError: the file is missing, unreadable, not a FLAME model, or has a key with the
            wrong shape (the message names the file and what was expected).
    """
    path = Path(path)
    what = "a FLAME model (.pkl or .npz with keys " + ", ".join(FLAME_KEYS) + ")"
    if not path.is_file():
        raise DataError(f"{path}: no such file; expected {what}")
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                raw = {k: z[k] for k in z.files}
        except Exception as exc:  # zip and format errors all mean "not a FLAME model"
            raise DataError(f"{path}: not readable as {what} ({type(exc).__name__}: {exc})") from None
    else:
        raw = read_data_pickle(path, what)
    if not isinstance(raw, dict):
        raise DataError(f"{path}: holds a {type(raw).__name__}, expected {what}")
    missing = [k for k in FLAME_KEYS if k not in raw]
    if missing:
        raise DataError(f"{path}: missing keys {missing}; expected {what}")
    m = {k: (_dense(raw[k]) if k == "J_regressor" else np.asarray(raw[k])) for k in FLAME_KEYS}
    v = m["v_template"].shape[0] if m["v_template"].ndim == 2 else -1
    j = m["kintree_table"].shape[-1] if m["kintree_table"].ndim == 2 else -1
    expected = {"v_template": (v, 3), "J_regressor": (j, v), "weights": (v, j), "kintree_table": (2, j)}
    for key, shape in expected.items():
        if v < 1 or j < 1 or m[key].shape != shape:
            raise DataError(f"{path}: '{key}' has shape {m[key].shape}, expected {list(shape)} "
                            f"(V = {v} vertices, J = {j} joints)")
    if m["shapedirs"].ndim != 3 or m["shapedirs"].shape[:2] != (v, 3):
        raise DataError(f"{path}: 'shapedirs' has shape {m['shapedirs'].shape}, expected [{v}, 3, S + E]")
    if m["posedirs"].shape != (v, 3, 9 * (j - 1)):
        raise DataError(f"{path}: 'posedirs' has shape {m['posedirs'].shape}, expected [{v}, 3, {9 * (j - 1)}]")
    faces = m["f"].astype(np.int64)
    if faces.ndim != 2 or faces.shape[1] != 3 or (faces.size and (faces.min() < 0 or faces.max() >= v)):
        raise DataError(f"{path}: 'f' must be [F, 3] vertex indices below {v}")
    parents = m["kintree_table"][0].astype(np.int64)
    parents[0] = -1  # stored as uint32 4294967295 in FLAME 2020
    meta = raw.get("supr_expression_metadata")
    n_expr = int(meta.get("n_expr", FILE_EXPRESSION_COMPONENTS)) if isinstance(meta, dict) else FILE_EXPRESSION_COMPONENTS
    return {"v_template": m["v_template"].astype(np.float64), "shapedirs": m["shapedirs"].astype(np.float64),
            "posedirs": m["posedirs"].astype(np.float64), "J_regressor": m["J_regressor"].astype(np.float64),
            "weights": m["weights"].astype(np.float64), "parents": parents, "faces": faces,
            "n_expression_in_file": n_expr}


def axis_angle_to_matrix(aa: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula: axis-angle ``[..., 3]`` radians -> rotation matrices ``[..., 3, 3]``
    (differentiable; exact identity at zero, the gradient there is the skew matrix)."""
    angle2 = (aa * aa).sum(-1, keepdim=True)[..., None]  # [..., 1, 1]
    angle = (angle2 + 1e-30).sqrt()
    small = angle2 < 1e-12
    # sin(t)/t and (1 - cos t)/t^2 with their Taylor series near 0
    a = torch.where(small, 1 - angle2 / 6, torch.sin(angle) / angle)
    b = torch.where(small, 0.5 - angle2 / 24, (1 - torch.cos(angle)) / torch.where(small, 1.0, angle2))
    x, y, z = aa.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).unflatten(-1, (3, 3))
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device)
    return eye + a * k + b * (k @ k)


def lbs(betas: torch.Tensor, pose: torch.Tensor, v_template: torch.Tensor, shapedirs: torch.Tensor,
        posedirs: torch.Tensor, j_regressor: torch.Tensor, parents, weights: torch.Tensor,
        indices: torch.Tensor | None = None) -> torch.Tensor:
    """Linear blend skinning with pose correctives (FLAME eq. 1-4, as SMPL; batched, differentiable).

    ``v_shaped = T + shapedirs @ betas``; joints ``J = J_reg v_shaped``; ``v_posed = v_shaped +
    posedirs @ vec(R_k - I, k >= 1)`` (rows of each ``R_k - I`` in order); each vertex moves by
    ``sum_k w_vk G_k`` with ``G_k`` the world transform of joint ``k`` composed down the
    kinematic tree minus its rest offset.

    Args:
        betas: ``[B, C]`` blend-shape coefficients (identity and expression together), matching
            ``shapedirs [V, 3, C]``.
        pose: ``[B, J, 3]`` axis-angle radians per joint (FLAME: global, neck, jaw, eyes).
        v_template: ``[V, 3]`` metres. posedirs: ``[9 (J - 1), V * 3]``.
        j_regressor: ``[J, V]``. parents: ``[J]`` parent joint indices (root first, -1).
        weights: ``[V, J]`` skinning weights.
        indices: ``[K]`` vertex indices to return (joints still come from the whole mesh).
    Returns:
        ``[B, V or K, 3]`` metres.
    """
    b = betas.shape[0]
    v_shaped = v_template + torch.einsum("bc,vdc->bvd", betas, shapedirs)  # [B, V, 3]
    joints = torch.einsum("jv,bvd->bjd", j_regressor, v_shaped)  # [B, J, 3]
    rot = axis_angle_to_matrix(pose)  # [B, J, 3, 3]
    eye = torch.eye(3, dtype=rot.dtype, device=rot.device)
    feature = (rot[:, 1:] - eye).flatten(1)  # [B, 9 (J - 1)]
    n_v = v_template.shape[0]
    offsets = (feature @ posedirs).view(b, n_v, 3)
    if indices is not None:
        v_shaped, offsets, weights = v_shaped[:, indices], offsets[:, indices], weights[indices]
    v_posed = v_shaped + offsets
    # world transforms of the joints, down the tree
    rel = joints.clone()
    rel[:, 1:] = joints[:, 1:] - joints[:, [int(p) for p in parents[1:]]]
    world_rot, world_t = [rot[:, 0]], [rel[:, 0]]
    for k in range(1, len(parents)):
        p = int(parents[k])
        world_rot.append(world_rot[p] @ rot[:, k])
        world_t.append(world_t[p] + (world_rot[p] @ rel[:, k, :, None])[..., 0])
    g_rot = torch.stack(world_rot, 1)  # [B, J, 3, 3]
    g_t = torch.stack(world_t, 1) - (g_rot @ joints[..., None])[..., 0]  # remove the rest offset
    v_rot = torch.einsum("vj,bjde->bvde", weights, g_rot)
    v_t = torch.einsum("vj,bjd->bvd", weights, g_t)
    return (v_rot @ v_posed[..., None])[..., 0] + v_t


def read_index_file(path: Path) -> np.ndarray:
    """Vertex indices of a region file (one line of comma- or space-separated ints, as
    ``lve.txt`` / ``fdd.txt``). Raises DataError naming the file."""
    try:
        return np.array([int(x) for x in path.read_text().replace(",", " ").split()], np.int64)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a list of vertex indices ({exc})") from None


def _read_masks(path: Path) -> dict[str, np.ndarray]:
    """The regions of a ``FLAME_masks.pkl`` (a dict of index arrays). Raises DataError."""
    what = "a FLAME_masks.pkl (a dict of vertex index arrays)"
    masks = read_data_pickle(path, what)
    try:
        masks = {str(k): np.unique(np.asarray(v, np.int64)) for k, v in masks.items()}
    except (AttributeError, TypeError, ValueError) as exc:
        raise DataError(f"{path}: not {what} ({exc})") from None
    missing = [k for k in ("lips",) + MASK_UPPER_FACE if k not in masks]
    if missing:
        raise DataError(f"{path}: FLAME_masks.pkl without the regions {missing}")
    return masks


def with_flame_model(spec, flame_model=None, source: str = "--space flame") -> dict:
    """A face-space spec (a name, or ``{"name", **settings}`` as a recipe config or a checkpoint's
    ``space`` holds it) with the FLAME model file ``flame_model`` as its ``model_path``.

    Args:
        spec: the space spec; its name must be ``"flame"``.
        flame_model: the user's FLAME model file; None keeps the spec's own ``model_path``.
        source: what chose the space, for the messages.
    Returns:
        ``{"name": "flame", **settings, "model_path": str}``.
    Raises:
        DataError: the spec names another space, no model file is given or known, or the file is
            not there (each message names the file and what was expected).
    """
    d = {"name": spec} if isinstance(spec, str) else dict(spec)
    if d.get("name") != "flame":
        raise DataError(f"--flame-model {flame_model}: the face space is {d.get('name')!r}, not 'flame'")
    path = d.get("model_path") if flame_model is None else flame_model
    if path is None:
        raise DataError(f"{source}: needs --flame-model PATH (FLAME 2020 generic_model.pkl, FLAME 2023 .pkl or .npz)")
    if not Path(path).is_file():
        raise DataError(f"{path}: no such file; expected a FLAME model (FLAME 2020 generic_model.pkl, FLAME 2023 "
                        ".pkl or .npz; pass it with --flame-model PATH: checkpoints never hold it)")
    return {**d, "model_path": str(path)}


class FlameSpace(FaceSpace):
    """FLAME motion as DiffPoseTalk models it: ``x = [psi (E), global rotation (3), jaw (J_d)]``.

    The layout is DiffPoseTalk's ``get_motion_coef`` (``cat([exp, pose])`` with FLAME's
    ``pose = [global axis-angle, jaw axis-angle]``): ``psi`` the first ``n_exp`` expression
    coefficients, the global (head) rotation as axis-angle radians (absent with
    ``head_pose=False``), then the jaw rotation: its x component only with ``jaw_dims=1``
    (DiffPoseTalk drops the jaw's y/z rotation) or all three with ``jaw_dims=3``. So
    ``dim = n_exp + 3 * head_pose + jaw_dims`` (54 for DiffPoseTalk). Neck and eye rotations
    are zero in the motion; :meth:`flame` takes them all. Shape ``beta [..., <= n_shape]`` is per
    sequence (``decode(x, shape=beta)``).

    ``.npz`` layout (DiffPoseTalk's coefficient files): ``exp [T, >= n_exp]`` (the first
    ``n_exp`` are used), ``pose [T, 6]`` (global then jaw axis-angle, radians), optional
    ``shape [n]`` or ``[T, n]``; :meth:`to_arrays` writes ``exp``, ``pose`` and the derived
    ``head_rotation [T, 3]`` (pitch, yaw, roll radians, :mod:`facemotion.face.rotation`).

    Regions (``lips`` for LVE, ``upper_face`` for FDD): from ``regions_dir`` (``lve.txt``,
    ``fdd.txt``), else from ``masks`` (a ``FLAME_masks.pkl``: ``lips``, and ``forehead`` +
    ``eye_region`` + ``nose`` as the upper face), else from :data:`SHARED_REGIONS` when it exists.
    The lip landmarks (for lip aperture / MOD) default to the lip vertices nearest the mid-sagittal
    plane ``x = 0`` (within 1 mm of the nearest), highest and lowest on the template.

    The model's tensors are non-persistent buffers re-read from ``model_path`` (the FLAME
    licence does not allow putting the model into checkpoints one shares); settings carry the
    paths and sizes.

    Args:
        model_path: the FLAME model file (:func:`load_flame_model`).
        n_shape: identity components used (100 in DiffPoseTalk; up to 300).
        n_exp: expression components (50 in DiffPoseTalk; up to 100).
        jaw_dims: 1 (DiffPoseTalk: jaw x rotation) or 3 (full jaw axis-angle).
        head_pose: the motion carries the global rotation.
        regions_dir, masks: region files (see above). lip_landmarks: ``(upper, lower)`` indices.
    Raises:
        DataError: a missing or malformed model or region file, sizes the model does not have,
            or region indices outside the mesh (each message names the file and what was expected).
    """

    name = "flame"

    def __init__(self, model_path, n_shape: int = 100, n_exp: int = 50, jaw_dims: int = 1,
                 head_pose: bool = True, regions_dir=None, masks=None, lip_landmarks=None):
        model = load_flame_model(model_path)
        v = len(model["v_template"])
        n_comp = model["shapedirs"].shape[2]
        e_file = model["n_expression_in_file"]
        s_file = n_comp - e_file
        if not 0 < int(n_shape) <= s_file or not 0 < int(n_exp) <= e_file:
            raise DataError(f"{model_path}: has {s_file} shape and {e_file} expression components; "
                            f"expected n_shape <= {s_file} and n_exp <= {e_file} (got {n_shape}, {n_exp})")
        if int(jaw_dims) not in (1, 3):
            raise DataError(f"flame space: jaw_dims must be 1 or 3, got {jaw_dims}")
        if len(model["parents"]) != len(FLAME_JOINTS):
            raise DataError(f"{model_path}: {len(model['parents'])} joints, expected FLAME's "
                            f"{len(FLAME_JOINTS)} ({', '.join(FLAME_JOINTS)})")
        lips, upper, source = self._regions(regions_dir, masks, v)
        template = model["v_template"]
        if lip_landmarks is None:
            near = lips[np.abs(template[lips, 0]) <= np.abs(template[lips, 0]).min() + 1e-3]
            lip_landmarks = (near[np.argmax(template[near, 1])], near[np.argmin(template[near, 1])])
        lip_landmarks = [int(i) for i in np.asarray(lip_landmarks).reshape(-1)[:2]]
        if min(lip_landmarks) < 0 or max(lip_landmarks) >= v:
            raise DataError(f"flame space: lip_landmarks {lip_landmarks} outside the {v} vertices of {model_path}")
        joints = model["J_regressor"] @ template
        super().__init__(lip_landmarks, lips, upper, joints[0])
        self.model_path, self.regions_source = str(model_path), source
        self.n_shape, self.n_exp, self.jaw_dims = int(n_shape), int(n_exp), int(jaw_dims)
        self.has_head_pose = bool(head_pose)
        self._regions_dir, self._masks = regions_dir, masks
        self.num_vertices = v
        self.dim = self.n_exp + 3 * self.has_head_pose + self.jaw_dims
        self.names = tuple(f"exp{i}" for i in range(self.n_exp)) \
            + (("global_rx", "global_ry", "global_rz") if self.has_head_pose else ()) \
            + ("jaw_rx", "jaw_ry", "jaw_rz")[:self.jaw_dims]
        shapedirs = np.concatenate([model["shapedirs"][..., :self.n_shape],
                                    model["shapedirs"][..., s_file:s_file + self.n_exp]], -1)
        posedirs = model["posedirs"].reshape(-1, model["posedirs"].shape[-1]).T  # [9 (J - 1), V * 3]
        for name, a in (("v_template", template), ("shapedirs", shapedirs), ("posedirs", posedirs),
                        ("j_regressor", model["J_regressor"]), ("weights", model["weights"])):
            self.register_buffer(name, torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32), persistent=False)
        self.parents = [int(p) for p in model["parents"]]
        self.faces = model["faces"].astype(np.int32)

    @staticmethod
    def _regions(regions_dir, masks, v: int) -> tuple[np.ndarray, np.ndarray, str]:
        if regions_dir is None and masks is None and SHARED_REGIONS.is_dir():
            regions_dir = SHARED_REGIONS
        if regions_dir is not None:
            d = Path(regions_dir)
            lips, upper = read_index_file(d / "lve.txt"), read_index_file(d / "fdd.txt")
            source = str(d)
        elif masks is not None:
            m = _read_masks(Path(masks))
            lips, upper = m["lips"], np.unique(np.concatenate([m[k] for k in MASK_UPPER_FACE]))
            source = str(masks)
        else:
            raise DataError("flame space: no regions; give regions_dir (lve.txt, fdd.txt) or masks "
                            f"(FLAME_masks.pkl) (the shared {SHARED_REGIONS} is not there)")
        for what, ix in (("lips", lips), ("upper face", upper)):
            if not len(ix) or ix.min() < 0 or ix.max() >= v:
                raise DataError(f"{source}: {what} indices must be non-empty and below the model's {v} vertices")
        return lips, upper, source

    def settings(self) -> dict:
        """The model path, sizes, head-pose flag, region sources and lip landmarks (JSON-able)."""
        return {"model_path": self.model_path, "n_shape": self.n_shape, "n_exp": self.n_exp,
                "jaw_dims": self.jaw_dims, "head_pose": self.has_head_pose,
                "regions_dir": None if self._regions_dir is None else str(self._regions_dir),
                "masks": None if self._masks is None else str(self._masks),
                "lip_landmarks": list(self.lip_landmarks)}

    # ------------------------------------------------------------------ arrays
    def from_arrays(self, arrays: dict) -> np.ndarray:
        """``exp [T, >= n_exp]`` and ``pose [T, 6]`` (global, jaw axis-angle radians) -> ``[T, dim]``.

        Raises:
            ValueError: missing arrays, wrong shapes, frame counts that differ, or non-finite values.
        """
        if "exp" not in arrays or np.ndim(arrays["exp"]) != 2 or np.shape(arrays["exp"])[1] < self.n_exp:
            raise ValueError(f"flame motion: expected 'exp [T, >= {self.n_exp}]' "
                             f"(found {sorted(arrays)}, exp shape {np.shape(arrays.get('exp'))})")
        exp = _frames({"exp": np.asarray(arrays["exp"])[:, :self.n_exp]}, "exp", (self.n_exp,), "flame motion")
        pose = _frames(arrays, "pose", (6,), "flame motion")
        if len(pose) != len(exp):
            raise ValueError(f"flame motion: {len(exp)} frames of exp but {len(pose)} of pose")
        parts = [exp] + ([pose[:, :3]] if self.has_head_pose else []) + [pose[:, 3:3 + self.jaw_dims]]
        return np.ascontiguousarray(np.concatenate(parts, -1), np.float32)

    def to_arrays(self, x) -> dict[str, np.ndarray]:
        """``x [T, dim]`` -> ``exp [T, n_exp]``, ``pose [T, 6]`` (global, jaw axis-angle; the
        parts the motion lacks are 0) float32, and ``head_rotation [T, 3]`` (pitch, yaw, roll)."""
        x = torch.as_tensor(_numpy(x))
        self._check(x)
        full = self.pose(x)
        return {"exp": x[..., :self.n_exp].numpy().astype(np.float32),
                "pose": torch.cat([full[..., 0, :], full[..., 2, :]], -1).numpy().astype(np.float32),
                "head_rotation": self.head_pose(x).numpy().astype(np.float32)}

    def identity_from_arrays(self, arrays: dict) -> np.ndarray | None:
        """The clip's ``shape`` (``[n]`` or ``[T, n]``, first frame, as DiffPoseTalk reads it) as
        ``[n_shape]`` float32 (zero-padded or cut), or None when the clip has none."""
        if "shape" not in arrays:
            return None
        beta = np.asarray(arrays["shape"], np.float32)
        return self.shape_coefficients((beta[0] if beta.ndim == 2 else beta.reshape(-1))[:self.n_shape])

    def identity_arrays(self, identity, frames: int) -> dict[str, np.ndarray]:
        """DiffPoseTalk's ``shape [T, n_shape]`` float32 (beta repeated over the frames, as its
        ``demo.py`` saves it; zeros, the mean face, for None)."""
        beta = np.zeros(self.n_shape, np.float32) if identity is None else self.shape_coefficients(identity)
        return {"shape": np.repeat(beta[None], frames, 0)}

    def shape_coefficients(self, identity) -> np.ndarray | None:
        """beta ``[n_shape]`` float32 from None (the mean face: None) or at most ``n_shape``
        coefficients (zero-padded).

        Raises:
            ValueError: an ``int`` seed (FLAME has no identity prior here), more than ``n_shape``
                coefficients, or non-finite values.
        """
        beta = super().shape_coefficients(identity)
        if beta is None:
            return None
        beta = beta.reshape(-1)
        if len(beta) > self.n_shape:
            raise ValueError(f"identity: {len(beta)} FLAME shape coefficients, the model uses {self.n_shape}")
        return np.pad(beta, (0, self.n_shape - len(beta)))

    # ------------------------------------------------------------------ decoding
    def pose(self, x: torch.Tensor, with_global: bool = True) -> torch.Tensor:
        """FLAME's full pose ``[..., 5, 3]`` axis-angle radians (global, neck, jaw, left eye,
        right eye) of a motion ``x [..., dim]``; neck and eyes zero, global zero unless
        ``with_global`` and the space has head pose."""
        self._check(x)
        full = x.new_zeros(*x.shape[:-1], len(FLAME_JOINTS), 3)
        jaw = x[..., self.dim - self.jaw_dims:]
        full[..., 2, :self.jaw_dims] = jaw
        if with_global and self.has_head_pose:
            full[..., 0, :] = x[..., self.n_exp:self.n_exp + 3]
        return full

    def flame(self, shape: torch.Tensor | None, expression: torch.Tensor, pose: torch.Tensor,
              indices: torch.Tensor | None = None) -> torch.Tensor:
        """The FLAME mesh (:func:`lbs`) of any parameters.

        Args:
            shape: ``[..., <= n_shape]`` beta (broadcast over the leading dims) or None (zeros).
            expression: ``[..., n_exp]`` psi.
            pose: ``[..., 5, 3]`` axis-angle radians (global, neck, jaw, left eye, right eye).
            indices: ``[K]`` vertex indices, or None for all.
        Returns:
            ``[..., V or K, 3]`` metres.
        Raises:
            ValueError: more shape coefficients than ``n_shape``.
        """
        lead = expression.shape[:-1]
        dt = self.v_template.dtype
        betas = expression.new_zeros(*lead, self.n_shape + self.n_exp, dtype=dt)
        if shape is not None:
            shape = torch.as_tensor(shape, dtype=dt, device=betas.device)
            if shape.shape[-1] > self.n_shape:
                raise ValueError(f"FlameSpace: at most {self.n_shape} shape coefficients, got {shape.shape[-1]}")
            betas[..., :shape.shape[-1]] = shape
        betas[..., self.n_shape:] = expression.to(dt)
        if indices is not None:
            indices = torch.as_tensor(indices, dtype=torch.long, device=betas.device)
        v = lbs(betas.reshape(-1, betas.shape[-1]), pose.to(dt).reshape(-1, len(FLAME_JOINTS), 3), self.v_template,
                self.shapedirs, self.posedirs, self.j_regressor, self.parents, self.weights, indices)
        return v.view(*lead, v.shape[-2], 3)

    def _shape_frames(self, shape, x: torch.Tensor):
        """Per-sequence ``shape [..., S]`` broadcast to the frames of ``x [..., T, D]``."""
        if shape is None:
            return None
        s = torch.as_tensor(shape, dtype=self.v_template.dtype, device=x.device)
        return s.unsqueeze(-2).expand(*x.shape[:-1], s.shape[-1]) if x.dim() >= 2 else s

    def expression_vertices(self, x: torch.Tensor, indices: torch.Tensor | None = None,
                            shape: torch.Tensor | None = None) -> torch.Tensor:
        """FLAME vertices with zero global rotation: ``x [..., T, dim] -> [..., T, V, 3]`` metres
        (``[..., T, K, 3]`` for ``indices [K]``); ``shape [..., <= n_shape]`` beta per sequence.

        Raises:
            ValueError: the last dimension is not :attr:`dim`.
        """
        self._check(x)
        return self.flame(self._shape_frames(shape, x), x[..., :self.n_exp], self.pose(x, with_global=False), indices)

    def decode(self, x: torch.Tensor, shape: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The posed FLAME mesh (global rotation about FLAME's root joint, by :func:`lbs`) and the
        head pose: ``x [..., T, dim] -> ([..., T, V, 3] metres, [..., T, 3] radians pitch/yaw/roll)``.

        Raises:
            ValueError: the last dimension is not :attr:`dim`.
        """
        self._check(x)
        verts = self.flame(self._shape_frames(shape, x), x[..., :self.n_exp], self.pose(x))
        return verts, self.head_pose(x)

    def head_pose(self, x: torch.Tensor) -> torch.Tensor:
        """The global rotation as ``[..., 3]`` radians (pitch, yaw, roll; FLAME's axes are
        facemotion's: +y up, +z out of the face); zeros without head pose."""
        self._check(x)
        if not self.has_head_pose:
            return x.new_zeros(*x.shape[:-1], 3)
        return matrix_to_euler(axis_angle_to_matrix(x[..., self.n_exp:self.n_exp + 3]))

    def mesh(self, shape=None) -> FaceMesh:
        """The neutral FLAME mesh with ``shape [<= n_shape]`` applied, faces, ``lips`` /
        ``upper_face`` regions, lip landmarks and the root joint as neck pivot."""
        x = torch.zeros(self.dim)
        with torch.no_grad():
            neutral = self.expression_vertices(x, shape=None if shape is None else torch.as_tensor(shape)).numpy()
        up, lo = self.lip_landmarks
        return FaceMesh(neutral=neutral.astype(np.float32), faces=self.faces,
                        regions={"lips": self.lip_indices.numpy(), "upper_face": self.upper_face_indices.numpy()},
                        landmarks={"upper_lip_mid": up, "lower_lip_mid": lo}, neck_pivot=self.neck_pivot.numpy())


__all__ = ["FlameSpace", "FlameUnpickler", "axis_angle_to_matrix", "lbs", "load_flame_model", "loads_data_pickle",
           "read_data_pickle", "with_flame_model"]
