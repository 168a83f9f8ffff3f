"""Schedulers, classifier-free guidance and windowed sampling (facemotion.diffusion)."""

import pytest
import torch

from facemotion.errors import FacemotionError

from facemotion.diffusion.guidance import guided_output
from facemotion.diffusion.schedulers import add_noise, make_scheduler, predicted_x0, sample_loop
from facemotion.diffusion.windows import (autoregressive_windows, fuse_windows, overlapped_windows,
                                         receding_horizon, window_boundaries, window_slice)
from facemotion.metrics.motion import seam_ratio

BRANCHES = ({"audio", "style"}, {"style"}, set())


class CountingDenoiser:
    """D(x, A, s) = x + 1·[audio kept]·A + 10·[style kept]·s; counts calls and batch sizes."""

    def __init__(self):
        self.calls = []

    def __call__(self, x, t, cond, drop):
        self.calls.append(x.shape[0])
        a = cond["audio"] * (~drop["audio"]).float()[:, None]
        s = cond["style"] * (~drop["style"]).float()[:, None]
        return x + a + 10 * s


def test_guidance_reduces_to_single_branch_and_batches_branches():
    x, t = torch.randn(3, 4), torch.zeros(3, dtype=torch.long)
    cond = {"audio": torch.randn(3, 4), "style": torch.randn(3, 4)}
    a, s = cond["audio"], 10 * cond["style"]
    for (wa, ws), expected in {(1.0, 1.0): x + a + s, (1.0, 0.0): x + a, (0.0, 0.0): x}.items():
        d = CountingDenoiser()
        out = guided_output(d, x, t, cond, BRANCHES, [wa, ws])
        torch.testing.assert_close(out, expected)
        assert d.calls == [3]  # only the one branch with a non-zero coefficient is evaluated
    d = CountingDenoiser()
    out = guided_output(d, x, t, cond, BRANCHES, [1.15, 2.5])
    assert d.calls == [9]  # three branches, one forward
    torch.testing.assert_close(out, x + 1.15 * a + 2.5 * s)  # eq. 10
    masked = guided_output(CountingDenoiser(), x, t, cond, BRANCHES, [torch.tensor([0.0, 1, 1, 1]), 1.0])
    torch.testing.assert_close(masked[:, 0], (x + s)[:, 0])  # per-dimension (masked) audio scale
    torch.testing.assert_close(masked[:, 1:], (x + a + s)[:, 1:])


@pytest.mark.parametrize("name", ["ddpm", "ddim", "dpmsolver"])
@pytest.mark.parametrize("prediction", ["sample", "epsilon"])
def test_sampler_recovers_target_with_oracle_denoiser(name, prediction):
    sched = make_scheduler(name, 500, prediction)
    target = torch.randn(2, 5, 3)

    def oracle(x_t, n):
        if prediction == "sample":
            return target
        abar = sched.alphas_cumprod[n].view(-1, 1, 1)
        return (x_t - abar.sqrt() * target) / (1 - abar).sqrt()

    out = sample_loop(sched, oracle, target.shape, 10 if name != "ddpm" else 50, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, target, atol=2e-3, rtol=0)


def test_noise_and_x0_conversion_are_inverse():
    sched = make_scheduler("ddpm", 500, "epsilon")
    g = torch.Generator().manual_seed(0)  # float64: at n = 499 recovering x0 divides by sqrt(ᾱ) ≈ 1e-4
    x0, noise = torch.randn(4, 6, 2, generator=g, dtype=torch.float64), torch.randn(4, 6, 2, generator=g,
                                                                                     dtype=torch.float64)
    t = torch.tensor([0, 100, 300, 499])
    torch.testing.assert_close(predicted_x0(sched, noise, add_noise(sched, x0, noise, t), t), x0, atol=1e-3, rtol=0)


def test_windows_give_exact_length_and_chain_previous_frames():
    seen = []

    def sample_window(start, valid, prev, known):
        seen.append((start, valid, None if prev is None else prev.clone(), known))
        return torch.arange(start, start + 100, dtype=torch.float32).view(1, 100, 1) + 1000 * len(seen)

    out = autoregressive_windows(sample_window, 237, 100, 10)
    assert out.shape == (1, 237, 1)
    assert [(s, v) for s, v, _, _ in seen] == [(0, 100), (100, 100), (200, 37)]
    assert seen[0][2] is None and all(k is None for *_, k in seen)
    torch.testing.assert_close(seen[1][2], out[:, 90:100])  # last 10 frames of window 1
    torch.testing.assert_close(seen[2][2], out[:, 190:200])
    assert window_boundaries(237, 100) == [100, 200]


def test_overlapping_windows_hold_or_crossfade_the_shared_frames():
    seen = []

    def sample_window(start, valid, prev, known):
        seen.append((start, valid, prev, known))
        return torch.full((1, 100, 1), float(len(seen)))

    held = autoregressive_windows(sample_window, 237, 100, 10, overlap=20)
    starts = [s for s, *_ in seen]
    assert starts == [0, 80, 160] == [0] + window_boundaries(237, 100, 20)
    assert held.shape == (1, 237, 1) and seen[1][3].shape == (1, 20, 1)
    torch.testing.assert_close(seen[1][2], held[:, 70:80])  # prev: the frames before the overlap
    seen.clear()
    faded = autoregressive_windows(sample_window, 237, 100, 10, overlap=20, crossfade=True)
    assert all(k is None for *_, k in seen)
    assert faded[0, 79, 0] == 1 and faded[0, 100, 0] == 2 and 1 < faded[0, 90, 0] < 2
    assert (faded[0, 80:101, 0].diff() > 0).all()  # a monotone ramp from window 1 to window 2
    with pytest.raises(ValueError):
        autoregressive_windows(sample_window, 237, 100, 10, overlap=100)


def test_overlapped_windows_batch_every_window_and_crossfade():
    calls = []

    def sample_windows(starts, window):
        calls.append(list(starts))
        return torch.stack([torch.full((2, window, 3), float(i)) for i in range(len(starts))])

    out = overlapped_windows(sample_windows, 250, 100, 20)
    assert calls == [[0, 80, 160]] and out.shape == (2, 250, 3)  # one batched call
    assert out[0, 79, 0] == 0 and out[0, 100, 0] == 1 and out[0, 249, 0] == 2
    assert (out[0, 80:100, 0].diff() > 0).all()


def test_fused_windows_agree_on_overlaps_and_keep_the_rest():
    windows = torch.randn(3, 2, 100, 4, generator=torch.Generator().manual_seed(0))
    starts = [0, 80, 160]
    fused = fuse_windows(windows, starts, 20)
    assert fused.shape == windows.shape
    torch.testing.assert_close(fused[0, :, 80:], fused[1, :, :20])  # one sequence where they overlap
    torch.testing.assert_close(fused[1, :, 80:], fused[2, :, :20])
    torch.testing.assert_close(fused[1, :, 20:80], windows[1, :, 20:80])  # frames only one window has
    torch.testing.assert_close(fused[0, :, :80], windows[0, :, :80])
    mid = fused[0, :, 90]  # frame 11 of the 20-frame linear cross-fade: 11/21 of the later window
    torch.testing.assert_close(mid, windows[0, :, 90] * 10 / 21 + windows[1, :, 10] * 11 / 21)
    # fused windows are a fixed point, and laying them end to end gives overlapped_windows' result
    torch.testing.assert_close(fuse_windows(fused, starts, 20), fused)
    torch.testing.assert_close(overlapped_windows(lambda s, w: fused, 260, 100, 20),
                               overlapped_windows(lambda s, w: windows, 260, 100, 20))


def test_receding_horizon_keeps_action_steps_and_passes_observations():
    seen = []

    def sample_horizon(t, obs):
        seen.append((t, None if obs is None else obs[0, :, 0].tolist()))
        return (t - 1 + torch.arange(4, dtype=torch.float32)).view(1, 4, 1)  # frame t + k at k + 1

    out = receding_horizon(sample_horizon, 7, horizon=4, n_obs_steps=2, n_action_steps=2)
    assert out[0, :, 0].tolist() == list(range(7))
    assert seen == [(0, None), (2, [0.0, 1.0]), (4, [2.0, 3.0]), (6, [4.0, 5.0])]
    with pytest.raises(ValueError):
        receding_horizon(sample_horizon, 7, horizon=2, n_obs_steps=2, n_action_steps=2)


@pytest.mark.parametrize("name", ["ddpm", "ddim", "dpmsolver"])
def test_inpainting_holds_known_frames_exactly_and_follows_the_model_elsewhere(name):
    """Known frames are held exactly; the others come out as the (audio-following) model says."""
    sched = make_scheduler(name, 500, "sample")
    audio = torch.linspace(-1, 1, 12).view(1, 12, 1).repeat(2, 1, 2)  # the "audio" the model follows
    known = torch.randn(2, 12, 2, generator=torch.Generator().manual_seed(1))
    mask = torch.zeros(1, 12, 1, dtype=torch.bool)
    mask[:, :4] = True
    seen_known = []

    def model(x_t, n):  # predicts x0 = audio, and records what it saw on the known frames
        seen_known.append(x_t[:, :4].clone())
        return audio

    out = sample_loop(sched, model, (2, 12, 2), 10 if name != "ddpm" else 50, torch.Generator().manual_seed(0),
                      condition_data=known, condition_mask=mask)
    assert torch.equal(out[:, :4], known[:, :4])
    torch.testing.assert_close(out[:, 4:], audio[:, 4:], atol=2e-3, rtol=0)
    # at the last step the known frames the model sees are nearly clean (noised to the step's level)
    assert (seen_known[-1] - known[:, :4]).abs().max() < (seen_known[0] - known[:, :4]).abs().max()


def test_partial_edit_strength_and_per_sample_generators():
    sched = make_scheduler("ddim", 500, "sample")
    data = torch.ones(3, 8, 1)

    def trusting(x_t, n):  # takes x_t at face value: x0 = x_t / sqrt(abar_n)
        return x_t / sched.alphas_cumprod[n].view(-1, 1, 1).sqrt()

    light = sample_loop(sched, trusting, (3, 8, 1), 20, torch.Generator().manual_seed(0),
                        condition_data=data, strength=0.1)
    full = sample_loop(sched, trusting, (3, 8, 1), 20, torch.Generator().manual_seed(0),
                       condition_data=data, strength=1.0)
    assert (light - data).abs().mean() < 0.1 < (full - data).abs().mean()  # a light edit stays near
    with pytest.raises(FacemotionError):
        sample_loop(sched, trusting, (3, 8, 1), 20, strength=0.5)  # a partial edit needs data
    # per-sample generators: sample i does not depend on the batch it is drawn in
    sched = make_scheduler("ddpm", 500, "sample")
    noisy = lambda x_t, n: x_t * 0.5  # noqa: E731  (ancestral noise reaches the result)
    batch = sample_loop(sched, noisy, (3, 5, 2), 20, [torch.Generator().manual_seed(s) for s in (7, 8, 9)])
    alone = sample_loop(sched, noisy, (1, 5, 2), 20, [torch.Generator().manual_seed(8)])
    torch.testing.assert_close(batch[1:2], alone)


def test_seam_ratio_by_hand():
    x = torch.zeros(1, 10, 1)
    x[0, :, 0] = torch.tensor([0, 1, 2, 3, 4, 8, 9, 10, 11, 12], dtype=torch.float32)
    # changes 1 everywhere except 4 into frame 5: boundary 5, width 1 -> 4 / 1
    assert seam_ratio(x.numpy(), [5], width=1) == pytest.approx(4.0)
    # width 2: frames 5, 6 -> (4 + 1) / 2 over 1
    assert seam_ratio(x.numpy(), [5], width=2) == pytest.approx(2.5)
    assert seam_ratio(torch.arange(10.0).view(1, 10, 1).numpy(), [5]) == pytest.approx(1.0)
    assert seam_ratio(x.numpy(), [20]) != seam_ratio(x.numpy(), [20])  # NaN: no boundary inside


def test_window_slice_pads_outside_the_clip():
    f = torch.arange(1, 26, dtype=torch.float32).view(1, 25, 1)
    s = window_slice(f, 0, 20, 4)
    assert s.shape == (1, 24, 1) and s[0, :4].abs().sum() == 0 and s[0, 4, 0] == 1
    s = window_slice(f, 20, 20, 4)
    assert s[0, 0, 0] == 17 and s[0, 8, 0] == 25 and s[0, 9:].abs().sum() == 0
