"""Blender 5 (the ``bpy`` wheel, headless) imports the exported GLB and USD with every ARKit shape
key animated over the animation's frames.

``bpy`` 5.0.1 pins numpy < 2, so ``make setup`` installs it into its own small environment
``.venv/blender``; the test runs Blender there in a subprocess (or in this interpreter's own
Python if ``bpy`` is importable here), and is skipped where neither has it.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from facemotion.animation import Animation
from facemotion.face.arkit import ARKIT_INDEX

ROOT = Path(__file__).resolve().parents[1]
BLENDER_PYTHON = Path(sys.executable) if importlib.util.find_spec("bpy") else ROOT / ".venv" / "blender" / "bin" / "python"

pytestmark = pytest.mark.skipif(not BLENDER_PYTHON.exists(),
                                reason="bpy not installed (`make setup` puts it into .venv/blender)")

#: run by Blender's Python: import each file into an empty scene, report its shape keys as JSON
SCRIPT = """
import json, sys
import bpy
from bpy_extras import anim_utils

glb, usd, fps = sys.argv[1], sys.argv[2], float(sys.argv[3])

def shape_keys():
    found = []
    for obj in bpy.data.objects:
        if obj.type != "MESH" or not obj.data.shape_keys:
            continue
        key = obj.data.shape_keys
        animated, frames = set(), []
        if key.animation_data and key.animation_data.action:
            bag = anim_utils.action_get_channelbag_for_slot(key.animation_data.action, key.animation_data.action_slot)
            for curve in bag.fcurves:
                if curve.data_path.startswith('key_blocks["'):
                    animated.add(curve.data_path.split('"')[1])
                    frames += list(curve.range())
        found.append({"keys": [k.name for k in key.key_blocks], "animated": sorted(animated),
                      "frames": [min(frames), max(frames)]})
    moved = sorted(o.name for o in bpy.data.objects if o.type != "MESH" and o.animation_data and o.animation_data.action)
    return {"meshes": found, "animated_objects": moved}

report = {}
bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.context.scene.render.fps = round(fps)  # glTF keys are seconds; Blender places them by the scene fps
bpy.ops.import_scene.gltf(filepath=glb)
report["glb"] = shape_keys()
bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.ops.wm.usd_import(filepath=usd)
report["usd"] = shape_keys()
print("REPORT" + json.dumps(report))
"""


def test_blender_imports_glb_and_usd_with_52_animated_shape_keys(tmp_path):
    import pygltflib

    t = np.arange(50) / 25.0
    bs = np.zeros((50, 52), np.float32)
    bs[:, ARKIT_INDEX["jawOpen"]] = 0.5 * np.sin(np.pi * t) ** 2
    head = np.stack([0.05 * np.sin(2 * np.pi * t), 0.3 * np.sin(np.pi * t), 0 * t], 1)
    paths = Animation.from_blendshapes(bs, head, 25.0).save(tmp_path, formats=["glb", "usd"])
    fps = pygltflib.GLTF2.load(str(paths["glb"])).animations[0].extras["fps"]
    done = subprocess.run([str(BLENDER_PYTHON), "-c", SCRIPT, str(paths["glb"]), str(paths["usd"]), str(fps)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.split("REPORT", 1)[1])
    for fmt, head_object in (("glb", "head_pivot"), ("usd", "Skeleton")):
        (mesh,) = report[fmt]["meshes"]
        assert len(mesh["keys"]) == 53 and len(mesh["animated"]) == 52, (fmt, mesh["keys"][:3])
        assert mesh["frames"] == [0, 49], fmt  # 50 frames at 25 fps
        assert head_object in report[fmt]["animated_objects"], (fmt, report[fmt]["animated_objects"])
