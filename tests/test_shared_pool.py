"""processes.shared_pool: one pool per process and key, reused across calls (long audio recognised
piece by piece starts its workers once), killed and replaced when a block fails."""

from __future__ import annotations

import multiprocessing
import os
import time

import pytest

from facemotion.processes import shared_pool


def _pid(_: int) -> int:
    return os.getpid()


def _fail(_: int) -> int:
    raise ValueError("task failed")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return "zombie" not in f.read()
    except OSError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs /proc")
def test_workers_are_reused_then_killed_and_replaced_after_an_error():
    ctx = multiprocessing.get_context("fork")
    with shared_pool("test", 2, ctx) as pool:
        first = set(pool.map(_pid, range(8)))
    with shared_pool("test", 2, ctx) as pool:
        again = set(pool.map(_pid, range(8)))
    assert first and again <= first | again and len(first | again) <= 2  # the same two workers
    with pytest.raises(ValueError):
        with shared_pool("test", 2, ctx) as pool:
            list(pool.map(_fail, range(2)))
    end = time.monotonic() + 5
    while any(_alive(pid) for pid in first) and time.monotonic() < end:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in first)
    with shared_pool("test", 2, ctx) as pool:
        assert not set(pool.map(_pid, range(4))) & first  # a new pool
