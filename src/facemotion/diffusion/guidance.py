"""Classifier-free guidance (Ho & Salimans 2022) in one function, all branches in one forward.

A *branch* is the set of condition names replaced by their null embedding ∅. With branches
``b_0 .. b_K`` (most conditions dropped first) and scales ``w_1 .. w_K``:

- incremental form (DiffPoseTalk eq. 10, InstructPix2Pix):
  ``x̂ = D_0 + Σ_k w_k (D_k − D_{k−1})``;
- joint form (``incremental=False``, e.g. composable conditions):
  ``x̂ = D_0 + Σ_k w_k (D_k − D_0)``.

DiffPoseTalk: branches ``[{"audio", "style"}, {"style"}, set()]``, scales ``[w_a, w_s]``.
A scale may be a tensor broadcastable to the output (e.g. ``[1, 1, D]`` or ``[B, T, 1]``):
masked guidance, a different strength per region, frame or sample.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import torch

Denoiser = Callable[[torch.Tensor, torch.Tensor, Mapping[str, torch.Tensor], Mapping[str, torch.Tensor]], torch.Tensor]


def branch_coefficients(num_branches: int, scales: Sequence[float | torch.Tensor],
                        incremental: bool = True) -> list[float | torch.Tensor]:
    """Weights ``c_k`` with ``x̂ = Σ_k c_k D_k`` (they sum to 1) for the forms above.

    Raises:
        ValueError: ``len(scales) != num_branches - 1``.
    """
    if len(scales) != num_branches - 1:
        raise ValueError(f"{num_branches} branches need {num_branches - 1} scales, got {len(scales)}")
    if incremental:
        ext = [1.0, *scales, 0.0]
        return [ext[k] - ext[k + 1] for k in range(num_branches)]
    return [1.0 - sum(scales), *scales]


def guided_output(denoise: Denoiser, x: torch.Tensor, t: torch.Tensor, cond: Mapping[str, torch.Tensor],
                  branches: Sequence[set[str] | frozenset[str]], scales: Sequence[float | torch.Tensor],
                  incremental: bool = True) -> torch.Tensor:
    """Guided network output from one batched forward over the needed branches.

    Branches whose coefficient is exactly 0 (scalar scales, e.g. ``w = 1`` or ``w = 0``) are
    not evaluated, so ``w_a = w_s = 1`` costs one plain conditional forward.

    Args:
        denoise: ``denoise(x [K·B, ...], t [K·B], cond, drop) -> [K·B, ...]`` where every
            tensor in ``cond`` is repeated K times along dim 0 and ``drop`` maps each name
            that any branch drops to a bool mask ``[K·B]`` (True = use ∅ for that sample).
        x: noisy sample ``[B, ...]``; t: diffusion steps ``[B]``.
        cond: tensors the denoiser needs (droppable conditions and any others), each ``[B, ...]``.
        branches: per branch, the names dropped to ∅.
        scales: guidance scales (floats or broadcastable tensors), ``len(branches) - 1``.
        incremental: incremental (eq. 10) or joint form.
    Returns:
        ``[B, ...]``: the guided output (x0 or eps, whatever ``denoise`` predicts).
    """
    coeffs = branch_coefficients(len(branches), scales, incremental)
    used = [k for k, c in enumerate(coeffs) if not (isinstance(c, float) and c == 0.0)]
    k, b = len(used), x.shape[0]
    drop = {name: torch.tensor([name in branches[j] for j in used], device=x.device).repeat_interleave(b)
            for name in sorted(set().union(*branches))}
    out = denoise(x.repeat(k, *([1] * (x.dim() - 1))), t.repeat(k),
                  {name: v.repeat(k, *([1] * (v.dim() - 1))) for name, v in cond.items()}, drop)
    out = out.view(k, b, *out.shape[1:])
    return sum(coeffs[j] * out[i] for i, j in enumerate(used))
