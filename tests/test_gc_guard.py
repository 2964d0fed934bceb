"""The cyclic garbage collector runs on the GUI thread only (aestudio/ui/gc_guard.py)."""
from __future__ import annotations

import gc
import threading

from PySide6.QtCore import QObject

from aestudio.ui.gc_guard import GuiThreadCollector


class _Cycle:
    def __init__(self, freed_on: list):
        self.me = self  # only the cyclic collector frees this
        self.freed_on = freed_on

    def __del__(self):
        self.freed_on.append(threading.current_thread() is threading.main_thread())


def test_garbage_made_on_a_worker_is_collected_on_the_gui_thread(qtbot):
    was_enabled = gc.isenabled()
    parent = QObject()
    guard = GuiThreadCollector(interval_ms=20, parent=parent)
    try:
        assert not gc.isenabled()
        freed_on: list[bool] = []
        kept: list = []

        def worker():
            for _ in range(200):
                _Cycle(freed_on)
            kept.append([[] for _ in range(50_000)])  # allocations that would trigger an automatic collection

        t = threading.Thread(target=worker)
        t.start()
        t.join()
        assert freed_on == []  # nothing collected on the worker
        qtbot.waitUntil(lambda: len(freed_on) == 200, timeout=15000)
        assert all(freed_on)  # every cycle freed on the GUI thread
    finally:
        guard.stop()
        if was_enabled:
            gc.enable()
    assert gc.isenabled() or not was_enabled
