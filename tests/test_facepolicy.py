"""3DFacePolicy recipe (issue 16): the 1D U-Net, the sequence sampler's windows, overfitting one
clip (ε prediction), streaming against offline, and the checkpoint round trip, on tiny vertex
spaces."""

from pathlib import Path

import numpy as np
import pytest
import torch

from facemotion.data.windows import MotionWindows
from facemotion.errors import FacemotionError
from facemotion.face.space import VertexSpace
from facemotion.models import DENOISERS, ConditionalUnet1D
from facemotion.recipes import RECIPES, recipe_class
from facemotion.recipes.base import config_from
from facemotion.recipes.facepolicy import FacePolicy, FacePolicyConfig
from recipe_helpers import one_thread  # noqa: F401  (the fixture)

V = 8
TINY = {"audio_encoder": {"name": "mel", "n_mels": 8, "normalize": False}, "obs_dim": 32, "state_hidden": 32, "audio_hidden": 16,
        "down_dims": [32, 64], "step_embed_dim": 16, "steps": 4, "warmup": 1, "lr": 1e-3}


pytestmark = pytest.mark.usefixtures("one_thread")


def _space(head_pose: bool = True) -> VertexSpace:
    g = np.random.default_rng(0)
    template = g.normal(0, 0.05, (V, 3)).astype(np.float32)
    template[0], template[1] = [0.0, 0.01, 0.1], [0.0, -0.01, 0.1]
    return VertexSpace(template, lip_landmarks=(0, 1), lips=[0, 1], head_pose=head_pose)


def _recipe(**kw) -> FacePolicy:
    torch.manual_seed(0)
    return FacePolicy(config_from(FacePolicyConfig, {**TINY, **kw}), space=_space())


def _clip(space: VertexSpace, frames: int, seed: int):
    """Audio features [T, 8] (channel 0: loudness u_f in [0, 1], 2-6 frame bursts; the rest noise)
    and face-space motion [T, D] whose lower lip drops 1 cm · u_f and whose head sways."""
    rng = np.random.default_rng(seed)
    env = []
    while len(env) < frames:
        env += [rng.uniform(0.3, 1.0) if rng.random() < 0.6 else 0.0] * int(rng.integers(2, 7))
    env = np.asarray(env[:frames], np.float32)
    feats = np.concatenate([env[:, None], rng.normal(0, 0.1, (frames, 7))], 1).astype(np.float32)
    disp = np.zeros((frames, V, 3), np.float32)
    disp[:, 1, 1] = -0.01 * env
    disp[:, 0, 1] = 0.002 * env
    head = np.stack([np.zeros(frames), 0.05 * np.sin(np.arange(frames) / 10), np.zeros(frames)], 1)
    motion = space.from_arrays({"displacements": disp, "head_rotation": head.astype(np.float32)})
    return torch.from_numpy(feats), torch.from_numpy(motion)


def _fit(recipe: FacePolicy, feats: torch.Tensor, motion: torch.Tensor) -> None:
    act = recipe.actions(motion)
    recipe.set_statistics({"motion_mean": motion.mean(0), "motion_std": motion.std(0, correction=0),
                           "audio_mean": feats.mean(0), "audio_std": feats.std(0, correction=0),
                           "action_mean": act.mean(0), "action_std": act.std(0, correction=0)})


def _items(feats: torch.Tensor, motion: torch.Tensor, recipe: FacePolicy):
    """Every sequence-sampler item of one clip (H + 1 frames, padded N_obs − 1 before, N_act − 1
    after, edge frames repeated): audio [N, H + 1, C], motion [N, H + 1, D]."""
    before, after = recipe.train_padding
    n = recipe.train_frames
    idx = torch.arange(-before, len(motion) - n + after + 1)[:, None] + torch.arange(n)
    idx = idx.clamp(0, len(motion) - 1)
    return feats[idx], motion[idx]


def test_registered_and_shapes():
    assert RECIPES["facepolicy"].endswith(":FacePolicy") and recipe_class("facepolicy") is FacePolicy
    assert DENOISERS["unet1d"] is ConditionalUnet1D
    r = _recipe()
    d = r.space.dim
    assert (r.train_frames, r.train_padding, r.audio_frames, r.lookahead_frames) == (5, (1, 1), 5, 1)
    paper = FacePolicyConfig()
    assert (paper.horizon, paper.n_obs_steps, paper.n_action_steps, paper.lr, paper.optimizer) == (4, 2, 2, 1e-4, "adamw")
    assert (paper.prediction_type, paper.scheduler, paper.obs_dim) == ("sample", "ddim", 512)  # §4.2
    cond = {"state": torch.randn(3, 2, d), "audio": torch.randn(3, 5, 8)}
    assert r.denoiser.encode_obs(cond).shape == (3, 64)             # 2 x obs_dim (paper: 1024)
    out = r.denoiser(torch.randn(3, 4, d), torch.tensor([0, 5, 99]), cond)
    assert out.shape == (3, 4, d)
    with pytest.raises(ValueError, match="no condition can be dropped"):
        r.denoiser(torch.randn(3, 4, d), torch.tensor([0, 5, 99]), cond, {"audio": torch.tensor([True, False, False])})
    with pytest.raises(FacemotionError, match="cannot hold"):
        _recipe(horizon=2, n_obs_steps=2, n_action_steps=2)


def test_sequence_sampler_lines_up_audio_and_vertices(tmp_path):
    """MotionWindows with the recipe's padding: in every item the lower lip follows the loudness of
    the same frame (a known function of the audio), frames are consecutive or repeat the clip's
    edge frames, and the recipe splits an item into observations and actions at the right frames."""
    r = _recipe()
    space = r.space
    feats, motion = _clip(space, 30, seed=1)
    feats[:, 1] = torch.arange(30, dtype=torch.float32)               # channel 1: the frame index
    disp = space.expression_vertices(motion) - space.template
    arrays = {"displacements": disp.numpy(), "head_rotation": space.head_pose(motion).numpy()}
    np.savez(tmp_path / "c0.npz", **arrays)
    (tmp_path / "cache").mkdir()
    np.save(tmp_path / "cache" / "c0.npy", feats.numpy())
    rec = {"id": "c0", "fps": 25, "motion": "c0.npz", "audio": "c0.wav", "duration": 30 / 25}
    windows = MotionWindows(tmp_path, [rec], [tmp_path / "cache"], space, r.train_frames, seed=0, pad=r.train_padding)
    starts = set()
    for _, item in zip(range(300), windows):
        audio, mot = item["audio"], item["motion"]
        assert item["length"] == r.train_frames and mot.shape == (5, space.dim)
        frame = audio[:, 1].long()
        lip = space.expression_vertices(mot, indices=[1])[:, 0, 1] - space.template[1, 1]
        torch.testing.assert_close(lip, -0.01 * audio[:, 0], atol=1e-6, rtol=0)      # same frame
        torch.testing.assert_close(mot, motion[frame])
        start = int(frame[1]) - 1                                                    # frame[0] = max(start, 0)
        expected = torch.arange(start, start + 5).clamp(0, 29)
        assert torch.equal(frame, expected)
        starts.add(start)
        # the recipe's split: observed states x^s, x^{s+1}; actions a^{s+j} = x^{s+j+1} - x^{s+j}
        a = r.actions(mot[None])[0]
        torch.testing.assert_close(a, motion[expected[1:]] - motion[expected[:-1]])
    assert starts == set(range(-1, 30 - 5 + 2))                          # padded at both clip edges


def test_overfits_one_clip():
    r = _recipe(down_dims=[64, 128])
    feats, motion = _clip(r.space, 40, seed=2)
    _fit(r, feats, motion)
    audio, mot = _items(feats, motion, r)
    batch = {"audio": audio, "motion": mot, "length": torch.full((len(mot),), r.train_frames)}
    opt = torch.optim.AdamW(r.parameters(), lr=3e-3, weight_decay=1e-6)

    @torch.no_grad()
    def fixed_loss():
        torch.manual_seed(123)
        return float(r.training_loss(batch)[0])

    before = fixed_loss()
    torch.manual_seed(0)
    for _ in range(350):
        loss, _ = r.training_loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = fixed_loss()
    print(f"\nfacepolicy overfit: eps loss {before:.4g} -> {after:.4g} (ratio {before / after:.1f})")
    assert after < before / 10


def test_stream_matches_offline():
    """The same features fed in uneven chunks give the offline frames (same per-sample seeds), and
    every frame comes out as soon as the audio it needs has arrived (bounded lag)."""
    r = _recipe()
    feats, motion = _clip(r.space, 37, seed=3)
    _fit(r, feats, motion)
    r.eval()
    offline = r.sample(feats, num_samples=2, generator=[torch.Generator().manual_seed(s) for s in (3, 4)])
    assert offline.shape == (2, 37, r.space.dim)
    sizes = [3, 0, 5, 1, 7, 2, 2, 9, 8]
    assert sum(sizes) == 37
    bounds = np.cumsum([0] + sizes)
    emitted, lags = [], []

    def chunks():
        for a, b in zip(bounds[:-1], bounds[1:]):
            yield feats[a:b]
            lags.append(int(b) - sum(x.shape[1] for x in emitted))   # frames received, not yet emitted

    for out in r.stream(chunks(), num_samples=2, generator=[torch.Generator().manual_seed(s) for s in (3, 4)]):
        emitted.append(out)
    streamed = torch.cat(emitted, dim=1)
    assert streamed.shape == offline.shape
    diff = float((streamed - offline).abs().max())
    print(f"\nfacepolicy stream vs offline: max |diff| {diff:.3g} (face-space units: metres / radians); "
          f"lag after each chunk {lags} frames")
    assert diff < 1e-5
    assert max(lags[:-1]) <= max(r.audio_lookahead, r.config.n_action_steps)


def test_checkpoint_round_trip_and_animator(tmp_path):
    """Train through the shared trainer (padding, action statistics, AdamW), load the checkpoint,
    generate with the Animator."""
    from facemotion.api import Animator
    from facemotion.recipes import load_checkpoint, train
    from test_vertex_space import make_vertex_dataset

    data = make_vertex_dataset(tmp_path / "data", clips=2, seconds=1.0)
    config = {**TINY, "space": {"name": "vertex", "template": str(data / "template.npz"), "head_pose": True},
              "batch_size": 8, "val_every": 2, "val_clips": 1, "feature_workers": 1, "num_workers": 0,
              "ckpt_every": 2}
    path = train("facepolicy", data, tmp_path / "run", max_steps=3, config=config, accelerator="cpu", devices=1,
                 progress=False)
    recipe = load_checkpoint(path)
    assert isinstance(recipe, FacePolicy) and recipe.config.optimizer == "adamw"
    assert float(recipe.normalizer.std("action").max()) < float(recipe.normalizer.std("motion").max()) + 1
    assert bool((recipe.normalizer.std("action") != 1).any())           # fitted by the trainer
    (data / "template.npz").unlink()
    animator = Animator.from_checkpoint(path)
    speech = Path(__file__).resolve().parents[1] / "examples" / "cmu_arctic_slt_a0009.wav"
    wave = __import__("facemotion.audio.io", fromlist=["load_audio"]).load_audio(speech)[:16000]
    res = animator.generate(wave, seed=1, num_samples=2)
    assert [a.seed for a in res] == [1, 2] and res[0].motion.shape == (25, animator.space.dim)
    assert np.isfinite(res[0].vertices()).all()
    again, = animator.generate(wave, seed=2)
    np.testing.assert_allclose(again.motion, res[1].motion, atol=1e-5)
    # streaming from 100 ms audio chunks gives the offline frames of the same seed
    offline = animator.space.constrain(animator.sample(animator.audio_features(wave), 5))
    pieces = list(animator.stream((wave[i:i + 1600] for i in range(0, len(wave), 1600)), seed=5))
    streamed = np.concatenate([p.motion for p in pieces])
    assert streamed.shape == offline.shape and all(p.seed == 5 for p in pieces)
    np.testing.assert_allclose(streamed, offline, atol=1e-5)
