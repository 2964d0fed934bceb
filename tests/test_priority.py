"""Worker threads run below the GUI thread's priority (aestudio/workers/priority.py)."""
from __future__ import annotations

import os
import sys
import threading

import numpy as np
import pytest

from aestudio.core.config import ModelConfig, TrainConfig
from aestudio.core.datasets import ImageSet
from aestudio.workers import priority
from aestudio.workers.tasks import Task, start
from aestudio.workers.training import TrainingController

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")


def _expected() -> int:
    return min(19, os.getpriority(os.PRIO_PROCESS, os.getpid()) + priority.NICE_STEP)


def _nice_and_child() -> tuple[int | None, int | None]:
    """This thread's nice value and that of a thread it starts (torch's compute threads start so)."""
    seen: list[int | None] = []
    t = threading.Thread(target=lambda: seen.append(priority.thread_nice()))
    t.start()
    t.join()
    return priority.thread_nice(), seen[0]


@linux
def test_a_background_task_runs_below_the_gui_thread_and_so_do_its_threads(qtbot):
    gui_before = priority.thread_nice()
    task = Task(_nice_and_child)
    results: list = []
    task.signals.done.connect(results.append)
    start(task)
    qtbot.waitUntil(lambda: bool(results), timeout=10_000)
    own, child = results[0]
    assert own == child == _expected()
    assert priority.thread_nice() == gui_before  # the GUI thread keeps its priority
    # a pool thread that runs a second task is not lowered twice
    again = Task(_nice_and_child)
    more: list = []
    again.signals.done.connect(more.append)
    start(again)
    qtbot.waitUntil(lambda: bool(more), timeout=10_000)
    assert more[0][0] == _expected()


@linux
def test_the_training_thread_runs_below_the_gui_thread(qtbot, monkeypatch):
    from aestudio.workers import training

    seen: list[tuple[bool, int | None]] = []
    original = training.lower_this_thread

    def lower() -> bool:
        ok = original()
        seen.append((threading.current_thread() is threading.main_thread(), priority.thread_nice()))
        return ok

    monkeypatch.setattr(training, "lower_this_thread", lower)
    rng = np.random.default_rng(0)
    data = ImageSet("noise", (rng.random((64, 1, 8, 8)) * 255).astype(np.uint8), None, [])
    ctl = TrainingController()
    ctl.start(ModelConfig(arch="dense", input_shape=(1, 8, 8), latent=2, hidden=[8]),
              TrainConfig(epochs=2, batch_size=32, device="cpu"), data)
    qtbot.waitUntil(lambda: not ctl.running, timeout=60_000)
    assert seen == [(False, _expected())]  # lowered on the training thread, before training
    assert priority.thread_nice() != _expected() or _expected() == 19
