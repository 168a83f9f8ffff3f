"""The keyed normaliser: streaming statistics equal numpy's, round trips, checkpoints (old
buffer names included), streamed dataset statistics and the bounded clip cache."""

from importlib import resources

import numpy as np
import pytest
import torch

from facemotion.models.normalizer import Normalizer, RunningStats


def test_running_stats_equal_numpy_over_chunks():
    rng = np.random.default_rng(0)
    chunks = [rng.normal(3.0, 2.0, (n, 5)).astype(np.float32) for n in (1, 7, 0, 40, 3)]
    st = RunningStats(5)
    for c in chunks:
        st.update(c)
    every = np.concatenate(chunks).astype(np.float64)
    assert st.count == len(every)
    np.testing.assert_allclose(st.mean, every.mean(0), rtol=1e-12)
    np.testing.assert_allclose(st.std, every.std(0), rtol=1e-12)
    half_a, half_b = RunningStats(5), RunningStats(5)  # merging two workers' accumulators
    for i, c in enumerate(chunks):
        (half_a if i % 2 else half_b).update(torch.from_numpy(c))
    np.testing.assert_allclose(half_a.merge(half_b).std, every.std(0), rtol=1e-12)
    with pytest.raises(ValueError):
        st.update(np.zeros((2, 4)))


def test_normalizer_fits_round_trips_and_saves(tmp_path):
    rng = np.random.default_rng(1)
    norm = Normalizer({"motion": 3, "audio": 2}, std_floor=1e-2)
    x = torch.from_numpy(rng.normal(5.0, 3.0, (100, 3)).astype(np.float32))
    x[:, 2] = 1.0  # constant channel: the std is floored
    norm.fit([{"motion": x[:60]}, {"motion": x[60:]}])
    assert norm.std("motion")[2] == pytest.approx(1e-2)
    z = norm.normalize("motion", x)
    torch.testing.assert_close(z[:, :2].mean(0), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(norm.unnormalize("motion", z), x)
    assert torch.equal(norm.normalize("audio", torch.ones(4, 2)), torch.ones(4, 2))  # not fitted: identity
    torch.save(norm.state_dict(), tmp_path / "n.pt")
    other = Normalizer({"motion": 3, "audio": 2})
    other.load_state_dict(torch.load(tmp_path / "n.pt"))
    assert torch.equal(other.std("motion"), norm.std("motion"))
    with pytest.raises(KeyError):
        norm.normalize("style", x)


def test_old_checkpoint_buffers_load_into_the_normalizer():
    from facemotion.recipes import load_checkpoint

    path = resources.files("facemotion") / "pretrained" / "default.pt"
    blob = torch.load(path, map_location="cpu", weights_only=True)
    model = load_checkpoint(path)
    for key in ("motion", "audio"):
        old_mean = blob["state_dict"].get(f"{key}_mean", blob["state_dict"].get(f"normalizer.{key}_mean"))
        assert torch.equal(model.normalizer.mean(key), old_mean)
    x = torch.randn(4, model.space.dim)
    torch.testing.assert_close(model.denormalise(model.normalise(x)), x)
    assert "normalizer.motion_mean" in model.state_dict()


def _tiny_corpus(root, clips=5):
    import json

    rng = np.random.default_rng(2)
    (root / "feats").mkdir(parents=True)
    lines = []
    for i in range(clips):
        t = 10 + 3 * i
        np.savez(root / f"c{i}.npz", blendshapes=rng.random((t, 52), np.float32),
                 head_rotation=rng.normal(0, 0.1, (t, 3)).astype(np.float32), fps=25)
        np.save(root / "feats" / f"c{i}.npy", rng.normal(0, 1, (t, 4)).astype(np.float32))
        lines.append({"id": f"c{i}", "speaker": "s", "split": "train", "fps": 25, "audio": f"c{i}.wav",
                      "motion": f"c{i}.npz", "duration": t / 25})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return lines


def test_dataset_statistics_stream_equal_numpy_and_clip_store_is_bounded(tmp_path):
    from facemotion.data.native import load_motion
    from facemotion.data.windows import ClipStore, dataset_statistics, motion_vectors
    from facemotion.face.space import BlendshapeSpace

    space = BlendshapeSpace()
    records = _tiny_corpus(tmp_path)
    dirs = [tmp_path / "feats"]
    stats = dataset_statistics(tmp_path, records, dirs, space, max_clips=None)
    motion = np.concatenate([motion_vectors(space, load_motion(tmp_path, r)) for r in records]).astype(np.float64)
    feats = np.concatenate([np.load(tmp_path / "feats" / f"{r['id']}.npy") for r in records]).astype(np.float64)
    np.testing.assert_allclose(stats["motion"].mean, motion.mean(0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(stats["motion"].std, motion.std(0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(stats["audio"].std, feats.std(0), rtol=1e-10)
    assert set(dataset_statistics(tmp_path, records, None, space, max_clips=2)) == {"motion"}

    clip_bytes = 10 * (55 + 4) * 4
    store = ClipStore(tmp_path, dirs, space, max_bytes=int(2.5 * 30 * (55 + 4) * 4))
    for r in records:
        store.get(r)
        assert store._bytes <= store.max_bytes
    assert 1 <= len(store) < len(records)
    assert "c4" in store._clips and "c0" not in store._clips  # least recently used went first
    none = ClipStore(tmp_path, dirs, space, max_bytes=0)
    assert none.get(records[0])[1].shape == (10, 55) and len(none) == 0
    assert clip_bytes > 0
