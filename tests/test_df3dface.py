"""DF-3DFace recipe (issue 14): joint identity/motion/pose diffusion, the sync expert, reference
control and checkpoints, on a tiny vertex space (16 vertices, head pose)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from facemotion.audio.io import SAMPLE_RATE
from facemotion.errors import FacemotionError
from facemotion.face.space import VertexSpace
from facemotion.models import DENOISERS, JointEncoderDenoiser
from facemotion.recipes import RECIPES, load_checkpoint, recipe_class
from facemotion.recipes.base import config_from
from facemotion.recipes.df3dface import DF3DFace, DF3DFaceConfig

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "cmu_arctic_slt_a0009.wav"
V = 16
LIPS = [0, 1, 2, 3]
TINY = {"audio_encoder": {"name": "mel", "n_mels": 8}, "window": 40, "overlap": 6, "d_model": 32, "n_layers": 2,
        "n_heads": 2, "ff_mult": 2, "sync_hidden": 32, "sync_dim": 32, "sync_windows": 8, "steps": 4,
        "scheduler": "ddim", "sync_steps": 2, "warmup": 1, "lr": 1e-3}


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models: one torch thread (two threads on a shared, loaded CPU can be 50x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _space() -> VertexSpace:
    g = np.random.default_rng(0)
    template = g.normal(0, 0.05, (V, 3)).astype(np.float32)
    template[0], template[1] = [0.0, 0.01, 0.1], [0.0, -0.01, 0.1]
    return VertexSpace(template, lip_landmarks=(0, 1), lips=LIPS, head_pose=True)


def _recipe(**kw) -> DF3DFace:
    torch.manual_seed(0)
    return DF3DFace(config_from(DF3DFaceConfig, {**TINY, **kw}), space=_space())


def _clips(recipe: DF3DFace, count: int, frames: int, seed: int):
    """Noise bursts of random loudness (2-6 frames each, silent gaps); the lower lip drops with the
    loudness, the head sways, every clip has its own face. Returns audio features [count, T, 8],
    motion [count, T, D] and identities [count, 3V] (metres)."""
    rng = np.random.default_rng(seed)
    feats, motions, idents = [], [], []
    per = SAMPLE_RATE // 25
    for _ in range(count):
        env = []
        while len(env) < frames:
            env += [rng.uniform(0.2, 1.0) if rng.random() < 0.65 else 0.0] * int(rng.integers(2, 7))
        env = np.asarray(env[:frames], np.float32)
        wave = np.repeat(env, per) * rng.normal(0, 0.3, frames * per).astype(np.float32)
        feats.append(recipe.audio_features(wave))
        t = np.arange(frames) / 25
        disp = np.zeros((frames, V, 3), np.float32)
        disp[:, 1, 1] = -0.01 * env
        disp[:, 3, 1] = -0.006 * env
        disp[:, 0, 1] = 0.002 * env
        disp[:, 8:, 1] = 0.001 * np.sin(2 * np.pi * 0.5 * t + rng.uniform(0, 6))[:, None]
        head = 0.1 * np.sin(2 * np.pi * np.array([0.3, 0.2, 0.1]) * t[:, None] + rng.uniform(0, 6, 3))
        motions.append(torch.from_numpy(recipe.space.from_arrays({"displacements": disp,
                                                                 "head_rotation": head.astype(np.float32)})))
        idents.append(torch.from_numpy(rng.normal(0, 0.003, 3 * V).astype(np.float32)))
    return torch.stack(feats), torch.stack(motions), torch.stack(idents)


def _fit(recipe, feats, motion, ident):
    m, a = motion.flatten(0, 1), feats.flatten(0, 1)
    recipe.set_statistics({"motion_mean": m.mean(0), "motion_std": m.std(0, correction=0),
                           "audio_mean": a.mean(0), "audio_std": a.std(0, correction=0),
                           "identity_mean": ident.mean(0), "identity_std": ident.std(0, correction=0)})


def _adam(r, batch, params, count: int, lr: float):
    """``count`` Adam steps at ``lr`` on ``params`` of the recipe's loss in its current phase;
    returns the last (loss, terms)."""
    opt = torch.optim.Adam(params, lr=lr)
    for _ in range(count):
        loss, terms = r.training_loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return loss, terms


def test_registered_and_shapes():
    assert RECIPES["df3dface"].endswith(":DF3DFace") and recipe_class("df3dface") is DF3DFace
    assert DENOISERS["transformer_encoder"] is JointEncoderDenoiser
    r = _recipe()
    d = r.space.dim
    assert (d, r.identity_dim, r.width, r.rows, r.pose_dim) == (3 * V + 3, 3 * V, 3 * V + 3, 1, 3)
    x = r.pack(torch.randn(2, 3 * V), torch.randn(2, 7, d))
    assert x.shape == (2, 8, d) and torch.equal(x[:, 0, 3 * V:], torch.zeros(2, 3))  # x_id zero-padded by 3
    out = r.denoiser(x, torch.tensor([3, 400]), {"audio": torch.randn(2, 7, 8)}, {"audio": torch.tensor([True, False])})
    assert out.shape == x.shape and torch.equal(out[:, 0, 3 * V:], torch.zeros(2, 3))
    # masked conditioning (eq. 5-6): m(a) changes the output only where the mask hides frames
    cond = {"audio": torch.randn(2, 7, 8), "audio_mask": torch.zeros(2, 7, dtype=torch.bool)}
    same = r.denoiser(x, torch.tensor([3, 3]), cond, {"audio": torch.tensor([True, True])})
    torch.testing.assert_close(same, r.denoiser(x, torch.tensor([3, 3]), cond))


def test_overfits_one_clip():
    r = _recipe(p_mask_audio=0.0)
    feats, motion, ident = _clips(r, 1, 40, seed=1)
    _fit(r, feats, motion, ident)
    batch = {"audio": feats.repeat(8, 1, 1), "motion": motion.repeat(8, 1, 1), "length": torch.full((8,), 40),
             "shape": ident.repeat(8, 1)}
    r.set_phase(0)
    assert r.phase == "sync"
    _adam(r, batch, r.sync_expert.parameters(), 30, 3e-3)  # a briefly trained, then frozen, expert for L_sync
    assert r.set_phase(r.config.sync_steps) == "denoiser"
    assert not any(p.requires_grad for p in r.sync_expert.parameters())

    @torch.no_grad()
    def fixed_loss():
        torch.manual_seed(123)
        loss, terms = r.training_loss(batch)
        return float(loss), {k: float(v) for k, v in terms.items()}

    before, terms = fixed_loss()
    assert set(terms) == {"face", "lip", "pose", "sync"}
    _adam(r, batch, r.denoiser.parameters(), 150, 3e-3)
    after, terms_after = fixed_loss()
    print(f"\ndf3dface overfit: loss {before:.4g} -> {after:.4g} (ratio {before / after:.1f}); "
          f"terms before {terms}, after {terms_after}")
    assert after < before / 10


def test_sync_expert_ranks_the_true_audio_window():
    r = _recipe(sync_windows=8)
    feats, motion, ident = _clips(r, 12, 100, seed=2)
    held_feats, held_motion, held_ident = _clips(r, 4, 100, seed=3)
    _fit(r, feats, motion, ident)
    r.set_phase(0)
    torch.manual_seed(0)
    batch = {"audio": feats, "motion": motion, "length": torch.full((12,), 100)}
    loss, terms = _adam(r, batch, r.sync_expert.parameters(), 300, 2e-3)
    r.eval()
    n = r.config.sync_window
    starts = list(range(0, 100 - n, 12))[:8]  # 8 windows per held-out clip, 32 candidates, none overlapping
    frames = torch.tensor(starts)[:, None] + torch.arange(n)
    with torch.no_grad():
        lips = torch.cat([r.lip_motion(m)[frames] for m in held_motion])
        audio = torch.cat([r.normalise_audio(a)[frames] for a in held_feats])
        sim = r.sync_expert.similarity(lips, audio)  # [32 lip windows, 32 audio candidates]
    assert sim.shape == (32, 32)
    top1 = float((sim.argmax(1) == torch.arange(32)).float().mean())
    print(f"\nsync expert: held-out top-1 over 32 candidates {top1:.3f} (chance {1 / 32:.3f}); "
          f"last train loss {float(loss.detach()):.3f}, in-batch top-1 {float(terms['sync_top1']):.2f}")
    assert top1 >= 0.4


def test_reference_control_holds_identity_and_pose():
    r = _recipe().eval()
    feats, motion, ident = _clips(r, 2, 100, seed=4)
    _fit(r, feats, motion, ident)
    audio, pose = feats[0], r.space.head_pose(motion[1])  # 100 frames: three 40-frame windows
    gens = lambda: [torch.Generator().manual_seed(s) for s in (5, 6)]  # noqa: E731
    free, free_id = r.sample(audio, num_samples=2, generator=gens(), return_identity=True)
    assert free.shape == (2, 100, r.space.dim) and free_id.shape == (2, 3 * V)
    assert not torch.allclose(free_id[0], free_id[1])  # identities are sampled too
    # given identity: generated identity (the neutral face) equals it; pose and motion still generated
    out, out_id = r.sample(audio, num_samples=2, generator=gens(), identity=ident[1].view(V, 3), return_identity=True)
    neutral = lambda i: torch.as_tensor(r.space.mesh(i.view(V, 3).numpy()).neutral)  # noqa: E731
    id_err = max(float((neutral(out_id[k]) - neutral(ident[1])).norm(dim=-1).max()) for k in range(2))
    assert id_err < 1e-4  # < 0.1 mm
    assert not torch.allclose(out[0], out[1])
    # given pose: generated pose equals it, identity and motion are generated
    posed, posed_id = r.sample(audio, num_samples=2, generator=gens(), pose=pose, return_identity=True)
    pose_err = float((r.space.head_pose(posed) - pose).abs().max())
    assert pose_err < 1e-5 and not torch.allclose(posed_id[0], posed_id[1])
    assert float((r.space.head_pose(free) - pose).abs().max()) > 1e-2
    # both, and the expression motion too
    both, both_id = r.sample(audio, generator=gens()[:1], identity=ident[1], pose=pose, motion=motion[1],
                             return_identity=True)
    torch.testing.assert_close(both[0], motion[1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(both_id[0], ident[1], atol=1e-7, rtol=1e-5)
    print(f"\nreference control: identity max vertex error {id_err * 1e3:.2e} mm, pose max error {pose_err:.2e} rad")
    # a sample does not depend on the batch it is drawn in
    alone = r.sample(audio, generator=gens()[1:])
    torch.testing.assert_close(alone[0], free[1], atol=1e-5, rtol=1e-4)
    with pytest.raises(FacemotionError):
        r.sample(audio, identity=torch.zeros(5))
    with pytest.raises(FacemotionError):
        r.sample(audio, pose=torch.zeros(10, 3))
    with pytest.raises(FacemotionError):
        r.sample(audio, style=torch.zeros(4))


def test_checkpoint_round_trip_and_animator(tmp_path):
    from facemotion.api import Animator

    r = _recipe(steps=2).eval()
    feats, motion, ident = _clips(r, 2, 40, seed=5)
    _fit(r, feats, motion, ident)
    path = r.save_checkpoint(tmp_path / "df3d.pt")
    loaded = load_checkpoint(path)
    assert isinstance(loaded, DF3DFace) and not loaded.training and loaded.identity_dim == 3 * V
    a = r.sample(feats[0], generator=torch.Generator().manual_seed(3))
    b = loaded.sample(feats[0], generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    for name, p in r.sync_expert.state_dict().items():  # the sync expert travels inside the checkpoint
        torch.testing.assert_close(loaded.sync_expert.state_dict()[name], p, rtol=0, atol=0)
    animator = Animator.from_checkpoint(path)
    res = animator.generate(EXAMPLE, seed=1, num_samples=2)
    again, = animator.generate(EXAMPLE, seed=1)
    assert len(res) == 2 and res[0].motion.shape[1] == r.space.dim and np.isfinite(res[0].motion).all()
    np.testing.assert_allclose(again.motion, res[0].motion, atol=1e-5)
    assert res[0].vertices().shape == (res[0].num_frames, V, 3)
    # the Animator keeps each sample's drawn identity, holds a given one and a given pose
    assert res[0].identity is not None and not np.allclose(res[0].identity, res[1].identity)
    given = ident[0].numpy().reshape(V, 3)
    held, = animator.generate(EXAMPLE, seed=1, identity=given)
    np.testing.assert_allclose(held.mesh().neutral, r.space.mesh(given).neutral, atol=1e-7)
    pose = 0.1 * np.ones((held.num_frames + 5, 3), np.float32)
    posed, = animator.generate(EXAMPLE, seed=1, pose=pose)
    np.testing.assert_allclose(posed.motion[:, -3:], pose[:posed.num_frames], atol=1e-6)


def test_cli_pose_from(tmp_path):
    from facemotion.animation import Animation
    from facemotion.cli import main

    r = _recipe(steps=2).eval()
    feats, motion, ident = _clips(r, 2, 40, seed=6)
    _fit(r, feats, motion, ident)
    model = r.save_checkpoint(tmp_path / "df3d.pt")
    ref = Animation(motion[1].numpy(), r.space, 50.0).save(tmp_path, ["npz"], stem="ref")["npz"]  # 50 fps: resampled
    assert main(["generate", str(EXAMPLE), "--model", str(model), "--pose-from", str(ref), "--seed", "3",
                 "-o", str(tmp_path / "out"), "--formats", "npz"]) == 0
    out = Animation.load(tmp_path / "out" / f"{EXAMPLE.stem}.npz")
    t_ref = np.arange(40) / 50.0
    t_out = np.minimum(np.arange(out.num_frames), 19) / 25.0  # 0.8 s of reference: 20 frames, the last one held
    want = np.stack([np.interp(t_out, t_ref, c) for c in motion[1, :, -3:].numpy().T], 1)
    np.testing.assert_allclose(out.head_rotation, want, atol=1e-5)


def test_windows_carry_each_clips_identity(tmp_path):
    """Training and validation windows of a vertex corpus carry the clip's neutral face as
    ``shape`` (its template minus the space's); the recipe trains on it through its identity
    model; clips without their own face carry none."""
    import json

    from torch.utils.data import default_collate

    from facemotion.data.windows import MotionWindows, dataset_statistics, fixed_windows

    space = _space()
    rng = np.random.default_rng(7)
    (tmp_path / "feats").mkdir()
    faces, lines = [], []
    for i in range(4):
        faces.append((space.template.numpy() + rng.normal(0, 0.003, (V, 3))).astype(np.float32))
        np.savez(tmp_path / f"c{i}.npz", displacements=rng.normal(0, 1e-3, (30, V, 3)).astype(np.float32),
                 template=faces[-1], head_rotation=np.zeros((30, 3), np.float32))
        np.save(tmp_path / "feats" / f"c{i}.npy", rng.normal(0, 1, (30, 8)).astype(np.float32))
        lines.append({"id": f"c{i}", "speaker": f"s{i}", "split": "train", "fps": 25, "audio": "x.wav",
                      "motion": f"c{i}.npz", "duration": 1.2})
    (tmp_path / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    dirs = [tmp_path / "feats"]
    val = fixed_windows(tmp_path, lines, dirs, space, 20, 4)
    for item, face in zip(val, faces):
        np.testing.assert_allclose(item["shape"].numpy(), face - space.template.numpy(), atol=1e-9)
    batch = default_collate([item for _, item in zip(range(6), MotionWindows(tmp_path, lines, dirs, space, 20))])
    assert batch["shape"].shape == (6, V, 3)
    ids = [int(i[1:]) for i in batch["id"]]
    torch.testing.assert_close(batch["shape"], torch.from_numpy(np.stack([faces[i] for i in ids])) - space.template)
    assert "shape" not in dataset_statistics(tmp_path, lines, dirs, space)  # statistics: motion and audio only
    # the recipe reads it through an identity model fitted on the same clips
    model_space = VertexSpace(space.template.numpy(), lip_landmarks=(0, 1), lips=LIPS, head_pose=True,
                              identity_components=3)
    model_space.fit(np.load(tmp_path / r["motion"]) for r in lines)
    torch.manual_seed(0)
    r = DF3DFace(config_from(DF3DFaceConfig, TINY), space=model_space)
    assert (r.identity_dim, r.identity_model, r.width) == (3, True, 3 * V + 3)
    m, a = batch["motion"].flatten(0, 1), batch["audio"].flatten(0, 1)  # x_id needs none: whitened coordinates
    r.set_statistics({"motion_mean": m.mean(0), "motion_std": m.std(0), "audio_mean": a.mean(0), "audio_std": a.std(0)})
    r.set_phase(r.config.sync_steps)
    loss, terms = r.training_loss(batch)
    assert torch.isfinite(loss) and set(terms) >= {"face", "lip", "pose"}
    # a given identity off the model's span is held exactly; drawn ones lie in the span
    feats = torch.from_numpy(np.load(dirs[0] / "c0.npy"))
    given = torch.from_numpy(rng.normal(0, 0.003, (V, 3)).astype(np.float32))
    _, held = r.eval().sample(feats, num_samples=2, generator=[torch.Generator().manual_seed(s) for s in (1, 2)],
                              identity=given, return_identity=True)
    err = float((held.view(2, V, 3) - given).norm(dim=-1).max())
    assert held.shape == (2, 3 * V) and err < 1e-4  # < 0.1 mm
    code, residual = r.encode_identity(given[None])
    assert float(residual.abs().max()) > 1e-4  # the reference was off the span
    _, drawn = r.sample(feats, num_samples=2, generator=[torch.Generator().manual_seed(s) for s in (1, 2)],
                        return_identity=True)
    torch.testing.assert_close(r.encode_identity(drawn)[1], torch.zeros(2, 3 * V), atol=1e-7, rtol=0)
    print(f"\nidentity model: a given identity off the span held to {err * 1e3:.2e} mm "
          f"(residual off the span {float(residual.abs().max()) * 1e3:.2f} mm)")


def _identity_corpus(root: Path) -> tuple[Path, VertexSpace]:
    """Three noise-burst clips (c0, c1 train, c2 val) on the 16-vertex face, each speaker with
    its own neutral face (template offsets in a 2-dimensional span), and a space with an
    identity model of 2 components fitted on them."""
    from recipe_helpers import burst_clips

    base = _space()
    template = base.template.numpy()
    modes = np.random.default_rng(8).normal(0, 0.002, (2, V, 3)).astype(np.float32)

    def motion(i, env, rng):
        t = len(env)
        disp = np.zeros((t, V, 3), np.float32)
        disp[:, 1, 1] = -0.01 * env
        face = template + modes[0] * (i - 1) + modes[1] * (1 - abs(i - 1))
        head = np.stack([np.zeros(t), 0.05 * np.sin(np.arange(t) / 25 + i), np.zeros(t)], 1)
        return {"displacements": disp, "template": face.astype(np.float32), "head_rotation": head.astype(np.float32)}

    burst_clips(root, 3, 2.0, 25, motion)
    space = VertexSpace(template, lip_landmarks=(0, 1), lips=LIPS, head_pose=True, identity_components=2)
    space.fit(dict(np.load(root / f"c{i}.npz")) for i in range(3))
    return root, space


def test_eval_bench_and_realval_aperture_of_a_vertex_model(tmp_path, capsys):
    """`facemotion eval` on a df3dface checkpoint: identity / motion / pose diversity and
    DF-3DFace's Table 3 (given references have zero multimodality); `facemotion bench` times the
    formats a vertex space can express; the real-speech aperture comes from the space's landmarks."""
    import argparse
    import json

    from facemotion.bench import bench_command
    from facemotion.cli import main
    from facemotion.metrics.lipsync import aperture_from_motion

    root, space = _identity_corpus(tmp_path / "data")
    torch.manual_seed(0)
    r = DF3DFace(config_from(DF3DFaceConfig, {**TINY, "steps": 2}), space=space).eval()
    ckpt = r.save_checkpoint(tmp_path / "df3d.pt")
    prefix = tmp_path / "table"
    assert main(["eval", "--model", str(ckpt), "--data", str(root), "--split", "train", "--num-samples", "2",
                 "--multimodality", "2", "--out", str(prefix)]) == 0
    report = json.loads(prefix.with_suffix(".json").read_text())["models"][0]
    assert report["pooled"]["div_identity_mm"]["mean"] > 0 and report["pooled"]["div_motion_mm"]["mean"] > 0
    rows = report["multimodality"]["rows"]
    assert list(rows) == ["aud, id, pose", "aud, pose", "aud, id", "aud"]
    assert rows["aud, id, pose"]["mult_id_mm"]["mean"] < 1e-4 and rows["aud, id, pose"]["mult_pose_deg"]["mean"] < 1e-4
    assert rows["aud, id"]["mult_id_mm"]["mean"] < 1e-4 < rows["aud, id"]["mult_pose_deg"]["mean"]
    assert rows["aud, pose"]["mult_pose_deg"]["mean"] < 1e-4 < rows["aud, pose"]["mult_id_mm"]["mean"]
    assert min(rows["aud"][k]["mean"] for k in ("mult_id_mm", "mult_motion_mm", "mult_pose_deg", "mult_mesh_mm")) > 0
    markdown = prefix.with_suffix(".md").read_text()
    assert "| aud, id, pose |" in markdown and "Diversity identity" in markdown and "Mult mesh" in markdown
    capsys.readouterr()
    assert bench_command(argparse.Namespace(model=str(ckpt), durations="1", formats=None, speech=None)) == 0
    assert "formats: npz,mp4" in capsys.readouterr().out
    motion = r.sample(r.audio_features(np.zeros(16000, np.float32)))
    got = aperture_from_motion(space, motion[0].numpy())
    want = space.lip_aperture(space.decode(motion[0])[0]).numpy()
    np.testing.assert_allclose(got, want, atol=1e-7)


def test_reference_control_keeps_the_lips_on_the_audio():
    """Issue 14 acceptance, on a tiny overfit model: with the identity and head pose given, the
    lips close on the closures (/p b m/-like silences between bursts) and open on the bursts as
    in unconditioned sampling (closure rate within 0.05; metrics.lipsync definitions, apertures
    from the space's lip landmarks with a 0.8 mm rest opening as on the built-in head)."""
    from facemotion.audio.phones import PhoneSegment
    from facemotion.metrics.lipsync import LipSyncReport, aperture_from_motion, measure_lipsync

    template = _space().template.numpy()
    template[0], template[1] = [0.0, 0.0004, 0.1], [0.0, -0.0004, 0.1]
    torch.manual_seed(0)
    r = DF3DFace(config_from(DF3DFaceConfig, {**TINY, "w_sync": 0.0, "p_mask_audio": 0.0}),
                 space=VertexSpace(template, lip_landmarks=(0, 1), lips=LIPS, head_pose=True))
    feats, motion, ident = _clips(r, 8, 40, seed=9)
    _fit(r, feats, motion, ident)
    r.set_phase(r.config.sync_steps)
    _adam(r, {"audio": feats, "motion": motion, "length": torch.full((8,), 40), "shape": ident},
          r.denoiser.parameters(), 800, 3e-3)
    r.eval()

    def figures(given: bool) -> dict:
        items = []
        for c in range(8):
            drop = r.space.expression_vertices(motion[c], indices=torch.tensor([1]))[:, 0, 1] - float(template[1, 1])
            loud = (drop < -1e-3).tolist()  # bursts open the mouth ("AA"), silences close it ("M")
            cuts = [0] + [t for t in range(1, 40) if loud[t] != loud[t - 1]] + [40]
            segments = [PhoneSegment("AA" if loud[a] else "M", a / 25, b / 25) for a, b in zip(cuts, cuts[1:])]
            refs = {"identity": ident[c], "pose": r.space.head_pose(motion[c])} if given else {}
            out = r.sample(feats[c], num_samples=8, generator=[torch.Generator().manual_seed(s) for s in range(8)],
                           **refs)
            items += [measure_lipsync(aperture_from_motion(r.space, o.numpy()), 25.0, segments) for o in out]
        return LipSyncReport(items, []).figures()

    free, held = figures(False), figures(True)
    print(f"\nclosure on the silences (free / identity and pose given): {free['closure_rate']:.3f} / "
          f"{held['closure_rate']:.3f} of {held['num_bilabial']}; open/closed aperture ratio "
          f"{free['open_bilabial_ratio']:.1f} / {held['open_bilabial_ratio']:.1f}")
    assert free["closure_rate"] >= 0.9 and abs(held["closure_rate"] - free["closure_rate"]) <= 0.05
    assert min(free["open_bilabial_ratio"], held["open_bilabial_ratio"]) >= 3
    assert held["shut_open_vowel_rate"] <= 0.05
