"""Animator and the `facemotion generate/style/bench` handlers."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from facemotion import api
from facemotion.api import Animator
from facemotion.cli import main
from facemotion.errors import AudioError, DataError
from facemotion.face.space import default_blendshape_space

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "cmu_arctic_slt_a0009.wav"


class FakeRecipe:
    """Honours the recipe contract: features follow the audio, motion follows the generator
    (one, or one per sample)."""

    space = default_blendshape_space()
    fps = 25.0
    default_sampling = {"steps": 2, "w_audio": 1.0, "w_style": 1.0, "scheduler": "ddim"}

    def audio_features(self, wave):
        frames = int(round(len(wave) / 16000 * self.fps))
        return torch.from_numpy(np.abs(wave[: frames * 640]).reshape(frames, 640).mean(1, keepdims=True))

    def sample(self, features, num_samples=1, style=None, steps=None, w_audio=None, w_style=None,
               generator=None):
        gens = generator if isinstance(generator, list) else [generator] * num_samples
        assert len(gens) == num_samples
        noise = torch.cat([torch.rand(1, len(features), 55, generator=g) for g in gens]) * 0.1
        return noise + features[None] * (0.0 if style is None else float(style.sum()))

    def encode_style(self, motion):
        return motion.mean(0)[:4]


@pytest.fixture
def animator():
    return Animator(FakeRecipe(), None)


def test_generate_is_reproducible_from_the_seed(animator):
    a, = animator.generate(EXAMPLE, seed=7)            # always a list, one Animation per sample
    b, = animator.generate(EXAMPLE, seed=7)
    c, = animator.generate(EXAMPLE, seed=8)
    assert a.seed == 7 and a.fps == 25.0 and a.audio == EXAMPLE
    assert a.num_frames == round(sf.info(EXAMPLE).duration * 25)
    assert a.blendshapes.shape == (a.num_frames, 52) and a.head_rotation.shape == (a.num_frames, 3)
    np.testing.assert_array_equal(a.blendshapes, b.blendshapes)
    assert not np.allclose(a.blendshapes, c.blendshapes)
    several = animator.generate(EXAMPLE, seed=7, num_samples=2)
    assert [s.seed for s in several] == [7, 8]
    np.testing.assert_array_equal(several[1].head_rotation, c.head_rotation)   # seed + i, batched
    np.testing.assert_array_equal(several[0].motion, a.motion)
    drawn, = animator.generate(EXAMPLE)
    again, = animator.generate(EXAMPLE, seed=drawn.seed)
    np.testing.assert_array_equal(drawn.blendshapes, again.blendshapes)


def test_extract_style_resamples_clip_to_model_fps(animator, tmp_path):
    from facemotion.animation import Animation

    clip = tmp_path / "clip.npz"
    w = np.zeros((50, 52), np.float32)
    w[:, 3] = 0.5
    np.savez(clip, blendshapes=w, head_rotation=np.zeros((50, 3), np.float32), fps=50.0)
    assert Animation.load(clip).num_frames == 50
    style = animator.extract_style(clip)
    np.testing.assert_allclose(style, [0, 0, 0, 0.5])
    with pytest.raises(DataError):
        animator.extract_style(tmp_path / "missing.npz")


def test_from_pretrained_unknown_name_is_a_data_error():
    with pytest.raises(DataError, match="no pretrained model named 'nonexistent'"):
        Animator.from_pretrained("nonexistent")


def test_generate_command_writes_every_sample(animator, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(api, "load_animator", lambda model, *model_dirs: animator)
    out = tmp_path / "out"
    assert main(["generate", str(EXAMPLE), "-o", str(out), "--seed", "3", "--num-samples", "2",
                 "--formats", "npz,csv"]) == 0
    printed = capsys.readouterr().out
    assert "seed: 3" in printed
    stem = EXAMPLE.stem
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{stem}_{i}.{ext}" for i in (0, 1) for ext in ("npz", "csv"))
    from facemotion.animation import Animation

    assert Animation.load(out / f"{stem}_1.npz").seed == 4


def test_identity_from_a_seed_or_a_file(animator, tmp_path, monkeypatch, capsys):
    from facemotion.animation import Animation
    from facemotion.face.rig import load_head_rig

    rig = load_head_rig()
    a, = animator.generate(EXAMPLE, seed=1, identity=5)
    b, = animator.generate(EXAMPLE, seed=1, identity=np.asarray(a.identity[:10]))
    assert a.identity.shape == (len(rig.identity_names),)
    np.testing.assert_array_equal(a.blendshapes, b.blendshapes)          # the motion is the same
    va, vb, v0 = a.vertices()[0], b.vertices()[0], animator.generate(EXAMPLE, seed=1)[0].vertices()[0]
    assert va.shape == v0.shape and np.abs(va - v0).max() > 0.002 and np.abs(va - vb).max() > 1e-4
    monkeypatch.setattr(api, "load_animator", lambda model, *model_dirs: animator)
    coeffs = tmp_path / "face.npy"
    np.save(coeffs, a.identity)
    for spec in ("5", str(coeffs)):
        assert main(["generate", str(EXAMPLE), "-o", str(tmp_path / spec[-3:]), "--seed", "1",
                     "--identity", spec, "--formats", "npz"]) == 0
        np.testing.assert_array_equal(Animation.load(tmp_path / spec[-3:] / f"{EXAMPLE.stem}.npz").identity,
                                      a.identity)
    capsys.readouterr()
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((2, 3)))
    for spec, problem in ((str(bad), "vector"), (str(tmp_path / "none.npy"), "none.npy"),
                          (str(coeffs), None)):
        if problem is None:                                  # too many coefficients
            np.save(coeffs, np.zeros(len(rig.identity_names) + 1, np.float32))
            problem = "identity"
        assert main(["generate", str(EXAMPLE), "-o", str(tmp_path / "x"), "--identity", spec]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and problem in err[0]
    assert not (tmp_path / "x").exists()


def _bad_inputs(tmp_path):
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio\n")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    short = tmp_path / "short.wav"
    sf.write(short, np.zeros(1600, np.float32) + 0.1, 16000)  # 0.1 s
    return [tmp_path / "missing.wav", text, empty, short]


@pytest.mark.parametrize("case", range(4))
def test_generate_bad_input_fails_cleanly(case, tmp_path, capsys):
    speech = _bad_inputs(tmp_path)[case]
    out = tmp_path / "out"
    code = main(["generate", str(speech), "-o", str(out), "--seed", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert len(err) == 1 and str(speech) in err[0] and err[0].startswith("facemotion: error:")
    assert not out.exists() or not any(out.iterdir())
    with pytest.raises(AudioError):
        Animator(FakeRecipe(), None).generate(speech)


def test_style_command_writes_style_npz(animator, tmp_path, monkeypatch):
    monkeypatch.setattr(api, "load_animator", lambda model, *model_dirs: animator)
    clip = tmp_path / "clip.npz"
    np.savez(clip, blendshapes=np.full((10, 52), 0.25, np.float32),
             head_rotation=np.zeros((10, 3), np.float32), fps=25.0)
    assert main(["style", str(clip), "-o", str(tmp_path / "s.npz")]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "s.npz")["style"], [0.25] * 4)


def test_tiny_diffposetalk_checkpoint_end_to_end(tmp_path):
    from facemotion.recipes.diffposetalk import DiffPoseTalk, DiffPoseTalkConfig

    torch.manual_seed(0)
    config = DiffPoseTalkConfig(audio_encoder={"name": "mel"}, window=20, n_prev_motions=4,
                                d_model=16, n_layers=1, n_heads=2, style_dim=8, style_layers=1,
                                style_heads=2, steps=2)
    checkpoint = DiffPoseTalk(config).save_checkpoint(tmp_path / "tiny.pt")
    animator = Animator.from_checkpoint(checkpoint)
    a, = animator.generate(EXAMPLE, seed=1)
    b, = animator.generate(EXAMPLE, seed=1)
    c, = animator.generate(EXAMPLE, seed=2)
    assert a.num_frames == round(sf.info(EXAMPLE).duration * animator.fps)
    np.testing.assert_array_equal(a.blendshapes, b.blendshapes)
    np.testing.assert_array_equal(a.head_rotation, b.head_rotation)
    assert not np.allclose(a.blendshapes, c.blendshapes)
    clip = a.save(tmp_path, ["npz"], stem="clip")["npz"]
    style = animator.extract_style(clip)
    assert style.shape == (8,) and np.isfinite(style).all()
    styled, = animator.generate(EXAMPLE, seed=1, style=style, w_style=2.0)
    assert styled.blendshapes.shape == a.blendshapes.shape
    batch = animator.generate(EXAMPLE, seed=1, num_samples=3)  # one batched pass, a generator per sample
    assert [r.seed for r in batch] == [1, 2, 3]
    np.testing.assert_allclose(batch[0].motion, a.motion, atol=1e-5)
    np.testing.assert_allclose(batch[1].motion, c.motion, atol=1e-5)


def test_default_model_speaks_the_example(capsys):
    """The shipped model animates the example recording through the CLI: the lips open on
    the vowels and close again, the head moves, and the video (kept in tests/artifacts for a
    person to watch) has the speech muxed in."""
    from facemotion.animation import Animation
    from facemotion.face.rig import load_head_rig

    out = Path(__file__).resolve().parent / "artifacts" / "default_model"
    assert main(["generate", str(EXAMPLE), "-o", str(out), "--seed", "0", "--formats", "npz,mp4",
                 "--overwrite"]) == 0  # kept for inspection, replaced on every run
    assert "seed: 0" in capsys.readouterr().out
    anim = Animation.load(out / "cmu_arctic_slt_a0009.npz")
    assert abs(anim.duration - 3.1) < 0.1
    rig = load_head_rig()
    v = anim.vertices()
    aperture = np.linalg.norm(v[:, rig.landmarks["upper_lip_mid"]] - v[:, rig.landmarks["lower_lip_mid"]], axis=-1)
    assert aperture.max() > 0.006 and aperture.min() < 0.002
    assert np.ptp(anim.head_rotation, axis=0).max() > np.radians(0.5)
    assert (out / "cmu_arctic_slt_a0009.mp4").stat().st_size > 10_000
