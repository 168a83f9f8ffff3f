"""Long-audio strategies: how a motion of any length is generated from a model of a fixed window.

* :func:`autoregressive_windows` (DiffPoseTalk §3.2.1): window after window, each conditioned
  on the last T_p frames of the one before; with ``overlap`` > 0 each window also starts
  ``overlap`` frames early and holds those frames (already generated) fixed by inpainting, so
  the hand-over happens inside one window instead of at its edge.
* :func:`overlapped_windows` (Media2Face §4.3): every window at once, in one batch, overlapping
  by ``overlap`` frames that are cross-faded (:func:`fuse_windows` reconciles them at every step).
* :func:`receding_horizon` (3DFacePolicy, after Chi et al.'s diffusion policy): predict a
  ``horizon`` of frames from the last ``n_obs_steps`` observed ones, keep ``n_action_steps`` of
  them, move on.

Each strategy calls back into the recipe for one window's sample and only handles frames; the
last window is padded and its output trimmed, so any length T comes out exactly.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F


def window_slice(features: torch.Tensor, start: int, window: int, n_prev: int) -> torch.Tensor:
    """Frames ``start - n_prev .. start + window - 1`` of ``features [B, T, C]``, zero-padded
    where they fall outside ``[0, T)``. Returns ``[B, n_prev + window, C]``."""
    lo, hi = start - n_prev, start + window
    total = features.shape[1]
    part = features[:, max(lo, 0):min(hi, total)]
    return F.pad(part, (0, 0, max(-lo, 0), max(hi - total, 0)))


def _check_overlap(overlap: int, window: int) -> None:
    if not 0 <= overlap < window:
        raise ValueError(f"overlap must be in [0, {window}), got {overlap}")


def autoregressive_windows(sample_window: Callable[..., torch.Tensor], num_frames: int, window: int,
                           n_prev: int, overlap: int = 0, crossfade: bool = False) -> torch.Tensor:
    """Generate ``num_frames`` frames window by window (DiffPoseTalk §3.2.1).

    Args:
        sample_window: ``sample_window(start, valid, prev, known) -> [B, window, D]`` samples
            frames ``start .. start + window - 1``, of which the first ``valid`` are real (the
            rest is padding). ``prev`` ``[B, n_prev, D]`` are the ``n_prev`` frames before
            ``start`` (None for the first window); ``known`` ``[B, overlap, D]`` are the already
            generated frames ``start .. start + overlap - 1`` that the window must hold (by
            inpainting), or None (first window, or ``overlap == 0``).
        num_frames: T (frames) ≥ 1.
        window: T_w (frames); n_prev: T_p (frames), ``n_prev <= window``.
        overlap: frames each window after the first shares with the one before, ``0 <= overlap
            < window``; windows then advance by ``window - overlap`` frames.
        crossfade: instead of holding the shared frames (``known`` is then None), sample them
            afresh and cross-fade linearly from the earlier window to the later over them.
    Returns:
        ``[B, T, D]``.
    Raises:
        ValueError: ``overlap`` outside ``[0, window)``.
    """
    _check_overlap(overlap, window)
    done, last, start = [], None, 0  # frames before ``start`` are final in ``done``; ``last``: the
    while True:                      # latest window's output from ``start`` on (linear in T)
        valid = min(window, num_frames - start)
        if last is None:
            last = sample_window(0, valid, None, None)[:, :valid]
        else:
            k = len(done)
            while k > 0 and sum(c.shape[1] for c in done[k:]) < n_prev:
                k -= 1
            before = torch.cat(done[k:], dim=1)
            prev = before[:, -n_prev:] if before.shape[1] >= n_prev else None
            shared = last[:, -overlap:] if overlap else last[:, :0]
            new = sample_window(start, valid, prev, None if crossfade or not overlap else shared)[:, :valid]
            if crossfade and overlap:
                ramp = torch.linspace(0, 1, overlap + 2, dtype=new.dtype, device=new.device)[1:-1, None]
                new = torch.cat([shared * (1 - ramp) + new[:, :overlap] * ramp, new[:, overlap:]], dim=1)
            last = new
        if start + window >= num_frames:
            return torch.cat([*done, last], dim=1)
        step = window - overlap
        done.append(last[:, :step])
        last = last[:, step:]
        start += step


def window_boundaries(num_frames: int, window: int, overlap: int = 0) -> list[int]:
    """First frames of the windows after the first that :func:`autoregressive_windows` (or
    :func:`overlapped_windows`) starts for ``num_frames`` frames: where seams can appear."""
    step = window - overlap
    return list(range(step, max(num_frames - overlap, step), step)) if num_frames > window else []


def overlapped_windows(sample_windows: Callable[[list[int], int], torch.Tensor], num_frames: int,
                       window: int, overlap: int) -> torch.Tensor:
    """Generate ``num_frames`` frames as overlapping windows sampled together (Media2Face §4.3).

    Windows start every ``window - overlap`` frames; all of them are sampled in one batch and
    laid end to end, each overlap cross-faded linearly from the earlier window to the later
    (:func:`blend_windows`; a sampler that also applies :func:`fuse_windows` to its prediction at
    every step makes the windows agree on their overlaps before the end).

    Args:
        sample_windows: ``sample_windows(starts, window) -> [N, B, window, D]``, the windows
            starting at each frame of ``starts`` (features beyond T are padding).
        num_frames: T ≥ 1; window: frames per window; overlap: ``0 <= overlap < window``.
    Returns:
        ``[B, T, D]``.
    Raises:
        ValueError: ``overlap`` outside ``[0, window)``.
    """
    _check_overlap(overlap, window)
    starts = [0] + window_boundaries(num_frames, window, overlap)
    return blend_windows(sample_windows(starts, window), starts, overlap)[:, :num_frames]


def blend_windows(windows: torch.Tensor, starts: list[int], overlap: int) -> torch.Tensor:
    """Lay windows ``[N, B, W, D]`` starting at frames ``starts`` end to end, each overlap of
    ``overlap`` frames cross-faded linearly from the earlier window to the later → ``[B,
    starts[-1] + W, D]``."""
    n, b, window, d = windows.shape
    total = starts[-1] + window
    acc = windows.new_zeros(b, total, d)
    weight = windows.new_zeros(1, total, 1)
    fade = torch.linspace(0, 1, overlap + 2, dtype=windows.dtype, device=windows.device)[1:-1]
    for i, s in enumerate(starts):
        r = torch.ones(window, dtype=windows.dtype, device=windows.device)
        if overlap and i > 0:
            r[:overlap] = fade
        if overlap and i < n - 1:
            r[window - overlap:] = torch.minimum(r[window - overlap:], fade.flip(0))
        acc[:, s:s + window] += windows[i] * r[None, :, None]
        weight[:, s:s + window] += r[None, :, None]
    return acc / weight


def fuse_windows(windows: torch.Tensor, starts: list[int], overlap: int) -> torch.Tensor:
    """Windows ``[N, B, W, D]`` that agree on their overlaps: each window's frames replaced by
    :func:`blend_windows` of all of them (as MultiDiffusion, Bar-Tal et al. 2023, reconciles
    overlapping windows at every denoising step; applied to each step's x0 prediction, the
    windows of an overlapped batch end identical where they overlap)."""
    whole = blend_windows(windows, starts, overlap)
    return torch.stack([whole[:, s:s + windows.shape[2]] for s in starts])


def receding_horizon(sample_horizon: Callable[[int, torch.Tensor | None], torch.Tensor], num_frames: int,
                     horizon: int, n_obs_steps: int, n_action_steps: int) -> torch.Tensor:
    """Generate ``num_frames`` frames by receding-horizon control (diffusion policy; 3DFacePolicy
    uses ``horizon`` 4, ``n_obs_steps`` 2, ``n_action_steps`` 2).

    At frame ``t`` the policy sees the last ``n_obs_steps`` frames (``obs``: frames
    ``t - n_obs_steps .. t - 1``, None at the start), predicts ``horizon`` frames from
    ``t - n_obs_steps + 1`` on (as diffusion policy aligns observation and action), and the
    ``n_action_steps`` of them from frame ``t`` on are kept.

    Args:
        sample_horizon: ``sample_horizon(t, obs) -> [B, horizon, D]``; the prediction's frame
            ``n_obs_steps - 1 + k`` is frame ``t + k``.
        num_frames: T ≥ 1; horizon, n_obs_steps, n_action_steps: frames, with
            ``n_obs_steps - 1 + n_action_steps <= horizon``.
    Returns:
        ``[B, T, D]``.
    Raises:
        ValueError: the three sizes do not fit together.
    """
    first = n_obs_steps - 1
    if n_obs_steps < 1 or n_action_steps < 1 or first + n_action_steps > horizon:
        raise ValueError(f"horizon {horizon} cannot hold n_obs_steps {n_obs_steps} - 1 + "
                         f"n_action_steps {n_action_steps}")
    out = None
    for t in range(0, num_frames, n_action_steps):
        obs = None if out is None or out.shape[1] < n_obs_steps else out[:, -n_obs_steps:]
        act = sample_horizon(t, obs)[:, first:first + n_action_steps]
        out = act if out is None else torch.cat([out, act], dim=1)
    return out[:, :num_frames]
