"""A small synthetic FLAME model written in the exact layout of FLAME 2020's ``generic_model.pkl``.

Same keys, dtypes and shape pattern as the real file (``v_template [V, 3]`` float64,
``shapedirs [V, 3, 400]`` as a ``chumpy.ch.Ch`` object, ``posedirs [V, 3, 36]`` float64,
``J_regressor [5, V]`` scipy ``csc_matrix``, ``weights [V, 5]``, ``kintree_table [2, 5]`` with the
root's parent stored as 4294967295, ``f [F, 3]`` uint32, ``J [5, 3]``, ``bs_style``, ``bs_type``),
but 12 vertices. The chumpy object is pickled under the class name ``chumpy.ch.Ch`` by a
stand-in module that exists only while the file is written, so loading it exercises the
chumpy-free unpickler.
"""

from __future__ import annotations

import pickle
import sys
import types
from pathlib import Path

import numpy as np
import scipy.sparse

V = 12
#: lips (upper midline 0, lower midline 1, corners 2, 3), upper face (brows 8-11)
LIPS, UPPER = np.array([0, 1, 2, 3]), np.array([8, 9, 10, 11])


class _Ch:
    """Pickles like chumpy's ``Ch``: its state is a dict holding the value in ``x``."""

    def __init__(self, x):
        self.x = x
        self._dirty_vars = set()

    def __getstate__(self):
        return {"x": self.x, "_dirty_vars": self._dirty_vars}


def synthetic_flame(seed: int = 0) -> dict:
    """The arrays of the synthetic model (``shapedirs`` as a plain array)."""
    rng = np.random.default_rng(seed)
    template = np.array([
        [0.0, -0.030, 0.090], [0.0, -0.045, 0.088], [0.025, -0.038, 0.080], [-0.025, -0.038, 0.080],  # lips
        [0.0, -0.080, 0.070], [0.040, -0.070, 0.050], [-0.040, -0.070, 0.050],  # chin / jaw line
        [0.0, 0.0, 0.100],  # nose
        [0.035, 0.040, 0.080], [-0.035, 0.040, 0.080], [0.030, 0.070, 0.085], [-0.030, 0.070, 0.085],  # eyes, brows
    ])
    joints_from = [[4, 5, 6, 7], [4, 5, 6], [0, 1, 4], [8, 10], [9, 11]]  # vertices each joint regresses from
    jreg = np.zeros((5, V))
    for j, vs in enumerate(joints_from):
        jreg[j, vs] = 1.0 / len(vs)
    weights = rng.random((V, 5)) ** 3
    weights[[0, 1, 4], 2] += 3.0  # lips and chin follow the jaw
    weights /= weights.sum(1, keepdims=True)
    faces = np.array([[0, 2, 7], [0, 7, 3], [1, 2, 0], [1, 0, 3], [4, 5, 1], [4, 1, 6], [8, 10, 9], [9, 10, 11]],
                     np.uint32)
    return {
        "f": faces,
        "v_template": template,
        "shapedirs": rng.normal(0, 1e-3, (V, 3, 400)),
        "posedirs": rng.normal(0, 1e-3, (V, 3, 36)),
        "kintree_table": np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]], np.int64),
        "J": jreg @ template,
        "weights": weights,
        "J_regressor": scipy.sparse.csc_matrix(jreg),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }


def write_flame_pkl(path: Path, seed: int = 0) -> dict:
    """Write the synthetic model as FLAME 2020's pickle (``shapedirs`` a ``chumpy.ch.Ch``);
    returns its arrays."""
    model = synthetic_flame(seed)
    chumpy, ch = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")
    cls = type("Ch", (_Ch,), {"__module__": "chumpy.ch"})
    ch.Ch, chumpy.ch = cls, ch
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = chumpy, ch
    try:
        with open(path, "wb") as f:
            pickle.dump({**model, "shapedirs": cls(model["shapedirs"])}, f, protocol=2)
    finally:
        del sys.modules["chumpy"], sys.modules["chumpy.ch"]
    return model


def write_regions(root: Path) -> Path:
    """``lve.txt`` / ``fdd.txt`` of the synthetic model in the shared files' format (one line,
    comma-separated, no newline); returns the directory."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "lve.txt").write_text(",".join(map(str, LIPS)))
    (root / "fdd.txt").write_text(",".join(map(str, UPPER)))
    return root


def write_diffposetalk_lmdb(root: Path, clips: dict[str, int], seg_len: int = 10, seed: int = 0,
                            splits: dict[str, list[str]] | None = None) -> dict:
    """DiffPoseTalk's HDTF/TFHP LMDB layout (``make_combined_dataset.py``): ``metadata`` ->
    ``{"seg_len"}``, ``<person>/<NNN>/metadata`` -> ``{"n_frames"}``, segments ``<clip>/000``, ...
    of ``seg_len`` frames -> ``{"audio": FLAC bytes (16 kHz, 16 bit), "coef": {"shape" [n, 100],
    "exp" [n, 50], "pose" [n, 6]}}`` (float32, pickled with the highest protocol), ``keys.txt`` and
    the split files. Returns clip key -> (coef [T, ...] float32, audio [T * 640] as decoded)."""
    import io

    import lmdb
    import soundfile as sf

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    truth = {}
    env = lmdb.open(str(root), map_size=64 * 2**20)
    with env.begin(write=True) as txn:
        txn.put(b"metadata", pickle.dumps({"seg_len": seg_len}, protocol=pickle.HIGHEST_PROTOCOL))
        for key, n in clips.items():
            shape = np.repeat(rng.normal(0, 1, (1, 100)), n, 0).astype(np.float32)
            t = np.arange(n)[:, None] / 25.0  # smooth motion: a sinusoid per coefficient (seconds)
            wave = np.sin(2 * np.pi * rng.uniform(0.3, 2.0, (1, 54)) * t + rng.uniform(0, 2 * np.pi, (1, 54)))
            pose = np.concatenate([0.1 * wave[:, 50:], np.zeros((n, 2))], 1)  # global, jaw x; jaw y/z 0
            coef = {"shape": shape, "exp": wave[:, :50].astype(np.float32), "pose": pose.astype(np.float32)}
            audio = np.round(rng.normal(0, 0.1, n * 640) * 32767).clip(-32768, 32767) / 32768
            truth[key] = (coef, audio.astype(np.float32))
            txn.put(f"{key}/metadata".encode(), pickle.dumps({"n_frames": n}, protocol=pickle.HIGHEST_PROTOCOL))
            for i in range(-(-n // seg_len)):
                a, b = i * seg_len, min((i + 1) * seg_len, n)
                buf = io.BytesIO()
                sf.write(buf, audio[a * 640:b * 640], 16000, format="FLAC", subtype="PCM_16")
                entry = {"audio": buf.getvalue(), "coef": {k: v[a:b] for k, v in coef.items()}}
                txn.put(f"{key}/{i:03d}".encode(), pickle.dumps(entry, protocol=pickle.HIGHEST_PROTOCOL))
    env.close()
    (root / "keys.txt").write_text("\n".join(clips))
    for split, keys in (splits or {}).items():
        (root / f"{split}.txt").write_text("".join(k + "\n" for k in keys))
    return truth
