"""Python's cyclic garbage collector, run only on the GUI thread.

Panels, pyqtgraph items and their Python wrappers form reference cycles, so a closed window's
Qt objects are freed by the cyclic collector, not by reference counting. CPython runs that
collector on whichever thread happens to allocate when a threshold is crossed, which is often
a training or loading thread. A QWidget destroyed there breaks Qt's rule that widgets live and
die on the GUI thread. We have seen both outcomes: a deadlock (the destructor waits for Qt's
connection lock while the GUI thread holds the GIL and waits for that lock) and a segmentation
fault (Qt reporting the wrong-thread destruction from inside a worker's import of torch).

`install()` turns automatic collection off and collects from a GUI-thread timer instead,
generation by generation, with CPython's own thresholds. Worker threads then never run the
collector. Memory held by cycles is freed at most one tick (50 ms) late.

Two things keep those collections short, because each one pauses the GUI thread. The tick is
short: a training thread allocates tens of thousands of tracked objects a second, and at a
quarter-second tick each young-generation collection took 10-20 ms and the middle generation's
up to 200 ms (measured while the latent sliders were dragged after a training run). And the
objects alive at `install()` (the imported modules of torch, Qt and pyqtgraph: the bulk of the
heap, alive until exit) are moved out of the collector's view with `gc.freeze()`, so the older
generations hold only what the studio made since.
"""
from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

INTERVAL_MS = 50

_guard: "GuiThreadCollector | None" = None


class GuiThreadCollector(QObject):
    """Collects garbage on the thread it lives on (the GUI thread) from a timer."""

    def __init__(self, interval_ms: int = INTERVAL_MS, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.thresholds = gc.get_threshold()
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.check)
        self.timer.start(interval_ms)
        gc.disable()
        gc.freeze()  # start-up's objects live until exit: never scan them again

    def check(self) -> int:
        """Collect the generations whose counts passed their thresholds; returns objects freed."""
        t0, t1, t2 = self.thresholds
        c0, c1, c2 = gc.get_count()
        if c0 <= t0:
            return 0
        generation = 2 if c2 > t2 else 1 if c1 > t1 else 0
        return gc.collect(generation)

    def stop(self) -> None:
        self.timer.stop()
        gc.unfreeze()
        gc.enable()


def install(parent: QObject) -> GuiThreadCollector:
    """Run the cyclic collector only on the GUI thread from now on (once per process)."""
    global _guard
    if _guard is None:
        _guard = GuiThreadCollector(parent=parent)
        _guard.destroyed.connect(_forget)
    return _guard


def _forget(*_args) -> None:
    global _guard
    _guard = None
    gc.unfreeze()
    gc.enable()


def installed() -> bool:
    return _guard is not None
