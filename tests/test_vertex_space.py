"""The face-space contract: VertexSpace end to end (train, save, load, generate, export) with no
blendshape code involved, and the contract of both spaces (arrays, decoding, settings and state
through checkpoints, exporter refusal)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from facemotion.animation import Animation, NotInSpace
from facemotion.errors import DataError
from facemotion.face.space import BlendshapeSpace, FaceSpace, VertexSpace, build_space
from recipe_helpers import TINY_CONFIG, burst_clips

V = 24  # vertices of the tiny mesh: a 4 x 6 grid, lips at vertices 0 (upper) and 1 (lower)


def tiny_mesh() -> tuple[np.ndarray, np.ndarray]:
    """A ``[24, 3]`` grid face (metres) and its ``[30, 3]`` triangles; vertices 0 and 1 are the lips."""
    xs, ys = np.meshgrid(np.linspace(-0.04, 0.04, 6), np.linspace(-0.06, 0.06, 4))
    grid = np.stack([xs.ravel(), ys.ravel(), np.zeros(xs.size)], 1).astype(np.float32)
    faces = []
    for r in range(3):
        for c in range(5):
            a = r * 6 + c
            faces += [[a, a + 1, a + 6], [a + 1, a + 7, a + 6]]
    template = np.concatenate([[[0.0, 0.004, 0.02], [0.0, -0.004, 0.02]], grid[2:]]).astype(np.float32)
    return template, np.asarray(faces, np.int32)


def make_vertex_dataset(root: Path, clips: int = 3, seconds: float = 2.0, fps: int = 25,
                        head_pose: bool = True) -> Path:
    """A native dataset in a vertex layout: the lower lip drops with the loudness of noise bursts."""
    root.mkdir(parents=True, exist_ok=True)
    template, faces = tiny_mesh()
    np.savez(root / "template.npz", template=template, faces=faces, lip_landmarks=np.array([0, 1]),
             lips=np.array([0, 1]), upper_face=np.arange(14, V))

    def motion(i, frame_env, rng):
        t = len(frame_env)
        verts = np.repeat(template[None], t, 0) + rng.normal(0, 2e-4, (t, V, 3)).astype(np.float32)
        verts[:, 1, 1] -= 0.01 * frame_env                       # the jaw opens with the sound
        verts[:, 14:, 1] += 0.002 * i                            # a per-speaker brow raise
        arrays = {"vertices": verts.astype(np.float32), "template": template, "faces": faces}
        if head_pose:
            arrays["head_rotation"] = np.stack([np.zeros(t), 0.05 * np.sin(np.arange(t) / fps), np.zeros(t)],
                                               1).astype(np.float32)
        return arrays
    return burst_clips(root, clips, seconds, fps, motion)


@pytest.fixture
def no_blendshapes(monkeypatch):
    """Any use of the blendshape space or the built-in head rig fails the test."""
    import facemotion.face.rig as rig_module
    import facemotion.face.space as space_module

    def forbidden(*args, **kwargs):
        raise AssertionError("blendshape code used by a vertex-space model")

    monkeypatch.setattr(space_module.BlendshapeSpace, "__init__", forbidden)
    monkeypatch.setattr(space_module, "default_blendshape_space", forbidden)
    monkeypatch.setattr(space_module, "load_head_rig", forbidden)
    monkeypatch.setattr(rig_module, "load_head_rig", forbidden)
    monkeypatch.setattr(rig_module.HeadRig, "vertices", forbidden)


def test_vertex_space_model_end_to_end(tmp_path, no_blendshapes):
    """Acceptance (issue 13): train DiffPoseTalk on a VertexSpace (PCA, head pose) for a few
    steps, save, load with Animator.from_checkpoint, generate, export OBJ/PLY/NPZ and mp4-free
    formats; glb is refused with one clear error; no blendshape code runs."""
    from facemotion.api import Animator
    from facemotion.export.meshseq import read_mesh_sequence
    from facemotion.recipes import train

    data = make_vertex_dataset(tmp_path / "data")
    config = {**TINY_CONFIG, "space": {"name": "vertex", "template": str(data / "template.npz"),
                                       "pca_components": 6, "head_pose": True},
              "style_steps": 1, "val_every": 3}
    model = train("diffposetalk", data, tmp_path / "run", max_steps=3, config=config, accelerator="cpu",
                  devices=1, progress=False)
    blob = torch.load(model, weights_only=True)
    assert blob["space"]["name"] == "vertex" and blob["space"]["settings"]["pca_components"] == 6
    assert "template" not in blob["space"]["settings"]                     # the path is not needed again
    assert {"space.template", "space.faces", "space.pca_basis", "space.pca_mean"} <= set(blob["state_dict"])
    assert bool(blob["state_dict"]["space.pca_fitted"])

    (tmp_path / "data" / "template.npz").unlink()       # the checkpoint stands alone
    animator = Animator.from_checkpoint(model)
    space = animator.space
    assert isinstance(space, VertexSpace) and space.dim == 6 + 3 and not space.needs_fit
    template, faces = tiny_mesh()
    np.testing.assert_array_equal(space.template.numpy(), template)
    speech = Path(__file__).resolve().parents[1] / "examples" / "cmu_arctic_slt_a0009.wav"
    results = animator.generate(speech, seed=4, num_samples=2)
    assert isinstance(results, list) and [r.seed for r in results] == [4, 5]
    anim = results[0]
    assert anim.motion.shape == (round(sf.info(speech).duration * 25), 9) and anim.space is space
    assert anim.audio == speech
    verts = anim.vertices()
    assert verts.shape == (anim.num_frames, V, 3) and np.isfinite(verts).all()
    assert not hasattr(anim, "blendshapes")                                  # NotInSpace is an AttributeError
    with pytest.raises(NotInSpace, match="VertexSpace animation has no blendshapes"):
        anim.blendshapes
    assert anim.head_rotation.shape == (anim.num_frames, 3)                  # this space has head pose
    again, = animator.generate(speech, seed=5)                                # sample i reproduces with seed + i
    np.testing.assert_allclose(again.motion, results[1].motion, atol=1e-5)

    paths = anim.save(tmp_path / "out", formats=["npz", "obj", "ply", "mp4"], stem="speech")
    assert paths["mp4"].stat().st_size > 1000                                 # the video through vertices + faces
    for fmt in ("obj", "ply"):
        meshes = read_mesh_sequence(paths[fmt])
        assert len(meshes) == anim.num_frames
        np.testing.assert_allclose(meshes[3].vertices, verts[3], atol=1e-6)
        np.testing.assert_array_equal(meshes[3].faces, faces)
    back = Animation.load(paths["npz"])
    assert isinstance(back.space, VertexSpace) and back.space.pca_components == 0   # raw displacements
    np.testing.assert_allclose(back.vertices(), verts, atol=1e-6)
    np.testing.assert_allclose(back.head_rotation, anim.head_rotation)
    assert back.seed == 4 and back.fps == 25.0
    with pytest.raises(DataError, match="format glb cannot express a VertexSpace animation; "
                                        "use npz, obj, ply or mp4"):
        anim.save(tmp_path / "out2", formats=["npz", "glb"])
    assert not (tmp_path / "out2" / "animation.npz").exists()                # refused before writing

    from facemotion.cli import main                                          # the command, default formats
    assert main(["generate", str(speech), "--model", str(model), "-o", str(tmp_path / "cli"), "--seed", "4",
                 "--formats", "npz,obj"]) == 0
    np.testing.assert_allclose(Animation.load(tmp_path / "cli" / f"{speech.stem}.npz").vertices(), verts, atol=1e-5)
    assert main(["generate", str(speech), "--model", str(model), "-o", str(tmp_path / "cli2"), "--formats", "glb"]) == 1
    assert not (tmp_path / "cli2").exists() or not any((tmp_path / "cli2").iterdir())


def test_vertex_space_arrays_round_trip_and_decode():
    template, faces = tiny_mesh()
    space = VertexSpace(template, faces, lip_landmarks=(0, 1), head_pose=True)
    assert isinstance(space, FaceSpace) and space.dim == 3 * V + 3 and len(space.names) == space.dim
    rng = np.random.default_rng(0)
    arrays = {"vertices": template + rng.normal(0, 0.003, (5, V, 3)).astype(np.float32),
              "head_rotation": rng.normal(0, 0.1, (5, 3)).astype(np.float32)}
    x = space.from_arrays(arrays)
    assert x.shape == (5, space.dim) and x.dtype == np.float32
    out = space.to_arrays(x)
    np.testing.assert_allclose(out["vertices"], arrays["vertices"], atol=1e-7)
    np.testing.assert_array_equal(out["faces"], faces)
    np.testing.assert_allclose(space.from_arrays(out), x, atol=1e-7)
    # displacements are taken from the clip's own template when it has one
    shifted = {**arrays, "vertices": arrays["vertices"] + 0.01, "template": template + 0.01}
    np.testing.assert_allclose(space.from_arrays(shifted), x, atol=1e-6)
    v, pose = space.decode(torch.from_numpy(np.stack([x, x])))
    assert v.shape == (2, 5, V, 3) and pose.shape == (2, 5, 3)
    torch.testing.assert_close(pose[0], torch.from_numpy(arrays["head_rotation"]))
    offset = torch.full((V, 3), 0.001)
    torch.testing.assert_close(space.expression_vertices(torch.from_numpy(x), shape=offset),
                               torch.from_numpy(out["vertices"]) + offset)
    idx = torch.tensor([1, 7])
    torch.testing.assert_close(space.expression_vertices(torch.from_numpy(x), idx),
                               torch.from_numpy(out["vertices"])[:, idx])
    no_pose = VertexSpace(template, faces, lip_landmarks=(0, 1))
    assert no_pose.dim == 3 * V
    assert torch.equal(no_pose.head_pose(torch.zeros(4, no_pose.dim)), torch.zeros(4, 3))
    with pytest.raises(ValueError, match="'vertices' has shape"):
        space.from_arrays({"vertices": np.zeros((5, V + 1, 3)), "head_rotation": np.zeros((5, 3))})
    with pytest.raises(ValueError, match="head_rotation"):
        space.from_arrays({"vertices": arrays["vertices"]})


def test_blendshape_space_arrays_round_trip_and_identity():
    space = BlendshapeSpace()
    assert space.settings() == {} and space.state_dict() == {}
    x = np.random.default_rng(0).random((4, 55)).astype(np.float32)
    arrays = space.to_arrays(x)
    assert arrays["blendshapes"].shape == (4, 52) and arrays["head_rotation"].shape == (4, 3)
    np.testing.assert_array_equal(space.from_arrays(arrays), x)
    beta = space.shape_coefficients(3)
    v, pose = space.decode(torch.from_numpy(x), shape=torch.from_numpy(beta))
    assert v.shape == (4, space.num_vertices, 3) and pose.shape == (4, 3)
    np.testing.assert_allclose(v.numpy(), space.vertices_np(x, beta), atol=2e-5)
    np.testing.assert_allclose(space.vertices_np(x, beta)[0],
                               space.rig.with_identity(beta).vertices(arrays["blendshapes"][0],
                                                                       arrays["head_rotation"][0]), atol=1e-6)
    with pytest.raises(ValueError, match="blendshapes"):
        space.from_arrays({"head_rotation": np.zeros((4, 3))})


def test_pca_fit_and_settings_survive_the_checkpoint(tmp_path):
    from facemotion.recipes import load_checkpoint
    from facemotion.recipes.base import config_from
    from facemotion.recipes.diffposetalk import DiffPoseTalk, DiffPoseTalkConfig

    template, faces = tiny_mesh()
    np.savez(tmp_path / "template.npz", template=template, faces=faces)
    space = build_space({"name": "vertex", "template": str(tmp_path / "template.npz"), "lip_landmarks": [0, 1],
                         "pca_components": 5})
    assert space.needs_fit
    with pytest.raises(ValueError, match="not fitted"):
        space.from_arrays({"vertices": template[None]})
    rng = np.random.default_rng(0)
    modes = rng.normal(0, 0.005, (3, V, 3)).astype(np.float32)
    clips = [{"vertices": template + np.einsum("tk,kvc->tvc", rng.normal(size=(30, 3)), modes).astype(np.float32)}
             for _ in range(4)]
    assert space.fit(clips, max_frames=50) > 0.999          # three modes explain the data
    x = space.from_arrays(clips[0])
    np.testing.assert_allclose(space.to_arrays(x)["vertices"], clips[0]["vertices"], atol=1e-6)

    config = config_from(DiffPoseTalkConfig, {**TINY_CONFIG, "space": "vertex"})
    recipe = DiffPoseTalk(config, space=space)
    path = recipe.save_checkpoint(tmp_path / "model.pt")
    (tmp_path / "template.npz").unlink()
    loaded = load_checkpoint(path)
    assert loaded.space.settings() == space.settings()
    for name in ("template", "faces", "pca_mean", "pca_basis"):
        torch.testing.assert_close(getattr(loaded.space, name), getattr(space, name))
    np.testing.assert_allclose(loaded.space.from_arrays(clips[1]), space.from_arrays(clips[1]), atol=1e-6)
    assert torch.equal(loaded.loss_index, recipe.loss_index)


def test_blendshape_checkpoints_stay_small_and_old_ones_load(tmp_path):
    from facemotion.recipes import load_checkpoint
    from facemotion.recipes.diffposetalk import DiffPoseTalk, DiffPoseTalkConfig

    config = DiffPoseTalkConfig(audio_encoder={"name": "mel"}, window=20, n_prev_motions=4, d_model=16,
                                n_layers=1, n_heads=2, style_dim=8, style_layers=1, style_heads=2, steps=2)
    path = DiffPoseTalk(config).save_checkpoint(tmp_path / "tiny.pt")
    blob = torch.load(path, weights_only=True)
    assert blob["space"] == {"name": "blendshape", "settings": {}}
    assert not any(k.startswith("space.") for k in blob["state_dict"])     # the rig is package data
    assert path.stat().st_size < 2e6
    del blob["space"]                                                       # as written before spaces had settings
    torch.save(blob, tmp_path / "old.pt")
    assert isinstance(load_checkpoint(tmp_path / "old.pt").space, BlendshapeSpace)


def test_exporters_refuse_spaces_they_cannot_express(tmp_path):
    from facemotion.api import export_file

    template, faces = tiny_mesh()
    space = VertexSpace(template, faces, lip_landmarks=(0, 1))
    anim = Animation(np.zeros((3, space.dim), np.float32), space, 25.0)
    npz = anim.save(tmp_path, formats=["npz"])["npz"]
    for fmt in ("glb", "usd", "csv"):
        with pytest.raises(DataError) as err:
            anim.save(tmp_path, formats=[fmt])
        assert str(err.value) == f"format {fmt} cannot express a VertexSpace animation; use npz, obj, ply or mp4"
        with pytest.raises(DataError, match=f"format {fmt} cannot express"):
            export_file(npz, to=fmt)
    with np.load(npz) as z:
        assert json.loads(str(z["space"]))["name"] == "vertex"
        assert z["vertices"].shape == (3, V, 3)


def test_old_blendshape_npz_loads_as_blendshape_space(tmp_path):
    path = tmp_path / "old.npz"
    np.savez(path, blendshapes=np.full((6, 52), 0.2, np.float32), head_rotation=np.zeros((6, 3), np.float32),
             fps=30.0)
    anim = Animation.load(path)
    assert isinstance(anim.space, BlendshapeSpace) and anim.motion.shape == (6, 55)
    np.testing.assert_array_equal(anim.blendshapes, np.full((6, 52), 0.2, np.float32))
    assert anim.head().num_vertices == anim.vertices().shape[1]


def test_pca_fit_with_fewer_frames_than_coordinates_is_the_svd_basis():
    """The Gram-matrix route (frames < 3V) gives the principal directions of the SVD."""
    rng = np.random.default_rng(0)
    v, k = 60, 5
    mix = rng.normal(0, 1, (8, 3 * v)) * np.linspace(3, 0.5, 8)[:, None]
    clips = [{"displacements": (rng.normal(0, 1, (15, 8)) @ mix).reshape(15, v, 3).astype(np.float32)}
             for _ in range(3)]
    space = VertexSpace(np.zeros((v, 3), np.float32), lip_landmarks=(0, 1), pca_components=k)
    explained = space.fit(clips)
    x = np.concatenate([c["displacements"].reshape(15, -1) for c in clips]).astype(np.float64)
    x -= x.mean(0)
    _, s, vh = np.linalg.svd(x, full_matrices=False)
    basis = space.pca_basis.numpy().astype(np.float64)
    np.testing.assert_allclose(basis @ basis.T, np.eye(k), atol=1e-5)              # orthonormal rows
    np.testing.assert_allclose(basis.T @ basis, vh[:k].T @ vh[:k], atol=1e-5)      # the same subspace
    assert explained == pytest.approx(float((s[:k] ** 2).sum() / (s ** 2).sum()), rel=1e-6)


def test_identity_model_fit_coefficients_and_seeds():
    """The identity model of a vertex space (DF-3DFace's reduced x_id): fitted from the clips'
    neutral faces (two-dimensional here), whitened coordinates, offsets, seeds, checkpoint state."""
    template, faces = tiny_mesh()
    rng = np.random.default_rng(3)
    modes = rng.normal(0, 0.003, (2, V, 3)).astype(np.float32)
    faces_of = [template + np.einsum("k,kvc->vc", rng.normal(size=2), modes).astype(np.float32) for _ in range(6)]
    clips = [{"displacements": np.zeros((5, V, 3), np.float32), "template": faces_of[i % 6]} for i in range(9)]
    space = VertexSpace(template, faces, lip_landmarks=(0, 1), identity_components=2)
    assert space.needs_fit and space.settings()["identity_components"] == 2
    with pytest.raises(ValueError, match="not fitted"):
        space.identity_coefficients(torch.zeros(V, 3))
    assert space.fit(clips) == 1.0 and space.identity_explained > 0.9999 and not space.needs_fit
    offsets = torch.from_numpy(np.stack(faces_of) - template)
    np.testing.assert_allclose(space.identity_from_arrays(clips[1]), offsets[1].numpy(), atol=1e-9)
    code = space.identity_coefficients(offsets)
    assert code.shape == (6, 2)
    torch.testing.assert_close(code.std(0, correction=0), torch.ones(2), atol=1e-4, rtol=0)  # whitened
    torch.testing.assert_close(space.identity_offsets(code), offsets.flatten(1), atol=1e-8, rtol=0)  # in the span
    # a seed draws a face of the model; an array is a [V, 3] offset; the space's own template is no offset
    drawn = space.shape_coefficients(4)
    assert drawn.shape == (V, 3) and np.array_equal(drawn, space.shape_coefficients(4))
    assert space.identity_from_arrays({"template": template}) is None
    assert space.shape_coefficients(offsets[0].flatten().numpy()).shape == (V, 3)
    with pytest.raises(ValueError, match="template offset"):
        space.shape_coefficients(np.zeros(5))
    with pytest.raises(ValueError, match="no shape model"):
        VertexSpace(template, faces, lip_landmarks=(0, 1)).shape_coefficients(4)
    again = build_space("vertex", space.settings())
    again.load_state_dict(space.state_dict())
    torch.testing.assert_close(again.identity_coefficients(offsets), code)
