"""Real-time factor and peak memory of ``facemotion generate`` on long speech (issue 12, item 7).

    .venv/bin/python benchmarks/long_audio.py                       # 1, 10 and 60 minutes, npz
    .venv/bin/python benchmarks/long_audio.py --minutes 1,10 --formats npz,csv
    .venv/bin/python benchmarks/long_audio.py --minutes 10 --keep /tmp/long   # keep wav + outputs

For each duration a speech file is built by concatenating real recordings (the CMU ARCTIC
example ``examples/cmu_arctic_slt_a0009.wav`` and ``../shared/audio/realval/*``, found relative
to this repository; 6.6 min in all, repeated as needed) and animated by ``facemotion generate``
in a subprocess (model ``default``, seed 0). While it runs, the resident memory (RSS) of the
process and all its descendants is summed every ``--interval`` seconds (psutil when installed,
else ``/proc``). Printed per duration: audio seconds, wall seconds, real-time factor (wall s per
s of audio), CPU seconds of the process tree and CPU s per s of audio (steadier than wall time
on a machine others share), the peak RSS of the process tree and of the main process alone, the
peak PSS of the tree (shared pages split between the processes that share them), and the
5-minute load average at the end (the machine's business during the run). First, the same
command on 2 s of speech measures the **start-up** (interpreter, imports of torch, diffusers,
librosa and faster-whisper, model and Whisper loading, decoder set-up: what every run pays
once); each row's ``RTF-su`` is its wall time less that start-up per second of audio, the cost
of the generation itself.

Target (issue 12): the 60 min real-time factor within 20 % of the 1 min one, peak tree RSS
below 3 GB and independent of the length. Shared pages (forked workers, libraries) count once
per process, as ``ps`` shows them, so the tree figure is an upper bound.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "cmu_arctic_slt_a0009.wav"
REALVAL = ROOT.parent / "shared" / "audio" / "realval"
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")


def source_recordings(realval: Path = REALVAL) -> list[Path]:
    """The recordings concatenated into the long speech: the ARCTIC example, then every audio
    file of ``realval`` (sorted by name)."""
    found = sorted(p for p in realval.glob("*") if p.suffix.lower() in AUDIO_SUFFIXES) if realval.is_dir() else []
    return [EXAMPLE] + found


def build_speech(path: Path, seconds: float, sources: list[Path]) -> float:
    """Write ``seconds`` of 16 kHz mono 16-bit speech to ``path``: the ``sources`` one after
    another (each decoded by facemotion, 0.3 s of silence between them), repeated until the
    length is reached. Returns the duration written, seconds."""
    from facemotion.audio.io import SAMPLE_RATE, load_audio

    gap = np.zeros(int(0.3 * SAMPLE_RATE), np.float32)
    pieces = [np.concatenate([load_audio(p, level_warnings=False), gap]) for p in sources]
    total = int(seconds * SAMPLE_RATE)
    written = 0
    with sf.SoundFile(str(path), "w", SAMPLE_RATE, 1, subtype="PCM_16") as f:
        while written < total:
            for piece in pieces:
                piece = piece[: total - written]
                f.write(piece)
                written += len(piece)
                if written >= total:
                    break
    return written / SAMPLE_RATE


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def _rss_proc(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _descendants(pid: int) -> list[int]:
    children, out, stack = _children_map(), [], [pid]
    while stack:
        out.append(stack.pop())
        stack.extend(children.get(out[-1], []))
    return out


def tree_pss(pid: int) -> int:
    """Proportional set size of ``pid`` and all its descendants summed, bytes (``/proc/*/smaps_rollup``:
    pages shared by n processes count 1/n in each, so forked workers are not counted n times);
    0 where unreadable."""
    total = 0
    for p in _descendants(pid):
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("Pss:")) * 1024
        except (OSError, StopIteration, ValueError):
            pass
    return total


def tree_rss(pid: int) -> tuple[int, int]:
    """(RSS of ``pid`` and all its descendants summed, RSS of ``pid`` alone), bytes; (0, 0) when
    it is gone."""
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        try:
            proc = psutil.Process(pid)
            own = proc.memory_info().rss
            total = own
            for child in proc.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:
                    pass
            return total, own
        except psutil.Error:
            return 0, 0
    children = _children_map()
    own = _rss_proc(pid)
    total, stack = own, list(children.get(pid, []))
    while stack:
        child = stack.pop()
        total += _rss_proc(child)
        stack.extend(children.get(child, []))
    return total, own


def run_generate(wav: Path, out: Path, formats: str, model: str, interval: float, log) -> dict:
    """Run ``facemotion generate`` on ``wav`` into ``out`` and sample its memory.

    Returns ``{"wall_s", "cpu_s", "peak_tree_bytes", "peak_main_bytes", "peak_pss_bytes",
    "returncode"}``: wall seconds, CPU seconds (user + system) of the process and the descendants
    it waited for, peak RSS of the tree and of the process alone and peak PSS of the tree (bytes,
    PSS sampled every 5th interval), exit status.
    """
    command = [sys.executable, "-m", "facemotion.cli", "generate", str(wav), "-o", str(out), "--seed", "0",
               "--formats", formats, "--model", model, "--overwrite"]
    peaks = {"tree": 0, "main": 0, "pss": 0}
    t0 = time.perf_counter()
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    done = threading.Event()

    def sample() -> None:
        count = 0
        while not done.is_set():
            total, own = tree_rss(proc.pid)
            peaks["tree"], peaks["main"] = max(peaks["tree"], total), max(peaks["main"], own)
            if count % 5 == 0:  # smaps_rollup walks the page tables: every 5th sample
                peaks["pss"] = max(peaks["pss"], tree_pss(proc.pid))
            count += 1
            done.wait(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)  # usage includes the descendants it waited for
        proc.returncode = code = os.waitstatus_to_exitcode(status)
    finally:
        done.set()
        if proc.poll() is None:
            proc.kill()
    sampler.join()
    return {"wall_s": time.perf_counter() - t0, "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_tree_bytes": peaks["tree"], "peak_main_bytes": peaks["main"],
            "peak_pss_bytes": peaks["pss"], "returncode": code}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", default="1,10,60", help="comma-separated durations (default: 1,10,60)")
    parser.add_argument("--formats", default="npz", help="output formats of generate (default: npz)")
    parser.add_argument("--model", default="default", help="model name or checkpoint (default: default)")
    parser.add_argument("--interval", type=float, default=0.2, help="memory sampling period, s (default: 0.2)")
    parser.add_argument("--realval", type=Path, default=REALVAL, help="folder of recordings to concatenate")
    parser.add_argument("--keep", type=Path, help="keep the speech, outputs and logs in this folder")
    args = parser.parse_args(argv)

    minutes = [float(m) for m in args.minutes.split(",") if m.strip()]
    sources = source_recordings(args.realval)
    print(f"speech: {len(sources)} recordings concatenated ({EXAMPLE.name} + {args.realval}); "
          f"formats: {args.formats}; model: {args.model}", flush=True)
    header = (f"{'minutes':>8} {'audio s':>9} {'wall s':>9} {'RTF':>7} {'RTF-su':>7} {'CPU s':>9} {'CPU RTF':>8} "
              f"{'peak tree RSS MB':>17} {'peak main RSS MB':>17} {'peak tree PSS MB':>17}  load")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        short = work / "startup_2s.wav"
        build_speech(short, 2.0, sources)
        with open(work / "startup_2s.log", "w") as log:
            startup = run_generate(short, work / "out_startup", args.formats, args.model, args.interval, log)["wall_s"]
        print(f"start-up (generate on 2 s of speech): {startup:.1f} s wall", flush=True)
        for m in minutes:
            wav = work / f"long_{m:g}min.wav"
            seconds = build_speech(wav, 60.0 * m, sources)
            with open(work / f"long_{m:g}min.log", "w") as log:
                result = run_generate(wav, work / f"out_{m:g}min", args.formats, args.model, args.interval, log)
            if not args.keep:
                wav.unlink()
            status = "" if result["returncode"] == 0 else f"  (exit {result['returncode']}, see log)"
            row = (f"{m:8g} {seconds:9.1f} {result['wall_s']:9.1f} {result['wall_s'] / seconds:7.3f} "
                   f"{(result['wall_s'] - startup) / seconds:7.3f} "
                   f"{result['cpu_s']:9.1f} {result['cpu_s'] / seconds:8.3f} "
                   f"{result['peak_tree_bytes'] / 2**20:17.0f} {result['peak_main_bytes'] / 2**20:17.0f} "
                   f"{result['peak_pss_bytes'] / 2**20:17.0f}  "
                   f"{os.getloadavg()[1]:.1f}{status}")
            rows.append(row)
            print(row if len(rows) > 1 else header + "\n" + row, flush=True)
    if len(rows) > 1:
        print("\n" + header + "\n" + "\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
