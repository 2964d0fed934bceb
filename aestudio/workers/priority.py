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
"""
from __future__ import annotations

import os
import sys
import threading

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
