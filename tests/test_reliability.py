"""Reliability of the `facemotion` command, run as a subprocess: interrupts exit 130/143 with one
line, no child outlives a killed run, bad outputs and datasets are refused in one line before the
work, no silent overwrite, one run per folder, warnings in one line, synth --hours exact."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from facemotion.animation import Animation
from facemotion.export.outputs import LOCK_NAME, output_folder
from recipe_helpers import TINY_CONFIG, make_dataset

TESTS = Path(__file__).resolve().parent
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}


def facemotion(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "facemotion.cli", *map(str, args)], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def run(*args: str, limit_s: float = 30.0) -> tuple[int, str, float]:
    """(exit status, stderr, seconds) of one command."""
    t0 = time.monotonic()
    proc = facemotion(*args)
    _, err = proc.communicate(timeout=limit_s)
    return proc.returncode, err, time.monotonic() - t0


def assert_one_error_line(err: str, *names: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("facemotion: error: "), err
    for name in names:
        assert str(name) in lines[0], (name, err)


def listing(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): p.stat().st_size for p in root.rglob("*") if p.is_file()}


def processes_mentioning(text: str) -> list[int]:
    """Pids of live processes whose command line contains ``text``."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = next(l for l in (entry / "status").read_text().splitlines() if l.startswith("State:"))
        except (OSError, ValueError, StopIteration):
            continue
        if entry.name.isdigit() and text in cmdline and "zombie" not in state:
            pids.append(int(entry.name))
    return pids


def wait_for(condition, limit_s: float = 60.0, what: str = "") -> None:
    end = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture
def animation_npz(tmp_path) -> Path:
    t = 25 * 60  # 60 s: long enough to be killed mid-render
    bs = np.zeros((t, 52), np.float32)
    bs[:, 24] = 0.5 + 0.5 * np.sin(np.arange(t) / 3)  # jawOpen
    return Animation.from_blendshapes(bs, np.zeros((t, 3)), 25.0).save(tmp_path / "in", formats=["npz"])["npz"]


# 1, 2: interrupts and children -------------------------------------------------------------


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_killed_render_leaves_no_ffmpeg_and_no_growing_file(animation_npz, tmp_path, how):
    out = tmp_path / "video"
    proc = facemotion("render", animation_npz, "-o", out / "a.mp4", "--size", "128")
    wait_for(lambda: processes_mentioning(str(out)) and any(out.glob(".a.tmp-*.mp4")), what="ffmpeg")
    time.sleep(0.5)
    proc.send_signal(getattr(signal, how))
    _, err = proc.communicate(timeout=20)
    if how == "SIGTERM":
        assert proc.returncode == 143 and err.strip() == "facemotion: interrupted", err
        assert not out.exists()  # its temporary was removed, and the folder it had created
    else:
        assert proc.returncode == -signal.SIGKILL
    time.sleep(0.5)
    sizes = listing(out)
    time.sleep(2.0)
    assert processes_mentioning(str(out)) == [] and listing(out) == sizes  # nothing runs, nothing grows
    assert not (out / "a.mp4").exists()
    if how == "SIGKILL":  # the stale temporary is removed by the next run into the folder
        assert LOCK_NAME in sizes and [n for n in sizes if n != LOCK_NAME][0].startswith(".a.tmp-")
        code, err, _ = run("export", animation_npz, "--to", "csv", "-o", out / "a.csv")
        assert code == 0, err
        assert sorted(listing(out)) == ["a.csv"]


def test_a_signal_inside_a_c_call_still_exits_143_with_one_line(monkeypatch, capsys):
    """ctypes wraps the handler's Interrupted in ctypes.ArgumentError when the signal lands while
    it converts an argument (as during PyOpenGL calls in a render): still 143 and one line."""
    import ctypes

    from facemotion import cli

    class SignalledArgument:
        @classmethod
        def from_param(cls, value):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1.0)  # the handler runs here
            return ctypes.c_int(value)

    def render_that_is_killed(args):
        abs_ = ctypes.CDLL(None).abs
        abs_.argtypes = [SignalledArgument]
        abs_(-1)
        return 0

    monkeypatch.setattr(cli, "_render", render_that_is_killed)
    assert cli.main(["render", "in.npz", "-o", "out.mp4"]) == 143
    assert capsys.readouterr().err.strip() == "facemotion: interrupted"


def test_the_helper_process_dies_with_its_parent():
    """The phone loop's helper (facemotion.processes.helper_pool) does not outlive a SIGKILLed parent."""
    script = ("import os, sys, time\nfrom facemotion.processes import helper_pool\n"
              "print(helper_pool().submit(os.getpid).result(), flush=True)\ntime.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], env=ENV, stdout=subprocess.PIPE, text=True)
    try:
        helper = int(proc.stdout.readline())
        assert helper != proc.pid and Path(f"/proc/{helper}").exists()
        proc.kill()
        proc.wait(timeout=10)

        def gone() -> bool:
            try:
                return "zombie" in Path(f"/proc/{helper}/status").read_text()
            except OSError:
                return True

        wait_for(gone, limit_s=5.0, what="helper gone")
    finally:
        proc.kill()


def test_interrupted_synth_exits_130_with_one_line_and_leaves_no_process(tmp_path):
    out, log = tmp_path / "corpus", tmp_path / "stderr.txt"
    with open(log, "w") as err_file:       # a file, not a pipe: exit status and message only
        proc = subprocess.Popen([sys.executable, "-m", "facemotion.cli", "synth", "--hours", "1", "--out",
                                 str(out), "--workers", "2", "--seed", "1"], env=ENV,
                                stdout=subprocess.DEVNULL, stderr=err_file, text=True)
        try:
            wait_for(lambda: len(list(out.glob("clips/*/*"))) >= 2, what="clips")
            assert len(processes_mentioning(str(out))) >= 3  # the parent and its two workers
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=20) == 130
            # no worker, nor a worker's espeak-ng child, is left (SIGKILLed ones take a moment to go)
            wait_for(lambda: not processes_mentioning(str(out)), limit_s=5.0, what="no process left")
        finally:
            for pid in processes_mentioning(str(out)):
                os.kill(pid, signal.SIGKILL)
    err = log.read_text()
    assert "facemotion: interrupted\n" in err and "Traceback" not in err, err  # (after a progress bar)


def test_sigterm_stops_training_non_zero_and_says_how_to_resume(tmp_path):
    data = make_dataset(tmp_path / "data", clips=2)
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({**TINY_CONFIG, "val_every": 1000}))
    run_dir = tmp_path / "run"
    proc = facemotion("train", "--data", data, "--out", run_dir, "--config", config, "--max-steps", "100000",
                      "--accelerator", "cpu", "--devices", "1")
    wait_for(lambda: (run_dir / "last.ckpt").is_file(), limit_s=90, what="a checkpoint")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("facemotion: interrupted") and f"resume from {run_dir / 'last.ckpt'}" in last
    assert not (run_dir / "model.pt").exists()


# 4: validate before working ----------------------------------------------------------------


def test_bad_output_paths_are_one_line_before_any_work(tmp_path, animation_npz):
    speech = tmp_path / "speech.wav"
    sf.write(speech, np.zeros(1600, np.float32), 16000)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    (tmp_path / "out" / "speech.npz").mkdir(parents=True)
    (tmp_path / "exists").mkdir()
    (tmp_path / "exists" / "speech.csv").write_text("old")
    before = listing(tmp_path)
    cases = [  # (arguments, what the message names); the model named does not exist: never loaded
        (["generate", speech, "-o", blocker / "sub", "--model", "nope.pt"], blocker),
        (["generate", speech, "-o", blocker, "--model", "nope.pt"], blocker),
        (["generate", speech, "-o", tmp_path / "out", "--model", "nope.pt"], tmp_path / "out" / "speech.npz"),
        (["generate", speech, "-o", tmp_path / "exists", "--formats", "csv", "--model", "nope.pt"],
         tmp_path / "exists" / "speech.csv"),
        (["export", animation_npz, "--to", "glb", "-o", tmp_path / "out"], tmp_path / "out"),
        (["export", animation_npz, "--to", "obj", "-o", blocker], blocker),
        (["render", animation_npz, "-o", blocker / "a.mp4"], blocker),
    ]
    for args, name in cases:
        code, err, seconds = run(*args)
        assert code == 1 and seconds < 5, (args, err)
        assert_one_error_line(err, name)
    assert listing(tmp_path) == before and sorted(p.name for p in tmp_path.iterdir()) == \
        ["exists", "file", "in", "out", "speech.wav"]


def test_bad_datasets_are_named_by_file_and_line_before_any_work(tmp_path):
    cases = {"malformed line": lambda d: (d / "manifest.jsonl").write_text(
                 (d / "manifest.jsonl").read_text().replace('"c1"', '"c1', 1)),
             "wrong shape": lambda d: np.savez(d / "c1.npz", blendshapes=np.zeros((50, 50)),
                                               head_rotation=np.zeros((50, 3)), fps=25),
             "corrupt npz": lambda d: (d / "c1.npz").write_bytes((d / "c1.npz").read_bytes()[:200]),
             "missing audio": lambda d: (d / "c1.wav").unlink()}
    for name, spoil in cases.items():
        data = make_dataset(tmp_path / name.replace(" ", "_"), clips=3)
        spoil(data)
        code, err, seconds = run("train", "--data", data, "--out", tmp_path / "run")
        assert code == 1 and seconds < 5, (name, err)
        assert_one_error_line(err, f"{data / 'manifest.jsonl'}:2:")
        if name != "malformed line":
            assert ("c1.wav" if name == "missing audio" else "c1.npz") in err, err
    assert not (tmp_path / "run").exists()


def test_corrupt_checkpoint_is_named_and_the_run_folder_untouched(tmp_path):
    data = make_dataset(tmp_path / "data", clips=2)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text('{"recipe": "diffposetalk"}')
    (run_dir / "last.ckpt").write_bytes(b"PK\x03\x04" + bytes(300))  # a truncated zip
    before = listing(run_dir)
    code, err, seconds = run("train", "--data", data, "--out", run_dir)
    assert code == 1 and seconds < 10, err
    assert_one_error_line(err, run_dir / "last.ckpt", "--no-resume")
    assert listing(run_dir) == before and sorted(p.name for p in run_dir.iterdir()) == ["config.json", "last.ckpt"]


# 5: no silent overwrite, one run per folder ----------------------------------------------


def test_existing_outputs_need_overwrite(tmp_path, animation_npz):
    target = tmp_path / "out" / "a.csv"
    assert run("export", animation_npz, "--to", "csv", "-o", target)[0] == 0
    target.write_text("mine")
    code, err, _ = run("export", animation_npz, "--to", "csv", "-o", target)
    assert code == 1 and target.read_text() == "mine"
    assert_one_error_line(err, target, "--overwrite")
    code, err, _ = run("export", animation_npz, "--to", "csv", "-o", target, "--overwrite")
    assert code == 0 and target.read_text().startswith("Timecode,"), err
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.csv"]  # no lock file left


def test_a_second_run_into_a_held_folder_is_refused(tmp_path, animation_npz):
    out = tmp_path / "out"
    with output_folder(out):
        assert (out / LOCK_NAME).read_text().strip() == str(os.getpid())
        code, err, _ = run("export", animation_npz, "--to", "csv", "-o", out / "a.csv")
        assert code == 1 and not (out / "a.csv").exists()
        assert_one_error_line(err, out, f"pid {os.getpid()}")
    assert not out.exists()  # created by the holder, left empty: removed with its lock
    assert run("export", animation_npz, "--to", "csv", "-o", out / "a.csv")[0] == 0


# 6: warnings -----------------------------------------------------------------------------


def test_audio_warnings_are_one_line(tmp_path):
    silent, short = tmp_path / "silent.wav", tmp_path / "short.wav"
    sf.write(silent, np.zeros(16000, np.float32), 16000)
    sf.write(short, (0.3 * np.sin(np.arange(48000) / 7)).astype(np.float32), 16000, subtype="PCM_16")
    short.write_bytes(short.read_bytes()[:44 + 2 * 16000])  # the header still says 3 s
    for speech, says in ((silent, "silent"), (short, "truncated: holds 1.00 s of audio but its header says 3.00 s")):
        code, err, _ = run("generate", speech, "-o", tmp_path / "out", "--model", tmp_path / "nope.pt")
        assert code == 1
        assert err.strip().splitlines() == [f"facemotion: warning: {speech}: {err.split(f'{speech}: ')[1].splitlines()[0]}",
                                            f"facemotion: error: {tmp_path / 'nope.pt'}: checkpoint not found"], err
        assert says in err


# 8: synth --hours ------------------------------------------------------------------------


def test_synth_makes_the_hours_asked_and_no_empty_shard_folder(tmp_path):
    from facemotion.data.native import read_manifest
    from facemotion.synth.corpus import generate_corpus

    target = 20.0
    generate_corpus(tmp_path / "c", target / 3600, workers=2, seed=1, shard_size=2, progress=False)
    durations = [r["duration"] for r in read_manifest(tmp_path / "c")]
    assert target <= sum(durations) < target + durations[-1]
    folders = list((tmp_path / "c" / "clips").iterdir())
    assert folders and all(any(f.iterdir()) for f in folders)
    files = {p.relative_to(tmp_path / "c").as_posix() for p in (tmp_path / "c" / "clips").rglob("*.*")}
    assert files == {r[k] for r in read_manifest(tmp_path / "c") for k in ("audio", "motion")}
