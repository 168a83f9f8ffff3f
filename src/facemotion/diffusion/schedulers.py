"""Noise schedules and samplers: a thin layer over ``diffusers`` schedulers.

No DDPM/DDIM/DPM-Solver arithmetic lives here; ``diffusers`` does it. This module only
builds schedulers with the settings the recipes share (cosine schedule, N training steps,
x0 or eps prediction, no clipping of the normalised motion), noises training samples and
runs the reverse loop.
"""

from __future__ import annotations

from typing import Callable

import torch
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler

from facemotion.errors import FacemotionError

SCHEDULERS = ("ddpm", "ddim", "dpmsolver")


def make_scheduler(name: str = "ddpm", num_train_timesteps: int = 500, prediction_type: str = "sample",
                   beta_schedule: str = "squaredcos_cap_v2"):
    """Build a ``diffusers`` scheduler.

    Args:
        name: ``"ddpm"`` (ancestral sampling, also the training noiser), ``"ddim"``
            (deterministic, eta = 0) or ``"dpmsolver"`` (DPM-Solver++ multistep, 2nd order).
        num_train_timesteps: N, the number of diffusion steps of training (DiffPoseTalk: 500).
        prediction_type: ``"sample"`` (the network predicts x0, DiffPoseTalk §3.2) or
            ``"epsilon"``.
        beta_schedule: ``"squaredcos_cap_v2"`` is the cosine schedule (Nichol & Dhariwal 2021).

    Raises:
        FacemotionError: unknown ``name`` or ``prediction_type``.
    """
    if prediction_type not in ("sample", "epsilon"):
        raise FacemotionError(f"prediction_type {prediction_type!r}: choose 'sample' or 'epsilon'")
    common = dict(num_train_timesteps=num_train_timesteps, beta_schedule=beta_schedule,
                  prediction_type=prediction_type)
    if name == "ddpm":
        return DDPMScheduler(**common, clip_sample=False, variance_type="fixed_small")
    if name == "ddim":
        return DDIMScheduler(**common, clip_sample=False, set_alpha_to_one=True)
    if name == "dpmsolver":
        return DPMSolverMultistepScheduler(**common, algorithm_type="dpmsolver++", solver_order=2,
                                           lower_order_final=True)
    raise FacemotionError(f"scheduler {name!r}: unknown (choose from {', '.join(SCHEDULERS)})")


def add_noise(scheduler, x0: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """Forward process q(x_n | x_0): ``sqrt(abar_n) x0 + sqrt(1 - abar_n) noise``.

    Args:
        x0: clean samples ``[B, ...]``; noise: ``[B, ...]``; timesteps: n ``[B]`` int in [0, N).
    Returns:
        x_n ``[B, ...]``.
    """
    return scheduler.add_noise(x0, noise, timesteps)


def predicted_x0(scheduler, model_output: torch.Tensor, x_t: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """The clean sample implied by a network output (identity for x0 prediction).

    For eps prediction: ``x0 = (x_t - sqrt(1 - abar_n) eps) / sqrt(abar_n)``, with abar
    taken from the scheduler. Shapes ``[B, ...]``, timesteps ``[B]``.
    """
    if scheduler.config.prediction_type == "sample":
        return model_output
    abar = scheduler.alphas_cumprod.to(x_t.device)[timesteps].to(x_t.dtype)
    abar = abar.view(-1, *([1] * (x_t.dim() - 1)))
    return (x_t - (1 - abar).sqrt() * model_output) / abar.sqrt()


def sample_loop(scheduler, denoise: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], shape: tuple[int, ...],
                steps: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu",
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Run the reverse process from pure noise.

    Args:
        scheduler: from ``make_scheduler`` (its state is reset by ``set_timesteps``).
        denoise: ``denoise(x_n [B, ...], n [B] long) -> model output [B, ...]`` (x0 or eps,
            as the scheduler's ``prediction_type``); guidance goes inside it.
        shape: ``(B, ...)`` of the sample.
        steps: number of sampler steps (at most N).
        generator: torch RNG for the initial noise and the ancestral noise (DDPM).
    Returns:
        x_0 ``shape``.
    """
    scheduler.set_timesteps(steps, device=device)
    x = torch.randn(shape, generator=generator, device=device, dtype=dtype) * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        n = torch.full((shape[0],), int(t), device=device, dtype=torch.long)
        out = denoise(scheduler.scale_model_input(x, t), n)
        x = scheduler.step(out, t, x, generator=generator).prev_sample
    return x
