"""Background threads yield the CPU to the GUI thread.

Training, the labs, t-SNE and folder loading run on worker threads, and torch gives each of them
a team of compute threads. On a machine with few cores they outnumber the cores, and the GUI
thread, which needs a few milliseconds now and then, waits in the queue behind them: the window
stutters although no work runs on it. Each worker thread therefore lowers its own scheduling
priority when it starts (`lower_this_thread`); the compute threads torch starts from it inherit
that priority. When the GUI thread has nothing to do, the workers get every core as before, so
training is no slower; when it wakes, the scheduler serves it first.

Linux schedules threads one by one, so the worker's own "nice" value is raised by `NICE_STEP`
(relative to the process, and only once per thread: pool threads run many tasks). Elsewhere Qt's
thread priority does the same job.

Only one thread at a time computes with every core (`training_threads`, `task_threads`,
`compute_alone`): see *compute threads* below.
"""
from __future__ import annotations

import contextlib
import os
import sys
import threading
from typing import Iterator

import torch

from ..core.training import flush_subnormals

NICE_STEP = 5  # Linux: a nice-5 thread gets a third of the weight of the nice-0 GUI thread
_lowered = threading.local()


def lower_this_thread() -> bool:
    """Give the calling (worker) thread a lower priority than the GUI thread. True when it applied."""
    if getattr(_lowered, "done", False):
        return True
    if sys.platform.startswith("linux"):
        ok = _renice_linux()
    else:
        ok = _qt_low_priority()
    _lowered.done = ok
    return ok


def _renice_linux() -> bool:
    """setpriority(2) on the thread's own id: on Linux the nice value belongs to each thread."""
    try:
        base = os.getpriority(os.PRIO_PROCESS, os.getpid())
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), min(19, base + NICE_STEP))
    except (OSError, AttributeError):
        return False  # a sandbox that forbids it: run at the normal priority
    return True


def _qt_low_priority() -> bool:
    from PySide6.QtCore import QThread

    thread = QThread.currentThread()
    if thread is None or thread.isMainThread():
        return False  # never lower the GUI thread itself
    thread.setPriority(QThread.Priority.LowPriority)
    return True


def thread_nice() -> int | None:
    """The calling thread's nice value on Linux (None elsewhere): for tests and diagnostics."""
    if not sys.platform.startswith("linux"):
        return None
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


# ---- compute threads ------------------------------------------------------------------------
# torch computes with OpenMP (libgomp on Linux), which keeps a team of compute threads for every
# thread that has run a parallel operation, for as long as that thread lives. While those threads
# outnumber the cores, libgomp stops spinning at the end of each operation and puts its threads to
# sleep, so every next operation first waits for them to wake. The studio's GUI thread used to
# build its first model with every core, which left it a team: training on the worker thread then
# ran at 0.73-0.77x the speed of the same training alone (2 cores, conv model, batch 32), while a
# thread whose team is the only one runs at full speed. So one thread at a time computes with every
# core: the training thread, or a background task while nothing trains. The GUI thread, and tasks
# while a model trains, compute on their own thread, with no team.

_training_runs = 0
_lock = threading.Lock()

#: torch's own default number of threads here (its choice, or OMP_NUM_THREADS), read when this
#: module is first imported, before it gives any thread fewer.
_CORES = max(1, min(torch.get_num_threads(), os.cpu_count() or 1))


def all_cores() -> int:
    """The threads torch computes with by default on this machine."""
    return _CORES


def set_threads(n: int) -> None:
    """The calling thread computes with `n` torch threads from now on, whatever other threads set.

    torch keeps the count per thread, but a thread's first parallel operation sets it once more,
    from the value that *any* thread set last. A training thread that set every core, and then
    started computing just after a task had set one, trained on one thread: the studio trained
    at two-thirds of the headless speed on 2 cores. Reading the count right after setting it makes
    that first-use setting happen now, from `n`; the lock keeps another thread from setting a
    different value in between."""
    with _lock:
        torch.set_num_threads(n)
        torch.get_num_threads()


def compute_alone() -> None:
    """The calling thread computes on itself only (the GUI thread: it never starts a team)."""
    set_threads(1)


def training_running() -> bool:
    return _training_runs > 0


@contextlib.contextmanager
def training_threads(threads: int) -> Iterator[None]:
    """``with training_threads(n):`` the calling thread trains with `n` torch threads and subnormal
    numbers flushed to zero (`core.training.flush_subnormals`: it is the thread's own, as are its
    compute threads), and tasks started meanwhile compute alone (`task_threads`)."""
    global _training_runs
    with _lock:
        _training_runs += 1
    try:
        flush_subnormals()  # before this thread's first parallel operation starts its compute threads
        set_threads(threads)
        yield
    finally:
        with _lock:
            _training_runs -= 1


def task_threads() -> int:
    """The torch threads for a background task starting now: every core while nothing trains, one
    while a model trains (it keeps the cores, and no second team slows it)."""
    n = 1 if training_running() else all_cores()
    flush_subnormals()  # labs and experiments train too (pool threads are the studio's own)
    set_threads(n)
    return n
