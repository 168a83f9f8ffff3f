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
