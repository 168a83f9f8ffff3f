"""The data engine's corpus as vertices with a face per pseudo-speaker (synth.vertices)."""
import json

import numpy as np
import pytest

from facemotion.cli import main
from facemotion.data.native import load_motion, read_manifest
from facemotion.face.rig import load_head_rig
from facemotion.face.space import VertexSpace
from facemotion.synth.speaker import speaker_pool
from facemotion.synth.vertices import face_region, write_vertex_corpus


def _blendshape_corpus(root, speakers, frames=6, seed=0):
    """A corpus in the layout `facemotion synth` writes, with random weights."""
    rng = np.random.default_rng(1)
    (root / "clips").mkdir(parents=True)
    (root / "synth.json").write_text(json.dumps({"seed": seed, "fps": 25.0, "shard_size": 10}))
    lines = []
    for i, spk in enumerate(speakers):
        np.savez(root / "clips" / f"c{i}.npz", blendshapes=rng.uniform(0, 1, (frames, 52)).astype(np.float32),
                 head_rotation=rng.normal(0, 0.1, (frames, 3)).astype(np.float32), fps=np.float32(25))
        (root / "clips" / f"c{i}.flac").write_bytes(b"")
        lines.append(json.dumps({"id": f"c{i}", "speaker": spk, "split": "train", "fps": 25.0,
                                 "audio": f"clips/c{i}.flac", "motion": f"clips/c{i}.npz",
                                 "duration": frames / 25}))
    (root / "manifest.jsonl").write_text("".join(x + "\n" for x in lines))
    (root / "features").mkdir()


def test_every_speaker_has_a_face_drawn_apart_from_the_voice():
    pool = speaker_pool(0)
    rig = load_head_rig()
    assert all(len(s.identity) == len(rig.identity_names) for s in pool)
    ids = np.array([s.identity for s in pool])
    assert abs(ids.mean()) < 0.05 and abs(ids.std() - 1) < 0.05      # N(0, 1) coefficients
    assert len({s.identity for s in pool}) == len(pool)
    assert speaker_pool(0)[3].identity == pool[3].identity           # a pure function of the seed


def test_vertex_corpus_decodes_each_clip_on_its_speakers_face(tmp_path):
    pool = speaker_pool(0)
    src, out = tmp_path / "synth", tmp_path / "vertex"
    _blendshape_corpus(src, [pool[0].id, pool[1].id])
    written = write_vertex_corpus(src, out)
    assert [r['id'] for r in written] == ['c0', 'c1']
    rig = load_head_rig()
    region = face_region(rig)
    space = VertexSpace(str(out / "template.npz"), head_pose=True)
    assert space.num_vertices == len(region["vertices"]) and len(space.faces) > space.num_vertices
    records = read_manifest(out)
    assert records == written
    templates = []
    for rec, spk in zip(records, pool[:2]):
        arrays = load_motion(out, rec, space=space)
        src_arrays = load_motion(src, read_manifest(src)[int(rec["id"][1:])])
        truth = rig.with_identity(np.asarray(spk.identity)).vertices(
            src_arrays["blendshapes"], src_arrays["head_rotation"])[:, region["vertices"]]
        x = space.from_arrays(arrays)
        verts = space.vertices_np(x, shape=arrays["template"] - space.template.numpy())
        err = np.abs(verts - truth).max()
        assert err < 2e-5, err                                      # float16 displacements: < 0.02 mm
        assert rec["identity"] == pytest.approx(list(spk.identity))
        assert (out / rec["audio"]).resolve() == (src / "clips" / f"{rec['id']}.flac").resolve()
        templates.append(arrays["template"])
    assert np.abs(templates[0] - templates[1]).max() > 1e-3          # two faces, not one
    assert (out / "features").resolve() == (src / "features").resolve()
    assert main(["convert", "--from", "synth", str(src), "-o", str(out)]) == 1   # exists: refused
    assert main(["convert", "--from", "synth", str(src), "-o", str(out), "--overwrite"]) == 0
