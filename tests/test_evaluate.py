"""`facemotion eval`: a tiny random DiffPoseTalk checkpoint on a tiny native dataset."""

import json
import math

import numpy as np
import pytest
import torch

from facemotion.audio.io import load_audio
from facemotion.cli import main
from facemotion.data.features import cache_features
from facemotion.data.native import load_motion, read_manifest
from facemotion.data.windows import motion_vectors
from facemotion.errors import DataError
from facemotion.metrics import lve
from facemotion.metrics.evaluate import METRICS, clip_metrics, evaluate
from facemotion.recipes import load_checkpoint
from facemotion.recipes.base import config_from
from facemotion.recipes.diffposetalk import DiffPoseTalk, DiffPoseTalkConfig
from recipe_helpers import TINY_CONFIG, make_dataset


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(dataset root, checkpoint): clips c0, c1 (split train, speakers s0, s1) and c2 (val)."""
    tmp = tmp_path_factory.mktemp("eval")
    root = make_dataset(tmp / "data", clips=3)
    torch.manual_seed(0)
    recipe = DiffPoseTalk(config_from(DiffPoseTalkConfig, {**TINY_CONFIG, "space": "blendshape", "steps": 2}))
    return root, recipe.save_checkpoint(tmp / "tiny.pt")


def test_eval_cli_writes_json_and_matches_direct_lve(tiny, tmp_path, capsys):
    root, ckpt = tiny
    out = tmp_path / "eval.json"
    assert main(["eval", "--model", str(ckpt), "--data", str(root), "--split", "train",
                 "--num-samples", "3", "--seed", "5", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "LVE" in printed and "Diversity head" in printed and str(out) in printed
    report = json.loads(out.read_text())
    assert {"model", "data", "split", "num_clips", "num_speakers", "speakers", "num_samples", "seed",
            "steps", "style", "pooling", "units", "pooled", "clips"} <= set(report)
    assert report["num_clips"] == 2 and report["speakers"] == ["s0", "s1"] and report["steps"] == 2
    assert [c["id"] for c in report["clips"]] == ["c0", "c1"]
    for key in METRICS:
        vals = [c[key] for c in report["clips"] if c[key] is not None]
        assert report["pooled"][key]["clips"] == len(vals)
        if vals:
            assert report["pooled"][key]["mean"] == pytest.approx(np.mean(vals))

    # the same first sample, scored directly with metrics.lve
    recipe = load_checkpoint(ckpt)
    rec = read_manifest(root, "train")[0]
    space = recipe.space
    with torch.no_grad():
        feats = recipe.audio_features(load_audio(root / rec["audio"]))
        sample = recipe.sample(feats, num_samples=3, generator=torch.Generator().manual_seed(5))[0]
        gt = torch.from_numpy(motion_vectors(space, load_motion(root, rec)))
        expected = 1e3 * lve(space.expression_vertices(sample).numpy(), space.expression_vertices(gt).numpy(),
                             space.lip_indices.numpy())
    clip = report["clips"][0]
    assert clip["lve_mm"] == pytest.approx(expected, rel=1e-6)
    assert clip["div_expression_mm"] > 0 and clip["div_head_pose_deg"] > 0 and clip["aperture_std_mm"] > 0


def test_clip_metrics_identical_samples_and_perfect_prediction(tiny):
    root, ckpt = tiny
    space = load_checkpoint(ckpt).space
    gt = torch.from_numpy(motion_vectors(space, load_motion(root, read_manifest(root, "train")[1])))
    same = clip_metrics(space, gt.expand(3, -1, -1), gt)
    for key in ("lve_mm", "mve_mm", "fdd_1e-5m2", "mod_mm", "div_expression_mm", "div_head_pose_deg",
                "aperture_std_mm"):
        assert same[key] == pytest.approx(0.0, abs=1e-9), key
    assert same["ba"] == pytest.approx(1.0) and same["aperture_mean_mm"] > 0
    jaw = gt.clone()
    jaw[:, 0] += 0.2  # ARKit index 0 is eyeBlinkLeft: only the upper face moves, lips stay put
    moved = clip_metrics(space, jaw[None], gt)
    assert moved["mve_mm"] > 0 and moved["lve_mm"] == pytest.approx(0.0, abs=1e-6)
    assert math.isnan(moved["div_expression_mm"]) and math.isnan(moved["div_head_pose_deg"])
    assert math.isnan(moved["seam_expression"])  # no window hand-over given
    t = torch.arange(60.0)
    wave = torch.zeros(60, gt.shape[1])
    wave[:, 0] = 0.2 + 0.005 * t  # a steadily moving upper face (eyeBlinkLeft)
    wave[:, -2] = 0.002 * t  # and head yaw (radians)
    jump = wave.clone()
    jump[30:, 0] += 0.2  # both jump where a window would hand over
    jump[30:, -2] += 0.05
    smooth = clip_metrics(space, wave[None], wave, ([30], 2))
    seams = clip_metrics(space, jump[None], wave, ([30], 2))
    assert smooth["seam_expression"] == pytest.approx(1.0, abs=1e-4) and smooth["seam_head"] == pytest.approx(1.0, abs=1e-4)
    assert seams["seam_expression"] > 2 and seams["seam_head"] > 2


def test_evaluate_uses_cached_features_and_rejects_bad_input(tiny, monkeypatch):
    root, ckpt = tiny
    recipe = load_checkpoint(ckpt)
    records = read_manifest(root, "val")
    cache_features(root, records, recipe.audio_encoder, recipe.fps, progress=False)

    def no_audio(_wave):
        raise AssertionError("features should come from the cache")

    monkeypatch.setattr(recipe, "audio_features", no_audio)
    report = evaluate(recipe, root, "val", num_samples=1, style_from_gt=True, progress=False)
    assert report["num_clips"] == 1 and report["style"] == "ground_truth"
    assert report["pooled"]["div_expression_mm"]["clips"] == 0
    assert math.isfinite(report["pooled"]["lve_mm"]["mean"])
    with pytest.raises(DataError, match="no clips in split 'test'"):
        evaluate(recipe, root, "test", progress=False)
    monkeypatch.setattr(recipe, "fps", 30.0)
    with pytest.raises(DataError, match="25 fps, the model at 30 fps"):
        evaluate(recipe, root, "val", progress=False)


def test_runs_and_comparison_tables(tiny, tmp_path):
    """Two models (the same checkpoint twice), two runs: intervals over clips and runs; one table
    row per model in Markdown, CSV and JSON, each metric's convention named."""
    root, ckpt = tiny
    prefix = tmp_path / "table"
    assert main(["eval", "--model", str(ckpt), "--model", str(ckpt), "--data", str(root), "--split", "train",
                 "--num-samples", "2", "--runs", "2", "--out", str(prefix)]) == 0
    report = json.loads(prefix.with_suffix(".json").read_text())["models"]
    assert len(report) == 2 and report[0]["runs"] == 2
    lve_runs = report[0]["pooled"]["lve_mm"]
    assert lve_runs["runs"] == 2 and lve_runs["ci95_runs"] > 0 and lve_runs["clips"] == 2
    assert report[0]["pooled"] == report[1]["pooled"]  # same model, same seeds
    md = prefix.with_suffix(".md").read_text()
    assert md.count(f"| {ckpt} |") == 2 and "LVE (FaceFormer)" in md and "largest squared L2 error" in md
    assert "(runs ±" in md and "DF-3DFace convention" in md
    rows = list(__import__("csv").DictReader(prefix.with_suffix(".csv").open()))
    assert len(rows) == 2 * len(METRICS) and {r["metric"] for r in rows} == set(METRICS)
    one = next(r for r in rows if r["metric"] == "lve_mm")
    assert float(one["mean"]) == pytest.approx(lve_runs["mean"]) and "DiffPoseTalk convention" in one["convention"]


def test_predictions_folder_scored_in_closed_form(tmp_path, capsys):
    """FaceFormer-style predictions ([T, V*3] .npy per clip) against a converted VOCASET-layout
    dataset: exact predictions score 0; lips shifted by d give LVE = d, FaceFormer LVE = d^2,
    MVE = d * 4 / 6 (4 of 6 vertices move), FDD = NLDD = 0 (the upper face and every non-lip vertex
    stay where they were)."""
    from facemotion.data.readers import convert
    from test_readers import faceformer_corpus

    truth = faceformer_corpus(tmp_path / "voca", {"FaceTalk_170809_00138_TA_sentence22": 8,
                                                  "FaceTalk_170731_00024_TA_sentence30": 6}, fps=60)
    convert("vocaset", tmp_path / "voca", tmp_path / "data")
    (tmp_path / "regions").mkdir()
    (tmp_path / "regions" / "lve.txt").write_text("0,1,2,3")
    (tmp_path / "regions" / "fdd.txt").write_text("4,5")
    d = 1e-3
    for name, shift in (("exact", 0.0), ("shifted", d)):
        (tmp_path / name).mkdir()
        for clip, (verts, _) in truth.items():
            v = verts.copy()
            v[:, :4, 0] += shift
            np.save(tmp_path / name / f"{clip}.npy", v.reshape(len(v), -1).astype(np.float32))
    prefix = tmp_path / "cmp"
    assert main(["eval", "--model", str(tmp_path / "exact"), "--model", str(tmp_path / "shifted"),
                 "--data", str(tmp_path / "data"), "--regions", str(tmp_path / "regions"), "--out", str(prefix)]) == 0
    exact, shifted = (r["pooled"] for r in json.loads(prefix.with_suffix(".json").read_text())["models"])
    for key in ("lve_mm", "lve_faceformer_1e-5m2", "mve_mm", "fdd_1e-5m2", "nldd_mm"):
        assert exact[key]["mean"] == pytest.approx(0.0, abs=1e-9) and exact[key]["clips"] == 2
    assert shifted["lve_mm"]["mean"] == pytest.approx(1.0, rel=1e-4)  # mm (float32 files)
    assert shifted["lve_faceformer_1e-5m2"]["mean"] == pytest.approx(0.1, rel=1e-4)  # 1e-6 m^2
    assert shifted["mve_mm"]["mean"] == pytest.approx(4 / 6, rel=1e-4)
    assert shifted["fdd_1e-5m2"]["mean"] == pytest.approx(0.0, abs=1e-9)
    assert shifted["nldd_mm"]["mean"] == pytest.approx(0.0, abs=1e-9)
    assert shifted["mod_mm"]["clips"] == 0 and shifted["ba"]["clips"] == 0
    assert "| MOD |" not in prefix.with_suffix(".md").read_text()
    (tmp_path / "shifted" / "FaceTalk_170731_00024_TA_sentence30.npy").unlink()
    capsys.readouterr()
    assert main(["eval", "--model", str(tmp_path / "shifted"), "--data", str(tmp_path / "data"),
                 "--regions", str(tmp_path / "regions")]) == 1
    assert "sentence30.npy: no prediction for clip" in capsys.readouterr().err
    assert main(["eval", "--model", str(tmp_path / "exact"), "--data", str(tmp_path / "data")]) == 1
    assert "6-vertex clips; give --regions DIR" in capsys.readouterr().err
