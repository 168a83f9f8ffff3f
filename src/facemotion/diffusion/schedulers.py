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


def randn(shape: tuple[int, ...], generator=None, device: torch.device | str = "cpu",
          dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Standard normal noise ``shape`` drawn with one generator, or with one generator per sample.

    Args:
        shape: ``(B, ...)``.
        generator: None, a ``torch.Generator``, or a sequence of B generators: sample ``i`` is then
            drawn with ``generator[i]`` alone, so it does not depend on the batch it is in.
    Raises:
        FacemotionError: a sequence of generators whose length is not B.
    """
    if isinstance(generator, (list, tuple)):
        if len(generator) != shape[0]:
            raise FacemotionError(f"{len(generator)} generators for a batch of {shape[0]} samples")
        return torch.cat([torch.randn((1, *shape[1:]), generator=g, device=device, dtype=dtype) for g in generator])
    return torch.randn(shape, generator=generator, device=device, dtype=dtype)


def noised(scheduler, x0: torch.Tensor, noise: torch.Tensor, timestep) -> torch.Tensor:
    """x0 noised to diffusion step ``timestep`` (one int for the whole batch):
    ``sqrt(abar_n) x0 + sqrt(1 - abar_n) noise`` with abar from the scheduler (every scheduler
    here is variance preserving), independent of the scheduler's step state."""
    abar = scheduler.alphas_cumprod.to(x0.device)[int(timestep)].to(x0.dtype)
    return abar.sqrt() * x0 + (1 - abar).sqrt() * noise


def sample_loop(scheduler, denoise: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], shape: tuple[int, ...],
                steps: int, generator=None, device: torch.device | str = "cpu",
                dtype: torch.dtype = torch.float32, condition_data: torch.Tensor | None = None,
                condition_mask: torch.Tensor | None = None, strength: float = 1.0) -> torch.Tensor:
    """Run the reverse process, optionally holding known values (inpainting).

    With ``condition_data`` and ``condition_mask`` (as ``real-stanford/diffusion_policy`` and
    SAiD name them), the known entries are set, before every network call, to the known data
    noised to the current step (with the run's initial noise, so a deterministic sampler stays
    deterministic), and to the known data itself in the result: known frames are held exactly
    and the network fills in the rest consistently with them (keyframes, reference identity or
    pose, the frames a continuation starts from). ``strength < 1`` is a partial edit (SDEdit,
    Meng et al. 2022): sampling starts from ``condition_data`` noised to the step a fraction
    ``strength`` of the way up the schedule, so the unmasked entries stay close to it.

    Args:
        scheduler: from ``make_scheduler`` (its state is reset by ``set_timesteps``); any
            variance-preserving ``diffusers`` scheduler.
        denoise: ``denoise(x_n [B, ...], n [B] long) -> model output [B, ...]`` (x0 or eps,
            as the scheduler's ``prediction_type``); guidance goes inside it.
        shape: ``(B, ...)`` of the sample.
        steps: number of sampler steps (at most N).
        generator: torch RNG for the initial noise and the ancestral noise (DDPM): one
            generator, or one per sample (see :func:`randn`).
        condition_data: ``shape``, the known values (anything where the mask is False).
        condition_mask: bool, broadcastable to ``shape``; True where ``condition_data`` is known.
        strength: in (0, 1]; 1 samples from pure noise.
    Returns:
        x_0 ``shape``.
    Raises:
        FacemotionError: ``strength`` outside (0, 1], or ``strength < 1`` or a mask without
            ``condition_data``.
    """
    if not 0.0 < strength <= 1.0:
        raise FacemotionError(f"strength must be in (0, 1], got {strength}")
    if (condition_mask is not None or strength < 1.0) and condition_data is None:
        raise FacemotionError("inpainting and partial edits need condition_data")
    generator = list(generator) if isinstance(generator, tuple) else generator  # diffusers takes lists
    scheduler.set_timesteps(steps, device=device)
    timesteps = scheduler.timesteps
    noise = randn(shape, generator, device, dtype)
    mask = None
    if condition_data is not None:
        condition_data = condition_data.to(device=device, dtype=dtype).expand(shape)
        if condition_mask is not None:
            mask = condition_mask.to(device=device, dtype=torch.bool).expand(shape)
    begin = min(int(round(len(timesteps) * (1.0 - strength))), len(timesteps) - 1)
    if begin:
        timesteps = timesteps[begin:]
        x = noised(scheduler, condition_data, noise, timesteps[0])
        if hasattr(scheduler, "set_begin_index"):
            scheduler.set_begin_index(begin)
    else:
        x = noise * scheduler.init_noise_sigma
    for t in timesteps:
        if mask is not None:
            x = torch.where(mask, noised(scheduler, condition_data, noise, t), x)
        n = torch.full((shape[0],), int(t), device=device, dtype=torch.long)
        out = denoise(scheduler.scale_model_input(x, t), n)
        x = scheduler.step(out, t, x, generator=generator).prev_sample
    return x if mask is None else torch.where(mask, condition_data, x)
