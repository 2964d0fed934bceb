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


# ---- compute threads: one torch team at a time (workers/priority.py) ----------------------------

def _in_thread(fn):
    out: list = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join()
    return out[0]


def test_only_the_training_thread_computes_with_every_core_while_a_model_trains():
    import torch

    cores = priority.all_cores()
    gate, release, seen = threading.Event(), threading.Event(), {}

    def train() -> None:
        with priority.training_threads(cores):
            seen["training"] = torch.get_num_threads()
            gate.set()
            release.wait(10)

    trainer = threading.Thread(target=train)
    trainer.start()
    try:
        assert gate.wait(10)
        assert priority.training_running()
        assert _in_thread(priority.task_threads) == 1  # a task started now computes alone ...
        assert _in_thread(torch.get_num_threads) >= 1
    finally:
        release.set()
        trainer.join()
    assert seen["training"] == cores  # ... and the training thread kept every core
    assert not priority.training_running()
    assert _in_thread(priority.task_threads) == cores  # nothing trains: a task gets every core again


@pytest.mark.skipif(priority.all_cores() < 2, reason="needs two cores to tell one thread from every core")
def test_a_task_that_starts_just_before_training_computes_does_not_take_its_cores():
    """torch sets a thread's count again at its first parallel operation, from whatever value any
    thread set last: a task's 1, set between the training thread's setting and its first batch,
    used to leave the studio training on one thread."""
    import torch

    cores = priority.all_cores()
    entered, task_ran, seen = threading.Event(), threading.Event(), {}

    def train() -> None:
        with priority.training_threads(cores):
            entered.set()
            task_ran.wait(10)
            torch.ones(64, 64).sum()  # the first operation on this thread
            seen["training"] = torch.get_num_threads()

    trainer = threading.Thread(target=train)
    trainer.start()
    try:
        assert entered.wait(10)
        assert _in_thread(priority.task_threads) == 1  # a task sets one thread meanwhile
    finally:
        task_ran.set()
        trainer.join()
    assert seen["training"] == cores


def test_the_gui_thread_computes_alone_after_the_window_is_built(qtbot):
    import torch

    from aestudio.app import create_window
    from aestudio.workers.training import default_threads, torch_threads

    cores = priority.all_cores()
    torch.set_num_threads(cores)  # as before any window (another test may have built one)
    window = create_window("digits")
    qtbot.addWidget(window)
    assert torch.get_num_threads() == 1  # this (GUI) thread never starts a team of its own
    assert default_threads() == torch_threads() == cores  # training still gets, and the status bar shows, every core


def test_a_task_reports_the_threads_it_computed_with_and_pool_threads_expire_soon(qtbot):
    import torch
    from PySide6.QtCore import QThreadPool

    from aestudio.workers import tasks

    task = Task(torch.get_num_threads)
    results: list = []
    task.signals.done.connect(results.append)
    start(task)
    qtbot.waitUntil(lambda: bool(results), timeout=10_000)
    assert results == [priority.all_cores()]  # nothing trains: every core
    # an idle pool thread, and the torch team it holds, goes away after a second, not Qt's 30
    assert QThreadPool.globalInstance().expiryTimeout() == tasks.POOL_EXPIRY_MS <= 1000


# ---- subnormal numbers: flushed on the threads that train (core.training.flush_subnormals) ------

def _survives_multiply(x):
    """How many of `x`'s subnormal numbers survive a multiplication by one (IEEE: all of them)."""
    import torch

    return int(torch.count_nonzero(x * 1.0))


def test_the_training_thread_and_its_compute_threads_flush_subnormal_numbers():
    import torch

    from aestudio.core.training import flush_subnormals, subnormals_flushed

    if not _in_thread(flush_subnormals):
        pytest.skip("this CPU cannot flush subnormal numbers")
    tiny = torch.full((2_000_000,), 1e-39)  # subnormal in float32; large enough for every compute thread
    assert _in_thread(lambda: _survives_multiply(tiny)) == tiny.numel()  # a plain thread keeps IEEE numbers

    def train() -> int:
        with priority.training_threads(priority.all_cores()):
            return _survives_multiply(tiny)

    assert _in_thread(train) == 0  # the training thread and every compute thread it started flush them
    assert _in_thread(lambda: (priority.task_threads(), _survives_multiply(tiny))[1]) == 0  # so do tasks

    def scoped() -> tuple[int, int]:
        with subnormals_flushed():
            inside = _survives_multiply(tiny[:10])
        return inside, _survives_multiply(tiny[:10])

    assert _in_thread(scoped) == (0, 10)  # the command line's block leaves its thread as it found it
