"""A keyed, fitted normaliser that travels with the checkpoint, and streaming statistics.

``Normalizer`` holds one pair of buffers per key (``<key>_mean``, ``<key>_std``, each ``[C]``),
e.g. ``motion`` (face-space motion, D channels) and ``audio`` (audio features, C channels),
so the statistics are saved and loaded with the weights (as ``real-stanford/diffusion_policy``
keeps its ``LinearNormalizer`` inside the policy).

``RunningStats`` computes per-channel mean and standard deviation over a stream of chunks
(one clip at a time) in float64 with Chan et al.'s parallel update of (count, mean, M2): memory
is ``O(C)`` whatever the corpus size, and the result equals ``np.mean`` / ``np.std`` (ddof 0) of
the concatenated chunks up to float64 rounding.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np
import torch
from torch import nn


class RunningStats:
    """Streaming per-channel mean and standard deviation (float64, Chan et al. 1979).

    Args:
        dim: number of channels C.
    Attributes:
        count: rows seen so far (int); ``mean`` ``[C]`` float64; ``m2`` ``[C]`` float64 (sum of
        squared deviations from the mean).
    """

    def __init__(self, dim: int):
        self.dim = int(dim)
        self.count = 0
        self.mean = np.zeros(self.dim, np.float64)
        self.m2 = np.zeros(self.dim, np.float64)

    def update(self, x) -> "RunningStats":
        """Add the rows of one chunk.

        Args:
            x: ``[N, C]`` (or ``[..., C]``, flattened to rows) numpy array or tensor; N may be 0.
        Returns:
            self.
        Raises:
            ValueError: the last dimension is not C.
        """
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        x = np.asarray(x)
        if x.shape[-1] != self.dim:
            raise ValueError(f"RunningStats: expected [..., {self.dim}] rows, got shape {x.shape}")
        x = x.reshape(-1, self.dim).astype(np.float64, copy=False)
        n = len(x)
        if n == 0:
            return self
        mean = x.mean(0)
        m2 = ((x - mean) ** 2).sum(0)
        self._merge(n, mean, m2)
        return self

    def merge(self, other: "RunningStats") -> "RunningStats":
        """Fold another accumulator's rows into this one (e.g. from another worker); returns self.

        Raises:
            ValueError: the channel counts differ.
        """
        if other.dim != self.dim:
            raise ValueError(f"RunningStats: cannot merge {other.dim} channels into {self.dim}")
        if other.count:
            self._merge(other.count, other.mean, other.m2)
        return self

    def _merge(self, n: int, mean: np.ndarray, m2: np.ndarray) -> None:
        total = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + m2 + delta**2 * (self.count * n / total)
        self.count = total

    @property
    def var(self) -> np.ndarray:
        """Population variance ``[C]`` float64 (ddof 0); zeros before any row."""
        return self.m2 / self.count if self.count else np.zeros(self.dim)

    @property
    def std(self) -> np.ndarray:
        """Population standard deviation ``[C]`` float64 (ddof 0)."""
        return np.sqrt(self.var)


class Normalizer(nn.Module):
    """Per-key, per-channel standardisation ``(x - mean) / std`` with the statistics as buffers.

    Args:
        dims: ``{key: channels}``; every key starts as the identity (mean 0, std 1). Keys are
            Python identifiers (they name the buffers ``<key>_mean`` / ``<key>_std``).
        std_floor: stds are floored at this when fitted or set, so constant channels do not blow up.
    Raises:
        ValueError: a key is not an identifier.
    """

    def __init__(self, dims: Mapping[str, int] | None = None, std_floor: float = 1e-2):
        super().__init__()
        self.std_floor = float(std_floor)
        self._keys: list[str] = []
        for key, dim in (dims or {}).items():
            self.add(key, dim)

    @property
    def keys(self) -> tuple[str, ...]:
        """The keys, in the order they were added."""
        return tuple(self._keys)

    def add(self, key: str, dim: int) -> None:
        """Add ``key`` with ``dim`` channels as the identity (mean 0, std 1).

        Raises:
            ValueError: ``key`` is not an identifier or already present.
        """
        if not key.isidentifier() or key in self._keys:
            raise ValueError(f"Normalizer: bad or duplicate key {key!r}")
        self.register_buffer(f"{key}_mean", torch.zeros(int(dim)))
        self.register_buffer(f"{key}_std", torch.ones(int(dim)))
        self._keys.append(key)

    def _check(self, key: str) -> None:
        if key not in self._keys:
            raise KeyError(f"Normalizer: no statistics for {key!r} (keys: {', '.join(self._keys)})")

    def mean(self, key: str) -> torch.Tensor:
        """The mean buffer ``[C]`` of ``key``. Raises KeyError: unknown key."""
        self._check(key)
        return getattr(self, f"{key}_mean")

    def std(self, key: str) -> torch.Tensor:
        """The std buffer ``[C]`` of ``key`` (floored). Raises KeyError: unknown key."""
        self._check(key)
        return getattr(self, f"{key}_std")

    @torch.no_grad()
    def set(self, key: str, mean, std) -> None:
        """Store statistics of ``key``: ``mean``, ``std`` ``[C]`` (arrays or tensors); the std is
        floored at ``std_floor``.

        Raises:
            KeyError: unknown key. RuntimeError: wrong number of channels.
        """
        m, s = self.mean(key), self.std(key)
        m.copy_(torch.as_tensor(np.asarray(mean), dtype=m.dtype))
        s.copy_(torch.as_tensor(np.asarray(std), dtype=s.dtype).clamp_min(self.std_floor))

    def fit(self, stats: Mapping[str, RunningStats] | Iterable[Mapping[str, object]]) -> "Normalizer":
        """Set statistics from accumulated :class:`RunningStats` (``{key: stats}``), or stream
        chunks (an iterable of ``{key: [N, C] array}`` dicts, e.g. one per clip) through fresh
        accumulators first. Keys not given keep their statistics. Returns self.

        Raises:
            KeyError: an unknown key. ValueError: a chunk with the wrong number of channels.
        """
        if not isinstance(stats, Mapping):
            running: dict[str, RunningStats] = {}
            for chunk in stats:
                for key, x in chunk.items():
                    self._check(key)
                    running.setdefault(key, RunningStats(self.mean(key).numel())).update(x)
            stats = running
        for key, st in stats.items():
            if st.count:
                self.set(key, st.mean, st.std)
        return self

    def normalize(self, key: str, x: torch.Tensor) -> torch.Tensor:
        """``[..., C] -> [..., C]``: zero mean, unit std per channel (``(x - mean) / std``).

        Raises:
            KeyError: unknown key.
        """
        return (x - self.mean(key)) / self.std(key)

    def unnormalize(self, key: str, x: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`normalize`: ``x * std + mean`` ``[..., C]``.

        Raises:
            KeyError: unknown key.
        """
        return x * self.std(key) + self.mean(key)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}: {self.mean(k).numel()}" for k in self._keys)


__all__ = ["Normalizer", "RunningStats"]
