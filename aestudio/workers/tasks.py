"""Run any plain function off the GUI thread and get its result back as a signal.

    task = Task(load_dataset, spec, progress=True)
    task.signals.done.connect(self._on_loaded)      # a @Slot method of a GUI-thread object
    task.signals.failed.connect(self._on_failed)
    start(task)

If `progress=True`, the function receives a `progress(done, total)` callable that emits the
`progress` signal (throttled to ~20 per second). A function that accepts `cancel` gets a
`threading.Event` set by `task.cancel()`; long loops should check it.
"""
from __future__ import annotations

import threading
import time
import traceback
from typing import Any, Callable

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from ..core.errors import user_message
from .priority import lower_this_thread, task_threads


class TaskSignals(QObject):
    done = Signal(object)
    failed = Signal(str)
    progress = Signal(int, int)


class Task(QRunnable):
    def __init__(self, fn: Callable[..., Any], *args: Any, progress: bool = False, cancellable: bool = False, **kwargs: Any):
        super().__init__()
        self.setAutoDelete(False)  # the owner keeps a reference until `done`/`failed`
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.signals = TaskSignals()
        self.cancel_event = threading.Event()
        self.finished_event = threading.Event()
        if progress:
            self.kwargs["progress"] = self._progress
        if cancellable:
            self.kwargs["cancel"] = self.cancel_event
        self._last_progress = 0.0

    def _progress(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if done >= total or now - self._last_progress > 0.05:
            self._last_progress = now
            self.signals.progress.emit(int(done), int(total))

    def cancel(self) -> None:
        self.cancel_event.set()

    def run(self) -> None:  # runs on a pool thread
        lower_this_thread()  # the GUI thread comes first (workers/priority.py)
        try:
            task_threads()  # every core, unless a model trains (workers/priority.py)
            result = self.fn(*self.args, **self.kwargs)
        except Exception as e:  # shown to the user, never swallowed
            message = user_message(e)
            if message is None:
                message = f"{type(e).__name__}: {e}"
                traceback.print_exc()
            self._report(self.signals.failed, message)
        else:
            self._report(self.signals.done, result)
        finally:
            self.finished_event.set()

    @staticmethod
    def _report(signal, value: Any) -> None:
        try:
            signal.emit(value)
        except RuntimeError:  # the studio is closing and its Qt side is gone: nobody is left to tell
            pass


#: An idle pool thread ends after this long, and with it the team of compute threads torch gave
#: it: a team left alive would slow the next training run (workers/priority.py). Qt's default is 30 s.
POOL_EXPIRY_MS = 1000


def start(task: Task) -> Task:
    pool = QThreadPool.globalInstance()
    if pool.expiryTimeout() != POOL_EXPIRY_MS:
        pool.setExpiryTimeout(POOL_EXPIRY_MS)
    pool.start(task)
    return task
