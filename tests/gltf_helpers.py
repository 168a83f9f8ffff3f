"""glTF checks shared by the export tests: the Khronos validator and accessor decoding."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def khronos_issues(path: Path) -> dict:
    """The Khronos glTF validator's ``issues`` report of ``path`` (``numErrors``, ``numWarnings``,
    ``messages``), from the npm package ``gltf-validator`` that ``make setup`` installs."""
    validator = ROOT / "node_modules" / "gltf-validator"
    assert validator.is_dir(), "gltf-validator missing: run `make setup` (npm ci)"
    script = ("const v=require(process.argv[1]);const fs=require('fs');"
              "v.validateBytes(new Uint8Array(fs.readFileSync(process.argv[2])))"
              ".then(r=>console.log(JSON.stringify(r.issues)))")
    out = subprocess.run(["node", "-e", script, str(validator), str(path)], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def accessor(gltf, index: int) -> np.ndarray:
    """Decode accessor ``index`` of a loaded GLB (float32 / uint32 scalars, vectors or 4x4 matrices,
    tightly packed, sparse) as ``[count, width]``."""
    import pygltflib as gl

    acc = gltf.accessors[index]
    width = {"SCALAR": 1, "VEC3": 3, "VEC4": 4, "MAT4": 16}[acc.type]
    dtype = np.uint32 if acc.componentType == gl.UNSIGNED_INT else np.float32

    def view(i: int, count: int, dtype=dtype, width=width) -> np.ndarray:
        v = gltf.bufferViews[i]
        data = gltf.binary_blob()[v.byteOffset:][:count * width * 4]
        return np.frombuffer(data, dtype).reshape(count, width)

    if acc.bufferView is not None:
        return view(acc.bufferView, acc.count)
    out = np.zeros((acc.count, width), dtype)
    if acc.sparse is not None:
        rows = view(acc.sparse.indices.bufferView, acc.sparse.count, np.uint32, 1)[:, 0]
        out[rows] = view(acc.sparse.values.bufferView, acc.sparse.count)
    return out
