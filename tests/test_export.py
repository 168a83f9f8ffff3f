"""Every export format round-trips; the GLB passes the Khronos validator; writers are atomic."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from facemotion.animation import Animation, head_quaternions
from facemotion.errors import DataError
from facemotion.api import export_file
from facemotion.face.arkit import ARKIT_BLENDSHAPES, ARKIT_INDEX
from facemotion.face.rig import load_head_rig
from gltf_helpers import accessor, khronos_issues

ROOT = Path(__file__).resolve().parents[1]
SPEECH = ROOT / "examples" / "cmu_arctic_slt_a0009.wav"


def scripted_animation(seconds: float = 2.0, fps: float = 25.0) -> Animation:
    """Opens and closes the jaw twice, blinks at 0.5 s and 1.5 s, turns and nods the head."""
    t = np.arange(int(seconds * fps)) / fps
    bs = np.zeros((len(t), 52), np.float32)
    bs[:, ARKIT_INDEX["jawOpen"]] = 0.6 * np.sin(np.pi * t / (seconds / 2)) ** 2
    blink = np.exp(-((t[:, None] - np.array([0.5, 1.5])) / 0.06) ** 2).sum(axis=1)
    bs[:, ARKIT_INDEX["eyeBlinkLeft"]] = bs[:, ARKIT_INDEX["eyeBlinkRight"]] = blink
    bs[:, ARKIT_INDEX["mouthSmileLeft"]] = 0.3 * t / seconds
    head = np.stack([0.08 * np.sin(2 * np.pi * t / seconds),      # pitch: a nod
                     0.35 * np.sin(np.pi * t / seconds),          # yaw: turn left and back
                     0.05 * np.sin(4 * np.pi * t / seconds)], 1)  # roll
    return Animation.from_blendshapes(bs, head, fps, audio=SPEECH, seed=7)


@pytest.fixture(scope="module")
def rig():
    return load_head_rig()


@pytest.fixture(scope="module")
def anim():
    return scripted_animation()


def test_npz_round_trip_with_vertices(anim, rig, tmp_path):
    path = anim.save(tmp_path, formats=["npz"], with_vertices=True)["npz"]
    back = Animation.load(path)
    np.testing.assert_array_equal(back.blendshapes, anim.blendshapes)
    np.testing.assert_array_equal(back.head_rotation, anim.head_rotation)
    assert (back.fps, back.seed, back.audio) == (25.0, 7, SPEECH)
    with np.load(path) as z:
        assert list(z["blendshape_names"]) == list(ARKIT_BLENDSHAPES)
        verts = z["vertices"]
        np.testing.assert_array_equal(z["faces"], rig.faces)
        assert json.loads(str(z["landmarks"])) == {k: int(v) for k, v in rig.landmarks.items()}
    assert verts.shape == (anim.num_frames, len(rig.neutral), 3)
    np.testing.assert_allclose(verts, anim.vertices(), atol=1e-6)
    # the head turns about the neck pivot: yawed frames move the nose sideways (+x = left)
    nose = rig.landmarks["nose_tip"]
    turned = int(np.argmax(anim.head_rotation[:, 1]))
    assert verts[turned, nose, 0] - rig.neutral[nose, 0] > 0.01


def test_load_reorders_columns_by_name(anim, tmp_path):
    order = np.random.default_rng(0).permutation(52)
    path = tmp_path / "shuffled.npz"
    np.savez(path, blendshapes=anim.blendshapes[:, order], head_rotation=anim.head_rotation,
             fps=25.0, blendshape_names=np.array(ARKIT_BLENDSHAPES)[order])
    np.testing.assert_array_equal(Animation.load(path).blendshapes, anim.blendshapes)


@pytest.mark.parametrize("content, problem", [
    (b"not a zip", "not a readable"),
    ({"blendshapes": np.zeros((4, 52))}, "missing"),
    ({"blendshapes": np.zeros((4, 51)), "head_rotation": np.zeros((4, 3)), "fps": 25.0}, "52"),
    ({"blendshapes": np.zeros((4, 52)), "head_rotation": np.zeros((3, 3)), "fps": 25.0}, "[4, 3]"),
    ({"blendshapes": np.full((4, 52), np.nan), "head_rotation": np.zeros((4, 3)), "fps": 25.0},
     "NaN"),
    ({"blendshapes": np.zeros((4, 52)), "head_rotation": np.zeros((4, 3)), "fps": 0.0}, "fps"),
])
def test_load_rejects_malformed_files(tmp_path, content, problem):
    path = tmp_path / "bad.npz"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        np.savez(path, **content)
    with pytest.raises(DataError, match="bad.npz") as err:
        Animation.load(path)
    assert problem in str(err.value)
    with pytest.raises(DataError, match="missing.npz: no such"):
        Animation.load(tmp_path / "missing.npz")


def _gazing(anim: Animation) -> Animation:
    """``anim`` with the eyes looking toward the subject's left, then down."""
    bs = anim.blendshapes.copy()
    t = np.arange(anim.num_frames) / anim.fps
    for name in ("eyeLookOutLeft", "eyeLookInRight"):
        bs[:, ARKIT_INDEX[name]] = 0.8 * (t < 1.0)
    for name in ("eyeLookDownLeft", "eyeLookDownRight"):
        bs[:, ARKIT_INDEX[name]] = 0.5 * (t >= 1.0)
    return Animation.from_blendshapes(bs, anim.head_rotation, anim.fps, audio=anim.audio)


def test_arkit_csv_layout_units_and_round_trip(anim, tmp_path):
    from facemotion.cli import main
    from facemotion.data.native import load_motion, read_manifest
    from facemotion.export.arkit_csv import EYE_LOOK_DEGREES, resample

    gaze = _gazing(anim)
    path = gaze.save(tmp_path, formats=["csv"])["csv"]  # 25 fps -> 60 fps, the default
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    assert header[:4] == ["Timecode", "BlendShapeCount", "EyeBlinkLeft", "EyeLookDownLeft"]
    assert header[2 + ARKIT_INDEX["jawOpen"]] == "JawOpen"
    assert header[54:] == ["HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch",
                           "LeftEyeRoll", "RightEyeYaw", "RightEyePitch", "RightEyeRoll"]
    assert len(lines) == 120 + 1  # 2 s at 60 fps
    rows = np.array([[float(x) for x in line.split(",")[1:]] for line in lines[1:]])
    assert lines[1 + 61].split(",")[0] == "00:00:01:01.000" and set(rows[:, 0]) == {61}
    # angles in degrees / 180 (Unreal's ARKit mapping): a 0.35 rad turn reads 0.35 / pi
    t60 = np.arange(120) / 60
    np.testing.assert_allclose(rows[:, 53], np.interp(t60, np.arange(50) / 25, anim.head_rotation[:, 1]) / np.pi,
                               atol=1e-6)
    # eyes from the eyeLook weights: both turned toward the subject's left (+yaw), then down (+pitch)
    left_yaw, left_pitch, right_yaw, right_pitch = rows[:, 56], rows[:, 57], rows[:, 59], rows[:, 60]
    assert left_yaw[0] == pytest.approx(0.8 * EYE_LOOK_DEGREES["Out"] / 180, abs=1e-6)
    assert right_yaw[0] == pytest.approx(0.8 * EYE_LOOK_DEGREES["In"] / 180, abs=1e-6)
    assert left_pitch[-1] == right_pitch[-1] == pytest.approx(0.5 * EYE_LOOK_DEGREES["Down"] / 180, abs=1e-6)
    assert left_yaw[-1] == right_yaw[-1] == 0 and not rows[:, [58, 61]].any()

    # read back (Animation and `facemotion convert --from livelink-csv`): the same motion at 60 fps
    expected_bs = resample(gaze.blendshapes, 25.0, 60.0)
    expected_head = resample(gaze.head_rotation, 25.0, 60.0)
    back = Animation.from_arkit_csv(path)
    assert back.fps == 60.0 and back.duration == pytest.approx(gaze.duration)
    np.testing.assert_allclose(back.blendshapes, expected_bs, atol=1e-6)
    np.testing.assert_allclose(back.head_rotation, expected_head, atol=5e-6)  # 6 digits of angle / pi
    sf = pytest.importorskip("soundfile")
    sf.write(tmp_path / "animation.wav", np.zeros(32000, np.float32), 16000)
    assert main(["convert", "--from", "livelink-csv", str(path), "-o", str(tmp_path / "data")]) == 0
    (record,) = read_manifest(tmp_path / "data")
    arrays = load_motion(tmp_path / "data", record)
    assert record["fps"] == 60.0
    np.testing.assert_allclose(arrays["blendshapes"], expected_bs, atol=1e-6)
    np.testing.assert_allclose(arrays["head_rotation"], expected_head, atol=5e-6)

    (tmp_path / "bad.csv").write_text("Timecode,Foo\n00:00:00:00.000,1\n")
    with pytest.raises(DataError, match="bad.csv: not a Live Link Face CSV"):
        Animation.from_arkit_csv(tmp_path / "bad.csv")
    with pytest.raises(DataError, match="--csv-fps 25: Live Link Face CSVs run at 30 or 60 fps"):
        export_file(tmp_path / gaze.save(tmp_path, formats=["npz"])["npz"], to="csv",
                    output=tmp_path / "x.csv", csv_fps=25)


@pytest.mark.parametrize("csv_fps, importers", [(60, ("old", "new")), (30, ("new",))])
def test_arkit_csv_timing_as_unreal_imports_it(anim, tmp_path, csv_fps, importers):
    """Replay Unreal's LiveLinkFaceImporter: time = HH:MM:SS + FF.mmm / rate, where the rate is 60
    (older importers) or 60 if any FF.mmm exceeds 30, else 30 (newer ones). Every row must land
    within half a frame of its time in the motion, and carry the motion's value at that time."""
    npz = anim.save(tmp_path, formats=["npz"])["npz"]
    path = export_file(npz, to="csv", output=tmp_path / "take.csv", csv_fps=csv_fps)
    rows = [line.split(",") for line in path.read_text().splitlines()[1:]]
    codes = [r[0].split(":") for r in rows]
    frames = np.array([float(c[3]) for c in codes])
    seconds = np.array([int(c[0]) * 3600 + int(c[1]) * 60 + int(c[2]) for c in codes])
    motion_times = np.arange(len(rows)) / csv_fps
    assert len(rows) == round(anim.duration * csv_fps)
    jaw = np.array([float(r[2 + ARKIT_INDEX["jawOpen"]]) for r in rows])
    for importer in importers:
        rate = 60.0 if importer == "old" or frames.max() > 30 else 30.0
        times = seconds + frames / rate
        assert np.abs(times - motion_times).max() <= 0.5 / csv_fps
        expected = np.interp(times, np.arange(anim.num_frames) / anim.fps, anim.blendshapes[:, ARKIT_INDEX["jawOpen"]])
        np.testing.assert_allclose(jaw, expected, atol=1e-5)


def test_glb_passes_khronos_validator_and_round_trips(anim, rig, tmp_path):
    import pygltflib as gl
    import trimesh

    from facemotion.face.rotation import euler_to_matrix

    path = anim.save(tmp_path, formats=["glb"])["glb"]
    issues = khronos_issues(path)
    assert issues["numErrors"] == 0, issues["messages"][:5]

    gltf = gl.GLTF2.load(str(path))
    mesh = gltf.meshes[0]
    assert mesh.extras["targetNames"] == list(ARKIT_BLENDSHAPES)
    prim = mesh.primitives[0]
    assert len(prim.targets) == 52 and prim.attributes.NORMAL is not None
    neutral = accessor(gltf, prim.attributes.POSITION)
    deltas = np.stack([accessor(gltf, t["POSITION"]) for t in prim.targets])
    assert gltf.accessors[prim.targets[0]["POSITION"]].sparse is not None
    np.testing.assert_array_equal(neutral, rig.neutral)
    np.testing.assert_array_equal(deltas, rig.deltas)
    np.testing.assert_array_equal(accessor(gltf, prim.indices).reshape(-1, 3), rig.faces)

    (anim_gl,) = gltf.animations
    assert anim_gl.extras == {"fps": 25.0} and gltf.nodes[0].name == "head_pivot"
    by_path = {c.target.path: anim_gl.samplers[c.sampler] for c in anim_gl.channels}
    assert {s.interpolation for s in anim_gl.samplers} == {"LINEAR"}
    times = accessor(gltf, by_path["weights"].input)[:, 0]
    np.testing.assert_allclose(times, np.arange(anim.num_frames) / 25.0, atol=1e-6)
    weights = accessor(gltf, by_path["weights"].output).reshape(anim.num_frames, 52)
    np.testing.assert_array_equal(weights, anim.blendshapes)
    quats = accessor(gltf, by_path["rotation"].output)
    np.testing.assert_allclose(quats, head_quaternions(anim.head_rotation), atol=1e-6)

    # composing the node transforms of frame i reproduces the animation's vertices
    from scipy.spatial.transform import Rotation

    pivot = np.array(gltf.nodes[0].translation)
    i = int(np.argmax(np.abs(anim.head_rotation[:, 1])))
    rot = Rotation.from_quat(quats[i]).as_matrix()
    np.testing.assert_allclose(rot, euler_to_matrix(anim.head_rotation[i].astype(np.float64)),
                               atol=1e-6)
    local = neutral + np.tensordot(weights[i], deltas, axes=1) + gltf.nodes[1].translation
    np.testing.assert_allclose(local @ rot.T + pivot, anim.vertices()[i], atol=1e-5)

    loaded = trimesh.load(path, force="mesh")
    assert len(loaded.vertices) == len(rig.neutral)


def test_usd_round_trip_with_skinning(anim, rig, tmp_path):
    from pxr import Usd, UsdGeom, UsdSkel, UsdValidation

    path = anim.save(tmp_path, formats=["usd"])["usd"]
    stage = Usd.Stage.Open(str(path))
    # every validator usd-core registers (UsdGeom, UsdSkel, UsdShade, UsdUtils, ...) passes
    validators = UsdValidation.ValidationRegistry().GetOrLoadAllValidators()
    assert len(validators) >= 20
    errors = UsdValidation.ValidationContext(validators).Validate(stage)
    assert [(e.GetName(), e.GetMessage()) for e in errors] == []
    geom = UsdGeom.Mesh(stage.GetPrimAtPath("/Head/Mesh"))
    assert len(geom.GetNormalsAttr().Get()) == rig.num_vertices
    assert geom.GetNormalsInterpolation() == UsdGeom.Tokens.vertex
    np.testing.assert_allclose(np.array(geom.GetExtentAttr().Get()), [rig.neutral.min(0), rig.neutral.max(0)],
                               atol=1e-6)
    assert stage.GetTimeCodesPerSecond() == 25.0
    assert stage.GetDefaultPrim().IsA(UsdSkel.Root)
    mesh = stage.GetPrimAtPath("/Head/Mesh")
    binding = UsdSkel.BindingAPI(mesh)
    names = list(binding.GetBlendShapesAttr().Get())
    assert names == list(ARKIT_BLENDSHAPES)
    deltas = np.zeros_like(rig.deltas)
    for k, target in enumerate(binding.GetBlendShapeTargetsRel().GetTargets()):
        shape = UsdSkel.BlendShape(stage.GetPrimAtPath(target))
        deltas[k, np.array(shape.GetPointIndicesAttr().Get())] = shape.GetOffsetsAttr().Get()
    np.testing.assert_array_equal(deltas, rig.deltas)
    points = np.array(mesh.GetAttribute("points").Get())
    np.testing.assert_array_equal(points, rig.neutral)

    skel_anim = UsdSkel.Animation(stage.GetPrimAtPath("/Head/Animation"))
    skel = UsdSkel.Skeleton(stage.GetPrimAtPath("/Head/Skeleton"))
    assert list(skel.GetJointsAttr().Get()) == ["head"]
    cache = UsdSkel.Cache()
    cache.Populate(UsdSkel.Root(stage.GetDefaultPrim()), Usd.PrimDefaultPredicate)
    query = cache.GetSkelQuery(skel)
    vertices = anim.vertices()
    for i in (0, 12, 37):
        w = np.array(skel_anim.GetBlendShapeWeightsAttr().Get(i))
        np.testing.assert_array_equal(w, anim.blendshapes[i])
        skinning = np.array(query.ComputeSkinningTransforms(i)[0])  # row-vector convention
        shaped = points + np.tensordot(w, deltas, axes=1)
        posed = np.c_[shaped, np.ones(len(shaped))] @ skinning
        np.testing.assert_allclose(posed[:, :3], vertices[i], atol=1e-5)


@pytest.mark.parametrize("fmt", ["obj", "ply"])
def test_mesh_sequence_round_trip(anim, rig, tmp_path, fmt):
    from facemotion.export.meshseq import read_mesh_sequence

    short = Animation.from_blendshapes(anim.blendshapes[:6], anim.head_rotation[:6], anim.fps)
    directory = short.save(tmp_path, formats=[fmt])[fmt]
    assert directory == tmp_path / f"animation_{fmt}"
    assert sorted(p.name for p in directory.iterdir())[:2] == [f"frame_00000.{fmt}",
                                                               f"frame_00001.{fmt}"]
    meshes = read_mesh_sequence(directory)
    assert len(meshes) == 6
    for mesh, verts in zip(meshes, short.vertices()):
        np.testing.assert_allclose(mesh.vertices, verts, atol=1e-6)
        np.testing.assert_array_equal(mesh.faces, rig.faces)


def test_identity_travels_into_every_mesh_export(anim, rig, tmp_path):
    import pygltflib as gl
    from pxr import Usd, UsdGeom

    from facemotion.export.meshseq import read_mesh_sequence

    beta = rig.identity_coefficients(3)
    face = Animation.from_blendshapes(anim.blendshapes[:4], anim.head_rotation[:4], anim.fps, identity=beta)
    shaped = rig.with_identity(beta).neutral
    assert np.abs(shaped - rig.neutral).max() > 0.002
    paths = face.save(tmp_path, formats=["npz", "glb", "usd", "obj"])
    np.testing.assert_array_equal(Animation.load(paths["npz"]).identity, beta)
    gltf = gl.GLTF2.load(str(paths["glb"]))
    prim = gltf.meshes[0].primitives[0]
    np.testing.assert_array_equal(accessor(gltf, prim.attributes.POSITION), shaped)
    colours = accessor(gltf, prim.attributes.COLOR_0)           # per-part colours
    assert colours[rig.regions["pupil_left"]].max() < 0.05 < colours[rig.regions["teeth"]].min()
    stage = Usd.Stage.Open(str(paths["usd"]))
    mesh = UsdGeom.Mesh(stage.GetPrimAtPath("/Head/Mesh"))
    np.testing.assert_array_equal(np.array(mesh.GetPointsAttr().Get()), shaped)
    assert len(mesh.GetNormalsAttr().Get()) == rig.num_vertices
    extent = np.array(mesh.GetExtentAttr().Get())
    np.testing.assert_allclose(extent, [shaped.min(0), shaped.max(0)], atol=1e-6)
    for mesh_obj, verts in zip(read_mesh_sequence(paths["obj"]), face.vertices()):
        np.testing.assert_allclose(mesh_obj.vertices, verts, atol=1e-6)
    np.testing.assert_allclose(face.vertices()[0], rig.with_identity(beta).vertices(
        face.blendshapes[0], face.head_rotation[0]), atol=1e-6)


def test_failed_writers_leave_nothing_under_the_final_name(anim, tmp_path, monkeypatch):
    import pygltflib
    import trimesh

    final = tmp_path / "animation.glb"
    final.write_bytes(b"previous")

    def half_write(self, fname):
        Path(fname).write_bytes(b"glTF half")
        raise OSError("disk full")

    monkeypatch.setattr(pygltflib.GLTF2, "save_binary", half_write)
    with pytest.raises(OSError, match="disk full"):
        anim.save(tmp_path, formats=["glb"])
    assert final.read_bytes() == b"previous"

    calls = []

    def export_then_fail(self, file_obj=None, **kwargs):
        calls.append(file_obj)
        if len(calls) == 3:
            raise RuntimeError("interrupted")
        Path(file_obj).write_text("v 0 0 0\n")

    monkeypatch.setattr(trimesh.Trimesh, "export", export_then_fail)
    with pytest.raises(RuntimeError, match="interrupted"):
        anim.save(tmp_path, formats=["obj"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["animation.glb"]


def test_cli_export_version_and_errors(anim, tmp_path, capsys):
    from facemotion import __version__
    from facemotion.cli import main

    npz = anim.save(tmp_path, formats=["npz"])["npz"]
    assert main(["export", str(npz), "--to", "csv"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "animation.csv")
    assert (tmp_path / "animation.csv").read_text().startswith("Timecode,BlendShapeCount,")
    out = export_file(npz, to="npz", output=tmp_path / "v.npz", with_vertices=True)
    with np.load(out) as z:
        assert z["vertices"].shape[0] == anim.num_frames

    assert main(["export", str(tmp_path / "nope.npz"), "--to", "glb"]) == 1
    assert "nope.npz: no such animation file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"facemotion {__version__}"
