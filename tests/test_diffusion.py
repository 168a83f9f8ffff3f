"""Schedulers, classifier-free guidance and windowed sampling (facemotion.diffusion)."""

import pytest
import torch

from facemotion.diffusion.guidance import guided_output
from facemotion.diffusion.schedulers import add_noise, make_scheduler, predicted_x0, sample_loop
from facemotion.diffusion.windows import autoregressive_windows, window_slice

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

    def sample_window(start, valid, prev):
        seen.append((start, valid, None if prev is None else prev.clone()))
        return torch.arange(start, start + 100, dtype=torch.float32).view(1, 100, 1) + 1000 * len(seen)

    out = autoregressive_windows(sample_window, 237, 100, 10)
    assert out.shape == (1, 237, 1)
    assert [(s, v) for s, v, _ in seen] == [(0, 100), (100, 100), (200, 37)]
    assert seen[0][2] is None
    torch.testing.assert_close(seen[1][2], out[:, 90:100])  # last 10 frames of window 1
    torch.testing.assert_close(seen[2][2], out[:, 190:200])


def test_window_slice_pads_outside_the_clip():
    f = torch.arange(1, 26, dtype=torch.float32).view(1, 25, 1)
    s = window_slice(f, 0, 20, 4)
    assert s.shape == (1, 24, 1) and s[0, :4].abs().sum() == 0 and s[0, 4, 0] == 1
    s = window_slice(f, 20, 20, 4)
    assert s[0, 0, 0] == 17 and s[0, 8, 0] == 25 and s[0, 9:].abs().sum() == 0
