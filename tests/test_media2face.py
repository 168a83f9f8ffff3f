"""Media2Face: the geometry VAE (LatentSpace), the recipe, keyframes, prompt schedules and prompts."""

import socket

import numpy as np
import pytest
import torch

from facemotion.face.keyframes import parse_keyframes
from facemotion.face.latent import LatentSpace
from facemotion.face.space import build_space
from facemotion.recipes import load_checkpoint
from facemotion.recipes.base import config_from
from facemotion.recipes.media2face import Media2Face, Media2FaceConfig, Media2FaceVAE, Media2FaceVAEConfig
from recipe_helpers import overfit_ratio

TINY_AUDIO = {"name": "mel", "n_mels": 8}
TINY = {"audio_encoder": TINY_AUDIO, "window": 20, "overlap": 4, "d_model": 32, "n_layers": 2, "n_heads": 2,
        "ff_mult": 2, "steps": 4}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The tests' small networks run fastest, and steadiest beside a training run, on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def speech_like(n, gen):
    """ARKit frames mixed from 6 fixed expressions (a low-dimensional stand-in for speech)."""
    g = torch.Generator().manual_seed(5)
    basis = torch.rand(6, 52, generator=g) * (torch.rand(6, 52, generator=g) < 0.3)
    return (torch.rand(n, 6, generator=gen) @ basis).clamp(0, 1)


@pytest.fixture(scope="module")
def vae():
    """A small VAE trained for 1000 steps (~15 s) on speech-like frames plus random ARKit combinations."""
    torch.manual_seed(0)
    cfg = Media2FaceVAEConfig(latent_dim=64, vae_vertices=128, vae_hidden=128, p_active=0.1, audio_encoder=TINY_AUDIO)
    recipe = Media2FaceVAE(cfg)
    opt = torch.optim.Adam(recipe.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(1)
    for _ in range(1000):
        w = speech_like(64, gen)
        batch = {"motion": torch.cat([w, torch.zeros(64, 3)], -1).view(4, 16, 55), "length": torch.full((4,), 16)}
        loss, _ = recipe.training_loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return recipe.eval()


def test_vae_reconstructs_held_out_frames_and_mappings_round_trip(vae):
    held_out = speech_like(256, torch.Generator().manual_seed(99))
    beta = torch.randn(256, 60, generator=torch.Generator().manual_seed(3))
    err = vae.reconstruction_errors(held_out, beta)
    assert err["recon_mm"] < 1.0 and err["map_mm"] < 1.0  # mean vertex error of ~8 mm displacements
    assert err["weights_rt"] < 0.06  # M′(M(w)) against w, mean absolute weight error


def test_latent_space_round_trips_through_checkpoints(vae, tmp_path):
    path = vae.save_checkpoint(tmp_path / "vae.pt")
    space = build_space({"name": "latent", "vae": str(path)})
    w = speech_like(5, torch.Generator().manual_seed(7)).numpy()
    arrays = {"blendshapes": w, "head_rotation": np.zeros((5, 3), np.float32)}
    x = space.from_arrays(arrays)
    assert x.shape == (5, 67)
    np.testing.assert_allclose(x, vae.vae.from_arrays(arrays), atol=1e-6)
    out = space.to_arrays(x)
    np.testing.assert_array_equal(space.from_arrays(out), x)  # the latent is stored exactly
    assert np.abs(out["blendshapes"] - w).mean() < 0.06
    rebuilt = build_space("latent", space.settings())  # as a recipe checkpoint restores it
    rebuilt.load_state_dict(space.state_dict())
    v = rebuilt.vertices_np(x)
    assert v.shape == (5, 25275, 3)
    np.testing.assert_allclose(v, space.vertices_np(x), atol=1e-6)
    # the decoded head is within a few mm of the rig driven by the frames' own weights
    rig = space.rig.vertices(w)[:, space.vae_index.numpy()]
    assert np.linalg.norm(v[:, space.vae_index.numpy()] - rig, axis=-1).mean() < 1.5e-3
    with pytest.raises(ValueError, match="untrained"):
        LatentSpace(latent_dim=8, num_vertices=128, hidden=16).from_arrays(arrays)


def _recipe(vae, **kw):
    torch.manual_seed(0)
    return Media2Face(config_from(Media2FaceConfig, {**TINY, "space": "latent", **kw}), space=vae.vae)


def test_recipe_overfits_one_clip(vae):
    r = _recipe(vae, p_drop_prompt=0.0, p_drop_all=0.0)
    t = torch.arange(40, dtype=torch.float32)
    motion = torch.stack([torch.sin(t / (3 + i)) for i in range(r.space.dim)], 1)
    r.set_statistics({"motion_mean": motion.mean(0), "motion_std": motion.std(0)})
    r.train_prompts = {"c": torch.nn.functional.normalize(torch.randn(384), dim=0)}
    batch = {"audio": torch.randn(1, 40, 8).repeat(8, 1, 1), "motion": motion[None].repeat(8, 1, 1),
             "length": torch.full((8,), 40), "id": ["c"] * 8}
    assert overfit_ratio(r, batch, r.denoiser.parameters()) < 0.1


def test_keyframes_are_held_in_both_long_audio_modes_and_by_edit(vae, tmp_path):
    from facemotion.api import Animator

    r = _recipe(vae).eval()
    keys = parse_keyframes([{"frame": 3, "expression": "smile"}, {"time": 0.7, "blendshapes": {"jawOpen": 0.6}},
                            {"frame": 30, "expression": "surprised", "head_rotation": [0.1, 0.0, 0.0]}], r.fps)
    feats = torch.randn(45, 8)
    for mode in ("overlapped", "autoregressive"):
        x = r.sample(feats, num_samples=2, keyframes=keys, long_audio=mode,
                     generator=[torch.Generator().manual_seed(s) for s in (0, 1)])
        assert x.shape == (2, 45, r.space.dim)
        for sample in x:
            w = r.space.to_arrays(sample)["blendshapes"]
            for key in keys:
                assert np.abs(w[key.frame] - key.weights).max() < 1e-3
        assert torch.allclose(x[:, 30, -3:], torch.tensor([0.1, 0.0, 0.0]), atol=1e-5)
    animator = Animator(r)
    wave = np.random.default_rng(0).normal(0, 0.1, 16000 * 2).astype(np.float32)
    base = animator.generate(wave, seed=0)[0]
    angry = [{"frame": 10, "expression": "angry"}]
    edited = animator.edit(base, keyframes=angry, strength=0.3, audio=wave)
    w = edited.blendshapes
    assert np.abs(w[10] - parse_keyframes(angry, r.fps)[0].weights).max() < 1e-3
    far = np.abs(np.arange(len(w)) - 10) > 10
    assert np.abs(edited.motion[far] - base.motion[far]).mean() < np.abs(base.motion[far]).mean()


def test_prompt_schedule_blends_prompts_in_one_batch(vae):
    from facemotion.prompts import schedule_masks

    texts, masks = schedule_masks([(0.0, 1.0, "happy"), (1.0, 2.0, "sad")], 60, 25.0, blend=0.4)
    assert texts == ["happy", "sad", None]
    np.testing.assert_allclose(masks.sum(0), 1.0, atol=1e-6)
    assert masks[0, 10] == 1.0 and masks[1, 35] == 1.0 and masks[2, 59] == 1.0 and 0 < masks[0, 25] < 1
    r = _recipe(vae).eval()
    r.embed_prompts = lambda ts: torch.nn.functional.normalize(torch.randn(len(ts), 384), dim=1)
    calls = []
    forward = r.denoiser.forward
    r.denoiser.forward = lambda *a, **k: calls.append(a[0].shape[0]) or forward(*a, **k)
    x = r.sample(torch.randn(60, 8), prompt=[(0.0, 1.0, "happy"), (1.0, 2.0, "sad")], steps=3)
    assert x.shape == (1, 60, r.space.dim) and torch.isfinite(x).all()
    windows = 1 + len(r.window_boundaries(60)[0])
    assert calls == [3 * 3 * windows] * 3  # 3 branches x 3 prompt groups x windows, one forward a step


def test_prompts_embed_offline(monkeypatch):
    from facemotion.prompts import MINILM_SHA256, _sha256, embed_texts, minilm_dir

    def refuse(*args, **kwargs):
        raise OSError("network refused by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    assert _sha256(str(minilm_dir() / "model.safetensors")) == MINILM_SHA256
    e = embed_texts(["an angry man shouting", "a furious person yelling", "a cheerful woman smiling"])
    assert e.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert e[0] @ e[1] > e[0] @ e[2]


def test_recipe_checkpoint_round_trip(vae, tmp_path):
    r = _recipe(vae).eval()
    path = r.save_checkpoint(tmp_path / "m2f.pt")
    loaded = load_checkpoint(path)
    assert isinstance(loaded.space, LatentSpace)
    feats = torch.randn(30, 8)
    a = r.sample(feats, generator=torch.Generator().manual_seed(0))
    b = loaded.sample(feats, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, b)


def test_bench_compares_overlapped_and_autoregressive_windows(vae, tmp_path, capsys):
    """`facemotion bench --long-audio` switches a media2face model's windowing and prints the seam
    ratio; a model with one way only refuses the switch."""
    import argparse

    from facemotion.bench import bench_command
    from facemotion.errors import DataError

    path = _recipe(vae).eval().save_checkpoint(tmp_path / "m2f.pt")
    seams = {}
    for mode in ("overlapped", "autoregressive"):
        capsys.readouterr()
        assert bench_command(argparse.Namespace(model=str(path), durations="2", formats="npz", speech=None,
                                                long_audio=mode)) == 0
        line = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("seam ratio")][0]
        assert f"{mode} windows" in line
        seams[mode] = float(line.split("expression ")[1].split(",")[0])
    assert all(np.isfinite(v) and v > 0 for v in seams.values())
    with pytest.raises(DataError, match="one way only"):
        bench_command(argparse.Namespace(model="default", durations="1", formats="npz", speech=None,
                                         long_audio="overlapped"))


def test_shipped_model_follows_text_prompts():
    """The shipped model (`from_pretrained("media2face")`) on the CMU ARCTIC example: "an angry
    person" frowns more (browDown*, noseSneer*) and smiles less (mouthSmile*) than "a happy
    person", same seed (the corpus's prompts say "angry", never "happy": "cheerful", "smiling")."""
    from pathlib import Path

    from facemotion import Animator
    from facemotion.audio.io import load_audio
    from facemotion.face.arkit import ARKIT_BLENDSHAPES

    root = Path(__file__).parents[1]
    if not (root / "src" / "facemotion" / "pretrained" / "media2face.pt").is_file():
        pytest.skip("no shipped media2face model")
    animator = Animator.from_pretrained("media2face")
    features = animator.audio_features(load_audio(root / "examples" / "cmu_arctic_slt_a0009.wav"))
    frown = [i for i, n in enumerate(ARKIT_BLENDSHAPES) if n.startswith(("browDown", "noseSneer"))]
    smile = [i for i, n in enumerate(ARKIT_BLENDSHAPES) if n.startswith("mouthSmile")]
    angry, happy = (animator.space.to_arrays(animator.sample(features, seed=0, prompt=p))["blendshapes"]
                    for p in ("an angry person", "a happy person"))
    assert angry[:, frown].mean() > happy[:, frown].mean() + 0.05
    assert happy[:, smile].mean() > angry[:, smile].mean() + 0.05
