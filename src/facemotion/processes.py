"""Process lifetime: an interrupted run stops at once, and no child process outlives it.

- :func:`stop_on_signals`: SIGTERM and SIGINT raise :class:`Interrupted` in the main thread, so
  ``finally`` blocks and context managers clean up (temporary files, children) and the command
  exits with ``128 + signal`` (143, 130) after one line.
- Children die with their parent: worker pools (:func:`process_pool`) and external programs
  (:func:`popen`) ask the kernel for SIGKILL when their parent dies (Linux
  ``prctl(PR_SET_PDEATHSIG)``), and Python workers also run a watchdog thread that exits when the
  parent's pid changes, so even a parent killed with SIGKILL leaves none of them running. A pool left by an exception
  (including :class:`Interrupted`) kills its workers instead of waiting for their tasks.

Temporary files a killed child was writing are left behind, no longer growing; the next run
into that folder removes them (:func:`facemotion.export.outputs.output_folder`).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

_PR_SET_PDEATHSIG = 1
_WATCHDOG_PERIOD_S = 0.5


class Interrupted(BaseException):
    """Raised in the main thread by the handlers of :func:`stop_on_signals`.

    A BaseException (like KeyboardInterrupt) so that ``except Exception`` does not swallow it,
    but not a KeyboardInterrupt, which Lightning turns into ``sys.exit(1)``.

    Attributes:
        signum: the signal received (``signal.SIGTERM``, ``signal.SIGINT``).
        hint: what to do next (e.g. how to resume), set by whoever knows; "" if nothing.
    """

    def __init__(self, signum: int, hint: str = ""):
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)
        self.hint = hint

    @property
    def exit_status(self) -> int:
        """``128 + signum``, the shell's convention (SIGINT 130, SIGTERM 143)."""
        return 128 + self.signum


class Received:
    """What :func:`stop_on_signals` saw: ``signum`` is the first signal received, or None.

    An :class:`Interrupted` raised while the main thread is inside a C call can reach the caller
    wrapped in another exception (ctypes turns it into ``ctypes.ArgumentError``, as PyOpenGL's
    calls during a render do); ``signum`` tells such an exception apart from a real error.
    """

    def __init__(self) -> None:
        self.signum: int | None = None


@contextmanager
def stop_on_signals(signums: Sequence[int] = (signal.SIGTERM, signal.SIGINT)) -> Iterator[Received]:
    """While active, each of ``signums`` raises :class:`Interrupted` in the main thread; later
    ones are ignored while the first unwinds (a second Ctrl-C does not cut the clean-up short).

    Yields a :class:`Received` that records the signal. The previous handlers are restored on
    exit. Outside the main thread this does nothing (Python delivers signals to the main thread
    only).
    """
    received = Received()
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum, frame):
        for s in signums:
            signal.signal(s, signal.SIG_IGN)
        received.signum = int(signum)
        raise Interrupted(signum)

    previous = {s: signal.signal(s, handler) for s in signums}
    try:
        yield received
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _pdeathsig() -> Callable[[], bool] | None:
    """A function that asks the kernel to SIGKILL the calling process when its parent dies
    (Linux ``prctl(PR_SET_PDEATHSIG)``; True when granted), or None on other systems. Resolved
    before a fork, so that the child only calls it."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    return lambda: prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0


def _die_with(parent_pid: int) -> None:
    """In a Python child: be killed when ``parent_pid`` dies (the kernel's SIGKILL where it grants
    one, and in any case a watchdog thread that exits when the parent's pid changes, within
    :data:`_WATCHDOG_PERIOD_S`); exit now if the parent already died."""
    request = _pdeathsig()
    if request is not None:
        request()

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(_WATCHDOG_PERIOD_S)
        os._exit(1)

    threading.Thread(target=watch, name="facemotion-parent-watchdog", daemon=True).start()


def _init_worker(parent_pid: int, initializer: Callable | None, initargs: tuple) -> None:
    """Pool worker start-up: die with the parent, leave SIGINT (a terminal's Ctrl-C reaches the
    whole process group) and SIGTERM to the parent's handling, print facemotion's warnings in
    its own format, then run the pool's own ``initializer``."""
    from facemotion.errors import show_warnings_as_one_line

    _die_with(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # forked workers inherit the parent's handler
    show_warnings_as_one_line()
    if initializer is not None:
        initializer(*initargs)


@contextmanager
def process_pool(workers: int, mp_context=None, initializer: Callable | None = None,
                 initargs: tuple = ()) -> Iterator[ProcessPoolExecutor]:
    """A :class:`~concurrent.futures.ProcessPoolExecutor` whose workers die with this process.

    On normal exit the pool is shut down after its tasks; on any exception (an error in a task,
    :class:`Interrupted`) its workers are killed at once and pending tasks cancelled, so the
    exception propagates without waiting for running tasks (which would keep writing files).

    Args:
        workers: number of worker processes (>= 1).
        mp_context: a :mod:`multiprocessing` context (default: the platform's).
        initializer, initargs: run in each worker after it is tied to this process.
    """
    before = set(multiprocessing.active_children())
    pool = ProcessPoolExecutor(workers, mp_context=mp_context, initializer=_init_worker,
                               initargs=(os.getpid(), initializer, tuple(initargs)))
    try:
        yield pool
    except BaseException:
        for child in set(multiprocessing.active_children()) - before:  # this pool's workers
            child.kill()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


_HELPER: list[ProcessPoolExecutor] = []
_HELPER_LOCK = threading.Lock()


def helper_pool() -> ProcessPoolExecutor | None:
    """A persistent one-worker process pool for work that holds the GIL (e.g. pocketsphinx's
    phone loop) and can run beside the main process's own work, or None where it cannot help:
    a single CPU, or a process that is itself a worker (the training feature cache runs one
    worker per core already).

    The worker is forked on first use (no interpreter start-up, no re-import of the caller's
    main module, as spawning would do; its memory is shared with this process until either
    writes: ~170 MB of proportional set size beside a loaded model), tied to this process like
    :func:`process_pool`'s (it dies with it), and reused until this process exits. Its tasks
    must not use torch or other thread pools of the parent. A task in a broken pool (its worker
    was killed) raises :class:`concurrent.futures.process.BrokenProcessPool`; the next call
    makes a new pool.
    """
    if (os.cpu_count() or 1) < 2 or multiprocessing.parent_process() is not None:
        return None
    with _HELPER_LOCK:
        if _HELPER and getattr(_HELPER[0], "_broken", False):
            _HELPER.pop().shutdown(wait=False, cancel_futures=True)
        if not _HELPER:
            _HELPER.append(ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"),
                                               initializer=_init_worker, initargs=(os.getpid(), None, ())))
        return _HELPER[0]


def fork_tied() -> int:
    """:func:`os.fork`, with the child tied to this process: on Linux the kernel sends it SIGKILL
    when the forking thread dies (``prctl(PR_SET_PDEATHSIG)``), and it exits at once if this
    process died before the request took effect. For a bare fork whose child must not outlive
    its parent (e.g. a worker's helper); the child should leave by :func:`os._exit`.

    Returns:
        0 in the child, the child's pid in the parent (as :func:`os.fork`).
    Raises:
        OSError: the fork failed.
    """
    parent, request = os.getpid(), _pdeathsig()  # resolved before the fork: the child only calls it
    pid = os.fork()
    if pid == 0 and request is not None and request() and os.getppid() != parent:
        os._exit(1)
    return pid


def popen(command: Sequence[str], **kwargs) -> subprocess.Popen:
    """:class:`subprocess.Popen` of an external program (e.g. ffmpeg) that dies with this process.

    The child runs in its own process group, so a terminal's Ctrl-C reaches only this process,
    which decides how to stop it; on Linux it gets SIGKILL when this process dies (elsewhere
    only the process group is set). ``kwargs`` go to Popen.
    """
    parent, request = os.getpid(), _pdeathsig()

    def before_exec() -> None:
        os.setpgrp()
        if request is not None and request() and os.getppid() != parent:
            os._exit(1)  # the parent died before the request took effect

    return subprocess.Popen(list(command), preexec_fn=before_exec, **kwargs)


def map_in_threads(fn: Callable, jobs: list, workers: int) -> list:
    """``[fn(job) for job in jobs]`` on up to ``workers`` daemon threads, for work that releases
    the GIL (pocketsphinx, CTranslate2, numpy); ``workers <= 1`` or one job: in the calling
    thread. The first error (or an :class:`~facemotion.processes.Interrupted`
    in this thread) is raised at once; threads still decoding are left to finish on their own and
    do not delay the exit of the process (daemon threads)."""
    if workers <= 1 or len(jobs) <= 1:
        return [fn(job) for job in jobs]
    results: list = [None] * len(jobs)
    errors: list[BaseException] = []
    todo = iter(range(len(jobs)))
    lock = threading.Lock()

    def run() -> None:
        while not errors:
            with lock:
                i = next(todo, None)
            if i is None:
                return
            try:
                results[i] = fn(jobs[i])
            except BaseException as error:  # noqa: BLE001 - raised in the calling thread
                errors.append(error)

    threads = [threading.Thread(target=run, name=f"facemotion-worker-{k}", daemon=True)
               for k in range(min(workers, len(jobs)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results
