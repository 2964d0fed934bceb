"""Many signals into Python slots must neither be lost nor crash the interpreter.

PySide6 6.12.0 on Python < 3.12 leaked a reference to None per Python slot call, which ends in
"Fatal Python error: none_dealloc" after a few thousand signals; pyproject.toml excludes that
release. These tests push 20,000 signals through Python slots, from a worker thread (queued
connections, as training progress travels) and from a fast timer on the GUI thread.
"""
from __future__ import annotations

import sys
import threading

from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot

COUNT = 20_000


class Emitter(QObject):
    ping = Signal(int)
    payload = Signal(object)


class Receiver(QObject):
    def __init__(self):
        super().__init__()
        self.count = 0
        self.total = 0
        self.objects = 0

    @Slot(int)
    def on_ping(self, i: int) -> None:
        self.count += 1
        self.total += i

    @Slot(object)
    def on_payload(self, obj) -> None:
        if obj is None or isinstance(obj, dict):
            self.objects += 1


class Worker(QObject):
    ping = Signal(int)
    payload = Signal(object)

    @Slot()
    def run(self) -> None:
        for i in range(COUNT):
            self.ping.emit(i)
            self.payload.emit(None if i % 2 else {"i": i})


def test_worker_thread_signals_all_arrive(qtbot):
    none_refs = sys.getrefcount(None)
    receiver = Receiver()
    worker = Worker()
    thread = QThread()
    worker.moveToThread(thread)
    worker.ping.connect(receiver.on_ping)
    worker.payload.connect(receiver.on_payload)
    thread.started.connect(worker.run)
    thread.start()
    try:
        qtbot.waitUntil(lambda: receiver.count == COUNT and receiver.objects == COUNT, timeout=60000)
    finally:
        thread.quit()
        thread.wait(5000)
    assert receiver.total == COUNT * (COUNT - 1) // 2
    # a leak of one None reference per call would show up as ~40,000 extra references
    assert sys.getrefcount(None) - none_refs < COUNT // 2


def test_python_thread_emitting_into_slot(qtbot):
    receiver = Receiver()
    emitter = Emitter()
    emitter.ping.connect(receiver.on_ping)

    def spam():
        for i in range(COUNT):
            emitter.ping.emit(i)

    t = threading.Thread(target=spam)
    t.start()
    qtbot.waitUntil(lambda: receiver.count == COUNT, timeout=60000)
    t.join(5)
    assert receiver.total == COUNT * (COUNT - 1) // 2


def test_fast_timer_into_slot(qtbot):
    receiver = Receiver()
    emitter = Emitter()
    emitter.ping.connect(receiver.on_ping)
    sent = [0]

    def tick():
        for _ in range(200):  # 200 emissions per 0 ms timer tick
            if sent[0] < COUNT:
                emitter.ping.emit(sent[0])
                sent[0] += 1
        if sent[0] >= COUNT:
            timer.stop()

    timer = QTimer()
    timer.setInterval(0)
    timer.timeout.connect(tick)
    timer.start()
    qtbot.waitUntil(lambda: receiver.count == COUNT, timeout=60000)
    assert receiver.total == COUNT * (COUNT - 1) // 2
