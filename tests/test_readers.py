"""Readers into the native format: VOCASET and BIWI in the FaceFormer layout and Live Link Face CSVs,
built here in their exact layouts (tiny: 6 vertices, a few frames), converted, loaded back and
compared with their own ground truth (zero error)."""

from __future__ import annotations

import pickle
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from facemotion.cli import main
from facemotion.data.native import load_motion, read_manifest
from facemotion.data.readers import convert, faceformer_split
from facemotion.errors import DataError, OutputError
from facemotion.export.arkit_csv import write_arkit_csv
from facemotion.metrics import fdd, lve, mve, nldd

V = 6


def faceformer_corpus(root: Path, clips: dict[str, int], fps: float, seed: int = 0) -> dict:
    """``vertices_npy/NAME.npy [T, V*3]`` float64, ``wav/NAME.wav`` (16 kHz), ``templates.pkl``
    (protocol 2, as the Python 2 originals); returns NAME -> (vertices [T, V, 3], template)."""
    rng = np.random.default_rng(seed)
    (root / "vertices_npy").mkdir(parents=True)
    (root / "wav").mkdir()
    templates, truth = {}, {}
    for name, frames in clips.items():
        subject = name.rpartition("_")[0]
        template = templates.setdefault(subject, rng.normal(0, 0.05, (V, 3)))
        verts = template + rng.normal(0, 1e-3, (frames, V, 3))
        np.save(root / "vertices_npy" / f"{name}.npy", verts.reshape(frames, V * 3))
        sf.write(root / "wav" / f"{name}.wav", rng.normal(0, 0.1, int(16000 * frames / fps)).astype(np.float32), 16000)
        truth[name] = (verts, template)
    with open(root / "templates.pkl", "wb") as f:
        pickle.dump(templates, f, protocol=2)
    return truth


def round_trip(out: Path, truth: dict, split_of: dict) -> None:
    records = read_manifest(out, check_files=True)
    assert sorted(r["id"] for r in records) == sorted(truth)
    for rec in records:
        verts, template = truth[rec["id"]]
        arrays = load_motion(out, rec)
        assert rec["split"] == split_of[rec["id"]]
        for metric in (lve(arrays["vertices"], verts.astype(np.float32), [0, 1]),
                       lve(arrays["vertices"], verts.astype(np.float32), [0, 1], convention="faceformer"),
                       mve(arrays["vertices"], verts.astype(np.float32)),
                       fdd(arrays["vertices"], verts.astype(np.float32), [4, 5], template),
                       nldd(arrays["vertices"], verts.astype(np.float32), [0, 1], template)):
            assert metric == 0.0
        np.testing.assert_array_equal(arrays["template"], template.astype(np.float32))


def test_vocaset_round_trip(tmp_path):
    truth = faceformer_corpus(tmp_path / "vocaset", {"FaceTalk_170725_00137_TA_sentence01": 8,
                                                     "FaceTalk_170725_00137_TA_sentence25": 6,
                                                     "FaceTalk_170809_00138_TA_sentence22": 7,
                                                     "FaceTalk_170809_00138_TA_sentence02": 5}, fps=60)
    assert main(["convert", "--from", "vocaset", str(tmp_path / "vocaset"), "-o", str(tmp_path / "out")]) == 0
    round_trip(tmp_path / "out", truth, {"FaceTalk_170725_00137_TA_sentence01": "train",
                                         "FaceTalk_170725_00137_TA_sentence25": "train",
                                         "FaceTalk_170809_00138_TA_sentence22": "test",
                                         "FaceTalk_170809_00138_TA_sentence02": "unused"})
    rec = read_manifest(tmp_path / "out")[0]
    assert rec["fps"] == 60.0 and rec["speaker"] == "FaceTalk_170725_00137_TA"
    assert rec["duration"] == pytest.approx(8 / 60, abs=1e-3)
    with pytest.raises(OutputError, match="already there"):
        convert("vocaset", tmp_path / "vocaset", tmp_path / "out")
    convert("vocaset", tmp_path / "vocaset", tmp_path / "out", stride=2, overwrite=True)
    arrays = load_motion(tmp_path / "out", read_manifest(tmp_path / "out")[0])
    np.testing.assert_array_equal(arrays["vertices"], truth["FaceTalk_170725_00137_TA_sentence01"][0][::2].astype(np.float32))
    assert float(arrays["fps"]) == 30.0


def test_biwi_round_trip_and_splits(tmp_path):
    truth = faceformer_corpus(tmp_path / "biwi", {"F2_e01": 5, "F2_e35": 4, "M3_e38": 6, "F1_e05": 5}, fps=25)
    convert("biwi", tmp_path / "biwi", tmp_path / "out")
    round_trip(tmp_path / "out", truth, {"F2_e01": "train", "F2_e35": "val", "M3_e38": "test", "F1_e05": "test_b"})
    assert faceformer_split("biwi", "F2_40") == ("F2", "test")


def test_faceformer_errors(tmp_path):
    with pytest.raises(DataError, match="templates.pkl: no such file"):
        convert("biwi", tmp_path, tmp_path / "out")
    faceformer_corpus(tmp_path / "b", {"F2_e01": 5}, fps=25)
    np.save(tmp_path / "b" / "vertices_npy" / "F2_e01.npy", np.zeros((5, 7)))
    with pytest.raises(DataError, match=r"F2_e01.npy: shape \(5, 7\), expected \[T, 18\]"):
        convert("biwi", tmp_path / "b", tmp_path / "out2")


def test_livelink_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    src = tmp_path / "takes"
    src.mkdir()
    truth = {}
    for name, frames in (("take1", 30), ("take2", 12)):
        anim = SimpleNamespace(blendshapes=rng.random((frames, 52)).astype(np.float32),
                               head_rotation=rng.normal(0, 0.1, (frames, 3)).astype(np.float32),
                               num_frames=frames, fps=30.0)
        write_arkit_csv(anim, src / f"{name}.csv")
        sf.write(src / f"{name}.wav", np.zeros(16000 * frames // 30, np.float32), 16000)
        truth[name] = anim
    assert main(["convert", "--from", "livelink-csv", str(src), "-o", str(tmp_path / "out"), "--fps", "30"]) == 0
    for rec in read_manifest(tmp_path / "out", check_files=True):
        arrays = load_motion(tmp_path / "out", rec)
        # the CSV holds 6 significant digits
        np.testing.assert_allclose(arrays["blendshapes"], truth[rec["id"]].blendshapes, atol=5e-6)
        np.testing.assert_allclose(arrays["head_rotation"], truth[rec["id"]].head_rotation, atol=5e-6)
        assert rec["speaker"] == "takes" and rec["split"] == "train" and rec["fps"] == 30.0
    (src / "take1.wav").unlink()
    with pytest.raises(DataError, match="take1.csv: no recording beside it"):
        convert("livelink-csv", src, tmp_path / "out3")


def test_diffposetalk_lmdb_round_trip(tmp_path):
    """Convert the LMDB, load each clip back into a FlameSpace (synthetic FLAME model) and score it
    against the fixture's own coefficients: LVE (both conventions), MVE, FDD all 0; audio identical."""
    import torch

    from facemotion.face.flame import FlameSpace
    from flame_helpers import LIPS, UPPER, write_diffposetalk_lmdb, write_flame_pkl, write_regions

    truth = write_diffposetalk_lmdb(tmp_path / "lmdb", {"TH_00001/000": 23, "TH_00001/001": 10, "WRA_Obama/002": 7},
                                    splits={"train": ["TH_00001/000", "TH_00001/001"], "test": ["WRA_Obama/002"]})
    write_flame_pkl(tmp_path / "generic_model.pkl")
    assert main(["convert", "--from", "diffposetalk-lmdb", str(tmp_path / "lmdb"), "-o", str(tmp_path / "out"),
                 "--flame-model", str(tmp_path / "generic_model.pkl")]) == 0
    space = FlameSpace(tmp_path / "generic_model.pkl", regions_dir=write_regions(tmp_path / "regions"))
    records = read_manifest(tmp_path / "out", check_files=True)
    assert [(r["id"], r["speaker"], r["split"]) for r in records] == [
        ("TH_00001-000", "TH_00001", "train"), ("TH_00001-001", "TH_00001", "train"), ("WRA_Obama-002", "WRA_Obama", "test")]
    for rec, (coef, audio) in zip(records, truth.values()):
        arrays = load_motion(tmp_path / "out", rec, space)
        for k in ("shape", "exp", "pose"):
            np.testing.assert_array_equal(arrays[k], coef[k])
        assert rec["fps"] == 25.0 and rec["duration"] == pytest.approx(len(coef["exp"]) / 25)
        np.testing.assert_array_equal(sf.read(tmp_path / "out" / rec["audio"], dtype="float32")[0], audio)
        shape = torch.from_numpy(space.identity_from_arrays(arrays))
        got = space.expression_vertices(torch.from_numpy(space.from_arrays(arrays)), shape=shape).numpy()
        x = np.concatenate([coef["exp"], coef["pose"][:, :3], coef["pose"][:, 3:4]], 1)
        want = space.expression_vertices(torch.from_numpy(x), shape=torch.from_numpy(coef["shape"][0])).numpy()
        template = space.mesh(coef["shape"][0]).neutral
        for metric in (lve(got, want, LIPS), lve(got, want, LIPS, convention="faceformer"), mve(got, want),
                       fdd(got, want, UPPER, template)):
            assert metric == 0.0


def test_diffposetalk_lmdb_errors(tmp_path):
    from flame_helpers import write_diffposetalk_lmdb

    with pytest.raises(DataError, match="no data.mdb; expected DiffPoseTalk's LMDB folder"):
        convert("diffposetalk-lmdb", tmp_path, tmp_path / "out")
    write_diffposetalk_lmdb(tmp_path / "lmdb", {"p/000": 5})
    (tmp_path / "lmdb" / "keys.txt").write_text("p/000\np/001")
    with pytest.raises(DataError, match=r"no key 'p/001/metadata'"):
        convert("diffposetalk-lmdb", tmp_path / "lmdb", tmp_path / "out")
    with pytest.raises(DataError, match="nothere.pkl: no such file; expected a FLAME model"):
        convert("diffposetalk-lmdb", tmp_path / "lmdb", tmp_path / "out2", flame_model=tmp_path / "nothere.pkl")
    (tmp_path / "lmdb" / "keys.txt").unlink()  # clips found by their metadata keys
    assert [r["id"] for r in convert("diffposetalk-lmdb", tmp_path / "lmdb", tmp_path / "out3")] == ["p-000"]
