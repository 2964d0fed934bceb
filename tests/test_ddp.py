"""torchrun / DistributedDataParallel on CPU (gloo): the same results as one process, rank 0 alone
reports and writes, a rank that dies ends the job with a clear message and an intact run folder."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aestudio import cli
from aestudio.core.checkpoint import load_run

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform == "win32", reason="torchrun's gloo on Linux/macOS")]

ARGS = ["--data", "digits", "--arch", "dense", "--hidden", "32", "--latent", "4", "--batch-size", "64",
        "--seed", "3", "--device", "cpu", "--threads", "1"]


def env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def torchrun(nproc: int, argv: list[str], **kw) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", "aestudio", "train", *argv]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(), **kw)


@pytest.mark.timeout(240)
def test_two_processes_match_one_and_the_run_opens(tmp_path, capsys, qtbot):
    one, two = tmp_path / "one", tmp_path / "two"
    assert cli.main(["train", *ARGS, "--epochs", "3", "--quiet", "--out", str(one)]) == 0
    capsys.readouterr()
    proc = torchrun(2, [*ARGS, "--epochs", "3", "--quiet", "--out", str(two)])
    out, err = proc.communicate(timeout=200)
    assert proc.returncode == 0, err[-3000:]
    epoch_lines = [line for line in out.splitlines() if line.startswith("train epoch ")]
    assert [line.split()[2] for line in epoch_lines] == ["1/3", "2/3", "3/3"]  # rank 0 only: one line per epoch
    assert err.count("distributed: 2 processes") == 1

    a, b = load_run(one), load_run(two)
    assert [h["world_size"] for h in a.history] == [1, 1, 1] and [h["world_size"] for h in b.history] == [2, 2, 2]
    assert b.meta["finished"] == "completed" and b.train_config.device == "cpu"
    va, vb = a.history[-1]["val_total"], b.history[-1]["val_total"]
    assert abs(vb - va) <= 0.05 * va, (va, vb)
    assert [d["code"] for d in b.diagnoses] == [d["code"] for d in a.diagnoses]  # the doctor, on rank 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no leftovers of the live saves

    assert cli.main(["evaluate", str(two), "--json"]) == 0  # it evaluates like any run
    measures = json.loads(capsys.readouterr().out)
    assert measures["recon_mse"] > 0

    from aestudio.app import create_window

    w = create_window("digits")
    qtbot.addWidget(w)
    with qtbot.waitSignal(w.runOpened, timeout=60000):
        w.open_run(two)
    assert len(w.loss_curves.curve_data("total", "val")[0]) == 3
    w.close()


@pytest.mark.timeout(240)
def test_nproc_shortcut_and_ctrl_c_stops_every_rank(tmp_path):
    out = tmp_path / "stopped"
    with _nproc_job(out) as proc:
        _wait_for_line(proc, "train epoch 2/400")
        err = _ctrl_c(proc)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err and "SignalException" not in err
    run = load_run(out)
    assert run.meta["finished"] == "stopped" and len(run.history) >= 2
    assert "Traceback" not in err


@contextlib.contextmanager
def _nproc_job(out: Path):
    """`aestudio train --nproc 2` in a process group of its own, as a terminal runs it; killed if still running."""
    cmd = [sys.executable, "-m", "aestudio", "train", "--nproc", "2", *ARGS, "--epochs", "400", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(),
                            start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def _ctrl_c(proc: subprocess.Popen, times: int = 1) -> str:
    """Press Ctrl-C `times` times (the terminal's Ctrl-C reaches the whole process group); the job's stderr."""
    for i in range(times):
        if i:
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)
    return proc.communicate(timeout=120)[1]


def _processes_naming(text: str) -> list[int]:
    """Processes whose command line contains `text` (Linux /proc)."""
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdecimal():
            try:
                if text.encode() in (d / "cmdline").read_bytes():
                    found.append(int(d.name))
            except OSError:
                pass
    return found


@pytest.mark.timeout(240)
@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="lists the job's processes through /proc")
def test_ctrl_c_while_the_processes_start_is_quiet_and_leaves_none_behind(tmp_path):
    # Ctrl-C before the training processes could handle it (torchrun's agent and the ranks still
    # importing torch): no traceback, the job stops at its first batch check, nothing keeps running
    out = tmp_path / "early"
    with _nproc_job(out) as proc:
        for line in proc.stderr:
            if line.startswith("starting 2 training processes"):
                break
        time.sleep(0.5)
        err = _ctrl_c(proc)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err and "stopping" in err, err[-3000:]
    assert _processes_naming(str(out)) == []
    if out.exists():  # rank 0 saved what it had (stopped at the first agreed batch)
        assert load_run(out).meta["finished"] == "stopped"


@pytest.mark.timeout(240)
@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="lists the job's processes through /proc")
def test_a_second_ctrl_c_aborts_at_once_without_a_traceback_or_strays(tmp_path):
    out = tmp_path / "aborted"
    with _nproc_job(out) as proc:
        _wait_for_line(proc, "train epoch 1/400")
        err = _ctrl_c(proc, times=2)
    assert proc.returncode == 130, err[-3000:]
    assert "aborted without saving" in err and "Traceback" not in err, err[-3000:]
    time.sleep(0.5)  # the killed processes are gone (torchrun starts each rank in a session of its own)
    assert _processes_naming(str(out)) == []


@pytest.mark.timeout(240)
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the rank's process through /proc")
def test_a_rank_that_dies_ends_the_job_with_a_clear_message(tmp_path):
    out = tmp_path / "run"
    proc = torchrun(2, [*ARGS, "--epochs", "400", "--out", str(out)], start_new_session=True)
    try:
        _wait_for_line(proc, "train epoch 2/400")
        victim = _rank_pid(proc.pid, 1)
        os.kill(victim, signal.SIGKILL)
        rest, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode not in (0, None)
    assert "aestudio: error:" in err and ("another training process" in err or "stopped by torchrun" in err), err[-3000:]
    run = load_run(out)  # the live save of an earlier epoch, whole
    assert run.meta["finished"] == "running" and len(run.history) >= 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def _wait_for_line(proc: subprocess.Popen, text: str, timeout: float = 150.0) -> None:
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        if text in line:
            return
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"never printed {text!r}: {proc.stderr.read()[-3000:] if proc.poll() is not None else ''}")


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def _rank_pid(root: int, rank: int) -> int:
    todo, seen = [root], set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in environ and b"LOCAL_RANK=%d" % rank in environ:
            return pid
        todo += _children(pid)
    raise AssertionError(f"no process of rank {rank} under {root}")


@pytest.mark.timeout(240)
def test_nan_on_every_rank_restores_the_last_finite_epoch(tmp_path):
    out = tmp_path / "nan"
    proc = torchrun(2, [*ARGS, "--epochs", "30", "--lr", "1e6", "--output", "linear", "--quiet", "--out", str(out)])
    _, err = proc.communicate(timeout=200)
    assert proc.returncode != 0
    assert "The loss became" in err or "validation loss became non-finite" in err, err[-3000:]
    run = load_run(out)  # rank 0 saved the restored, finite weights
    assert run.meta["finished"] == "nan" and len(run.history) < 30


@pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="per-thread signal masks (POSIX)")
def test_backend_threads_leave_ctrl_c_to_the_main_thread():
    import threading

    from aestudio.core.distributed import signals_to_main_thread

    seen: list[set] = []

    def record() -> None:
        seen.append(signal.pthread_sigmask(signal.SIG_BLOCK, []))

    before = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    with signals_to_main_thread():
        inside = threading.Thread(target=record)
        inside.start()
    inside.join()
    after = threading.Thread(target=record)
    after.start()
    after.join()
    assert {signal.SIGINT, signal.SIGTERM} <= seen[0]  # a thread started in the block never gets them
    assert signal.SIGINT not in seen[1]  # threads started later do, as before
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == before  # the main thread's mask is restored
