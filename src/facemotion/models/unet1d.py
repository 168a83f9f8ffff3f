"""The conditional 1D temporal U-Net of diffusion policy (Chi et al. 2023, the decision backbone of
3DFacePolicy §3.2.3) and 3DFacePolicy's light observation encoders (§3.2.2).

The U-Net convolves over the action horizon: ``x [B, H, D]`` (H actions of D channels) is a
``[B, D, H]`` signal, downsampled by 2 per level; every residual block is conditioned by FiLM
(a per-channel scale and bias) on the diffusion-step embedding concatenated with a global
observation vector. Built from ``diffusers``' 1D pieces (``Conv1dBlock``: conv + GroupNorm +
Mish, ``Downsample1D``, ``Upsample1D``, ``Timesteps``); only the FiLM block is written here.

The observation vector is 3DFacePolicy's (§3.2.2, §4.2): the last ``n_obs_steps`` face states
through :class:`StateEncoder` (linear + conv + max-pool → 512) and the audio features of the
observation span (plus a bounded lookahead) through :class:`AudioObsEncoder` (→ 512),
concatenated to 1024.
"""

from __future__ import annotations

import torch
from diffusers.models.embeddings import Timesteps
from diffusers.models.resnet import Conv1dBlock, Downsample1D, Upsample1D
from torch import nn


class FiLMResidualBlock1D(nn.Module):
    """Diffusion policy's ``ConditionalResidualBlock1D``: two conv blocks, FiLM between them.

    ``out = conv2(scale(c) · conv1(x) + bias(c)) + residual(x)``, with ``scale, bias =
    Linear(Mish(c))`` (``cond_predict_scale``).

    Args:
        in_channels, out_channels: channels; cond_dim: width of the condition ``c``;
        kernel_size: temporal kernel (odd); n_groups: GroupNorm groups (divides ``out_channels``).
    """

    def __init__(self, in_channels: int, out_channels: int, cond_dim: int, kernel_size: int = 3, n_groups: int = 8):
        super().__init__()
        self.conv1 = Conv1dBlock(in_channels, out_channels, kernel_size, n_groups)
        self.conv2 = Conv1dBlock(out_channels, out_channels, kernel_size, n_groups)
        self.film = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * out_channels))
        self.residual = nn.Conv1d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """``x [B, C_in, H]``, ``cond [B, cond_dim]`` → ``[B, C_out, H]``."""
        scale, bias = self.film(cond)[..., None].chunk(2, dim=1)
        return self.conv2(scale * self.conv1(x) + bias) + self.residual(x)


class StateEncoder(nn.Module):
    """3DFacePolicy's light visual encoder (§3.2.2): linear per frame, a temporal convolution,
    max-pool over the observed frames → ``out_dim`` (512 in the paper).

    Input: face states ``[B, N_obs, D]`` (normalised face-space vectors: per-vertex displacements
    from the neutral face, or their PCA coefficients, and the head pose). Output ``[B, out_dim]``.
    """

    def __init__(self, state_dim: int, out_dim: int = 512, hidden: int = 256):
        super().__init__()
        self.linear = nn.Linear(state_dim, hidden)
        self.conv = nn.Conv1d(hidden, out_dim, 3, padding=1)
        self.act = nn.Mish()

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        """``[B, N_obs, D]`` → ``[B, out_dim]``."""
        h = self.act(self.linear(state)).transpose(1, 2)
        return self.conv(h).amax(dim=-1)


class AudioObsEncoder(nn.Module):
    """Audio observation encoder → ``out_dim`` (512 in the paper): linear per frame, a temporal
    convolution, then (unlike the state encoder) the frames are flattened in order into one
    linear layer, so the encoder knows which frame of the span (past, current, lookahead) sounds.

    Input: audio features ``[B, L, C]`` (L = ``frames``). Output ``[B, out_dim]``.
    """

    def __init__(self, audio_dim: int, frames: int, out_dim: int = 512, hidden: int = 128):
        super().__init__()
        self.frames = int(frames)
        self.linear = nn.Linear(audio_dim, hidden)
        self.conv = nn.Conv1d(hidden, hidden, 3, padding=1)
        self.out = nn.Linear(hidden * self.frames, out_dim)
        self.act = nn.Mish()

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """``[B, L, C]`` → ``[B, out_dim]``.

        Raises:
            ValueError: L is not ``frames``.
        """
        if audio.shape[1] != self.frames:
            raise ValueError(f"AudioObsEncoder: expected {self.frames} audio frames, got {audio.shape[1]}")
        h = self.act(self.linear(audio)).transpose(1, 2)
        h = self.act(self.conv(h))
        return self.out(h.flatten(1))


class ConditionalUnet1D(nn.Module):
    """Diffusion policy's conditional 1D temporal U-Net with FiLM, with 3DFacePolicy's observation
    encoders in front (registered in ``facemotion.models.DENOISERS`` as ``"unet1d"``).

    ``forward(x, t, cond, drop)`` predicts, for noised actions ``x = a_k [B, H, D]`` at diffusion
    step ``k = t [B]``, the noise ε (or a_0, as the recipe trains it; eq. 3–4 of 3DFacePolicy) from
    the observation ``o = [o_x; o_s]`` (1024 with the paper's 512 + 512).

    Levels as diffusion policy's (two FiLM residual blocks per level, a strided convolution down,
    a transposed convolution up, two middle blocks), except that every level's skip connection is
    used: diffusion policy's code never reads the finest level's skip, which leaves a horizon as
    short as 3DFacePolicy's (H = 4, two levels) without any full-resolution path to the output.

    Args:
        action_dim: D, channels of an action (and of a face state).
        audio_dim: C, channels of the audio features.
        audio_frames: frames of audio per observation (the observation span plus the lookahead).
        obs_dim: width of each encoder's output (paper 512; the global condition is twice that).
        down_dims: channels per U-Net level (H is halved between levels, so
            ``2 ** (len(down_dims) - 1)`` must divide H).
        step_embed_dim: width of the diffusion-step embedding (sinusoidal, then an MLP).
        kernel_size, n_groups: convolution kernel and GroupNorm groups.
        state_hidden, audio_hidden: hidden widths of the two encoders.
    """

    def __init__(self, action_dim: int, audio_dim: int, audio_frames: int, obs_dim: int = 512,
                 down_dims: tuple[int, ...] | list[int] = (256, 512), step_embed_dim: int = 128,
                 kernel_size: int = 3, n_groups: int = 8, state_hidden: int = 256, audio_hidden: int = 128):
        super().__init__()
        self.state_encoder = StateEncoder(action_dim, obs_dim, state_hidden)
        self.audio_encoder = AudioObsEncoder(audio_dim, audio_frames, obs_dim, audio_hidden)
        self.global_dim = 2 * obs_dim
        self.step_embed = nn.Sequential(Timesteps(step_embed_dim, flip_sin_to_cos=False, downscale_freq_shift=1),
                                        nn.Linear(step_embed_dim, 4 * step_embed_dim), nn.Mish(),
                                        nn.Linear(4 * step_embed_dim, step_embed_dim))
        cond_dim = step_embed_dim + self.global_dim
        dims = [action_dim, *down_dims]
        self.levels = len(down_dims)
        self.down = nn.ModuleList()
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            last = i == self.levels - 1
            self.down.append(nn.ModuleList([
                FiLMResidualBlock1D(a, b, cond_dim, kernel_size, n_groups),
                FiLMResidualBlock1D(b, b, cond_dim, kernel_size, n_groups),
                nn.Identity() if last else Downsample1D(b, use_conv=True)]))
        mid = dims[-1]
        self.mid = nn.ModuleList([FiLMResidualBlock1D(mid, mid, cond_dim, kernel_size, n_groups) for _ in range(2)])
        self.up = nn.ModuleList()
        for a, b in reversed(list(zip(dims[1:-1], dims[2:]))):  # level i (a channels) from level i + 1 (b)
            self.up.append(nn.ModuleList([
                Upsample1D(b, use_conv_transpose=True),
                FiLMResidualBlock1D(a + b, a, cond_dim, kernel_size, n_groups),
                FiLMResidualBlock1D(a, a, cond_dim, kernel_size, n_groups)]))
        self.final = nn.Sequential(Conv1dBlock(down_dims[0], down_dims[0], kernel_size, n_groups),
                                   nn.Conv1d(down_dims[0], action_dim, 1))

    def encode_obs(self, cond: dict[str, torch.Tensor]) -> torch.Tensor:
        """The global condition o ``[B, 2 · obs_dim]`` (§3.2.2): ``cond["state"] [B, N_obs, D]``
        through the state encoder, ``cond["audio"] [B, L, C]`` through the audio encoder,
        concatenated. ``cond["global"]``, when present, is returned as is (computed once per
        sampling, not once per denoising step)."""
        if "global" in cond:
            return cond["global"]
        return torch.cat([self.state_encoder(cond["state"]), self.audio_encoder(cond["audio"])], dim=-1)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: dict[str, torch.Tensor],
                drop: dict | None = None) -> torch.Tensor:
        """ε_θ(a_k, k, x, s) (3DFacePolicy eq. 3–4).

        Args:
            x: noised actions ``[B, H, D]``; t: diffusion steps ``[B]`` (or a scalar).
            cond: ``state [B, N_obs, D]`` and ``audio [B, L, C]``, or ``global [B, 2 · obs_dim]``.
            drop: accepted for the common denoiser call; this model has no dropped conditions
                (3DFacePolicy uses no classifier-free guidance), so it must be empty or all False.
        Returns:
            ``[B, H, D]``.
        Raises:
            ValueError: H not divisible by ``2 ** (levels - 1)``, or a condition to drop.
        """
        if drop and any(bool(torch.as_tensor(v).any()) for v in drop.values()):
            raise ValueError("ConditionalUnet1D: no condition can be dropped (no guidance in 3DFacePolicy)")
        h_len = x.shape[1]
        if h_len % (2 ** (self.levels - 1)):
            raise ValueError(f"ConditionalUnet1D: horizon {h_len} not divisible by {2 ** (self.levels - 1)}")
        t = torch.as_tensor(t, device=x.device).reshape(-1).expand(x.shape[0])
        c = torch.cat([self.step_embed(t).to(x.dtype), self.encode_obs(cond).to(x.dtype)], dim=-1)
        h = x.transpose(1, 2)
        skips = []
        for block1, block2, down in self.down:
            h = block2(block1(h, c), c)
            skips.append(h)
            h = down(h)
        skips.pop()  # the coarsest level feeds the middle blocks directly
        for block in self.mid:
            h = block(h, c)
        for up, block1, block2 in self.up:
            h = torch.cat([up(h), skips.pop()], dim=1)
            h = block2(block1(h, c), c)
        return self.final(h).transpose(1, 2)


__all__ = ["ConditionalUnet1D", "FiLMResidualBlock1D", "StateEncoder", "AudioObsEncoder"]
