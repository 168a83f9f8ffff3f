"""DiffPoseTalk on FLAME end to end: a DiffPoseTalk LMDB fixture converted, `facemotion train --recipe
diffposetalk --space flame --flame-model PATH` overfitting its one clip (tiny model), and the checkpoint
generating FLAME parameters and vertices into NPZ (DiffPoseTalk's keys), OBJ/PLY and MP4."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from facemotion.animation import Animation
from facemotion.audio.io import load_audio
from facemotion.cli import main
from facemotion.data.native import load_motion, read_manifest
from facemotion.errors import DataError
from facemotion.recipes import load_checkpoint, train
from flame_helpers import write_diffposetalk_lmdb, write_flame_pkl, write_regions
from recipe_helpers import TINY_CONFIG, one_thread  # noqa: F401  (the fixture)

pytestmark = pytest.mark.usefixtures("one_thread")

STEPS = 300


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(tmp, FLAME model, native dataset, checkpoint) after STEPS steps on one 2 s clip."""
    tmp = tmp_path_factory.mktemp("flame_dpt")
    write_diffposetalk_lmdb(tmp / "lmdb", {"TH_00001/000": 50}, splits={"train": ["TH_00001/000"]})
    model = tmp / "generic_model.pkl"
    write_flame_pkl(model)
    assert main(["convert", "--from", "diffposetalk-lmdb", str(tmp / "lmdb"), "-o", str(tmp / "data")]) == 0
    config = {**TINY_CONFIG, "space": {"name": "flame", "regions_dir": str(write_regions(tmp / "regions"))},
              "p_truncate": 0.0, "p_drop_style": 0.0, "p_drop_all": 0.0, "lr": 3e-3, "ema_decay": 0.9,
              "batch_size": 8, "ckpt_every": STEPS, "val_every": STEPS}
    (tmp / "tiny.json").write_text(json.dumps(config))
    threads = torch.get_num_threads()
    assert main(["train", "--recipe", "diffposetalk", "--space", "flame", "--flame-model", str(model),
                 "--data", str(tmp / "data"), "--out", str(tmp / "run"), "--config", str(tmp / "tiny.json"),
                 "--max-steps", str(STEPS), "--accelerator", "cpu", "--devices", "1"]) == 0
    torch.set_num_threads(threads)
    return tmp, model, tmp / "data", tmp / "run" / "model.pt"


def _clip_batch(recipe, data):
    rec = read_manifest(data, "train")[0]
    feats = recipe.audio_features(load_audio(data / rec["audio"]))
    x = torch.from_numpy(recipe.space.from_arrays(load_motion(data, rec)))
    n = recipe.train_frames
    return {"audio": feats[:n][None].repeat(8, 1, 1), "motion": x[:n][None].repeat(8, 1, 1),
            "length": torch.full((8,), n)}


def test_overfits_one_clip(trained):
    """The denoiser loss on the clip (fixed noise and timesteps) falls >= 10x from the untrained model."""
    tmp, _, data, ckpt = trained
    after = load_checkpoint(ckpt)
    assert after.space.name == "flame" and after.space.dim == 54
    before = type(after)(after.config, space=after.space)  # fresh weights, the trained statistics
    before.normalizer.load_state_dict(after.normalizer.state_dict())
    batch = _clip_batch(after, data)

    def fixed_loss(r):
        r.set_phase(r.config.style_steps)
        torch.manual_seed(123)
        with torch.no_grad():
            return float(r.training_loss(batch)[0])

    ratio = fixed_loss(before) / fixed_loss(after)
    print(f"FLAME DiffPoseTalk overfit: loss ratio {ratio:.1f} after {STEPS} steps")
    assert ratio >= 10


def test_generates_flame_parameters_vertices_and_files(trained, tmp_path):
    tmp, model, data, ckpt = trained
    rec = read_manifest(data, "train")[0]
    beta = np.linspace(-1, 1, 100).astype(np.float32)
    np.save(tmp_path / "beta.npy", beta)
    assert main(["generate", str(data / rec["audio"]), "--model", str(ckpt), "--flame-model", str(model),
                 "-o", str(tmp_path / "out"), "--seed", "0", "--identity", str(tmp_path / "beta.npy"),
                 "--formats", "npz,obj,ply,mp4"]) == 0
    stem = tmp_path / "out" / (data / rec["audio"]).stem
    with np.load(stem.with_suffix(".npz")) as z:  # DiffPoseTalk's coefficient file: exp, pose, shape
        assert z["exp"].shape == (50, 50) and z["pose"].shape == (50, 6) and z["shape"].shape == (50, 100)
        assert z["exp"].dtype == z["pose"].dtype == z["shape"].dtype == np.float32
        np.testing.assert_array_equal(z["shape"], np.repeat(beta[None], 50, 0))
        assert np.all(z["pose"][:, 4:] == 0)  # DiffPoseTalk models no jaw y/z rotation
    anim = Animation.load(stem.with_suffix(".npz"))
    np.testing.assert_array_equal(anim.identity, beta)
    verts = anim.vertices()
    assert verts.shape == (50, 12, 3) and np.isfinite(verts).all()
    want, _ = anim.space.decode(torch.from_numpy(anim.motion), shape=torch.from_numpy(beta))
    np.testing.assert_allclose(verts, want.numpy(), atol=1e-6)
    for fmt in ("obj", "ply"):
        assert len(list((tmp_path / "out" / f"{stem.name}_{fmt}").glob(f"frame_*.{fmt}"))) == 50
    assert stem.with_suffix(".mp4").stat().st_size > 0


def test_flame_model_errors_name_the_file(trained, tmp_path):
    tmp, model, data, ckpt = trained
    with pytest.raises(DataError, match=r"nothere.pkl: no such file; expected a FLAME model .*--flame-model"):
        load_checkpoint(ckpt, flame_model=tmp_path / "nothere.pkl")
    moved = tmp_path / "moved.pkl"
    model.rename(moved)
    try:
        with pytest.raises(DataError, match=r"generic_model.pkl: no such file; expected a FLAME model"):
            load_checkpoint(ckpt)
        assert load_checkpoint(ckpt, flame_model=moved).space.model_path == str(moved)
    finally:
        moved.rename(model)
    with pytest.raises(DataError, match="needs --flame-model PATH"):
        train("diffposetalk", data, tmp_path / "run", space_name="flame", max_steps=1)
    with pytest.raises(DataError, match="the face space is 'blendshape', not 'flame'"):
        load_checkpoint(_blendshape_checkpoint(tmp_path), flame_model=model)


def _blendshape_checkpoint(tmp_path):
    from facemotion.recipes.base import config_from
    from facemotion.recipes.diffposetalk import DiffPoseTalk, DiffPoseTalkConfig

    cfg = config_from(DiffPoseTalkConfig, {**TINY_CONFIG, "space": "blendshape"})
    return DiffPoseTalk(cfg).save_checkpoint(tmp_path / "bs.pt")
