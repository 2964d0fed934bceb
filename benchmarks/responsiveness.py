"""How the studio feels while it trains: every figure is measured with training running.

    python3 dev.py bench responsiveness [--seconds 20]

The studio runs offscreen (QT_QPA_PLATFORM=offscreen unless set) on "fashion-50k": the bundled
10,000 Fashion-MNIST images five times over, each copy with its own light pixel noise, so the
validation split has 10,000 images and the latent map shows the studio's own limit of 10,000
points (MAX_MAP_POINTS), and an epoch lasts long enough for everything below. The default conv
model trains with 100 epochs planned; the measurements start after the first epoch's snapshot
and all happen before training is stopped:

1. GUI event-loop lag, sampled by a 10 ms timer, while nobody touches the window and Qt's own event
   loop runs, as in the studio (goal: p99 <= 50 ms).
2. Latent-map click -> decoded image shown (mouse press delivered, decode, the "Decoded sample"
   view repainted): p95 (goal <= 16 ms).
3. Slider drag: decoded updates per second while a slider moves every 2 ms (goal >= 60).
4. The latent map of the studio's own 10,000 codes: pan/zoom frames per second (repaint forced
   each step; goal >= 40) and a hover pick (goal <= 1 ms).
5. Event-loop lag while t-SNE of the 10,000 codes and the Latent health lab run off the GUI thread.
6. Training images/second with the studio attached (during 1, nobody touching it) against the
   headless engine on the same model, data, batch size and threads, measured before and after
   the studio (A-B-A; goal >= 0.85).
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# the studio's defaults, not whatever settings this machine's last session left
os.environ["AESTUDIO_SETTINGS_DIR"] = __import__("tempfile").mkdtemp(prefix="aestudio-bench-settings-")

import aestudio  # noqa: F401  (first: sets OpenMP's spin-wait before torch loads)
import numpy as np
import torch
from PySide6.QtCore import QElapsedTimer, QEventLoop, QPoint, Qt, QThreadPool, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QSlider, QWidget

from aestudio.app import create_window, start_warm_up
from aestudio.core.config import TrainConfig
from aestudio.core.datasets import ImageSet, load_dataset
from aestudio.core.training import BatchEnd, Trainer
from aestudio.workers.priority import training_threads
from aestudio.workers.training import MAX_MAP_POINTS, default_threads


def find(window: QWidget, name: str) -> QWidget:
    for w in window.findChildren(QWidget):
        if w.accessibleName() == name:
            return w
    raise LookupError(name)


def pump(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        QApplication.processEvents()
        time.sleep(0.001)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def fashion_50k() -> ImageSet:
    """Five noisy copies of fashion-10k: 50,000 images, 10,000 of them validation at 0.2."""
    base = load_dataset("fashion-10k")
    rng = np.random.default_rng(0)
    copies = [base.images]
    for _ in range(4):
        noise = rng.integers(-12, 13, base.images.shape, dtype=np.int16)
        copies.append(np.clip(base.images.astype(np.int16) + noise, 0, 255).astype(np.uint8))
    return ImageSet("fashion-50k", np.concatenate(copies), np.tile(base.labels, 5), list(base.class_names))


def headless_ips(state, seconds: float) -> float:
    """The engine alone, same model, data, batch size and threads as the studio's run.

    It runs on a thread of its own that ends with it, as the command line's engine runs on its
    process's only thread: this (GUI) thread computes alone, and a torch team left on it would slow
    the studio's training thread (aestudio/workers/priority.py)."""
    marks: list[tuple[float, int]] = []

    def train() -> None:
        with training_threads(default_threads()):
            trainer = Trainer(state.model_config, state.train_config, state.dataset)
            t0 = time.perf_counter()
            for e in trainer.run():
                if isinstance(e, BatchEnd) and e.step > 20 and e.terms:  # skip warm-up; marks at the engine's looks
                    marks.append((time.perf_counter(), e.step))
                if time.perf_counter() - t0 > seconds:
                    trainer.control.stop()

    thread = threading.Thread(target=train)
    thread.start()
    thread.join()
    return wall_ips(marks, state.train_config.batch_size)


def wall_ips(marks: list[tuple[float, int]], batch_size: int) -> float:
    """Images per wall-clock second between the first and last (time, step) marks."""
    (t_a, s_a), (t_b, s_b) = marks[0], marks[-1]
    return (s_b - s_a) * batch_size / (t_b - t_a)


class LagMeter:
    """Event-loop lag: how late a 10 ms timer fires, in ms."""

    def __init__(self) -> None:
        self.timer, self.clock = QTimer(), QElapsedTimer()
        self.clock.start()
        self.timer.timeout.connect(self._tick)
        self.values: list[float] = []
        self.last = 0

    def _tick(self) -> None:
        now = self.clock.nsecsElapsed()
        self.values.append(max(0.0, (now - self.last) / 1e6 - 10.0))
        self.last = now

    def start(self) -> None:
        self.values = []
        self.last = self.clock.nsecsElapsed()
        self.timer.start(10)

    def stop(self) -> list[float]:
        self.timer.stop()
        return self.values


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20.0, help="seconds of training per passive measurement")
    args = ap.parse_args()

    window = create_window("fashion-10k")
    window.resize(1400, 900)
    window.show()
    warm = start_warm_up()  # as `aestudio` does once its window shows (app.run_studio)
    while not warm.finished_event.is_set():
        pump(0.05)
    state = window.state
    state.set_dataset(fashion_50k(), "fashion-50k")
    state.set_train_config(TrainConfig(**{**state.train_config.to_dict(), "epochs": 100}))
    QApplication.processEvents()
    print(f"model: {state.model_config.arch} {state.model_config.kind}, latent {state.model_config.latent}; "
          f"data {state.dataset.summary()}; torch threads {default_threads()}, {os.cpu_count()} cores", flush=True)

    base_before = headless_ips(state, args.seconds)  # A
    print(f"headless before: {base_before:,.0f} img/s", flush=True)

    studio_marks: list[tuple[float, int]] = []
    state.training.progress.connect(lambda e: studio_marks.append((time.perf_counter(), e.step)))
    state.start_training()  # B: everything below happens while this run trains
    t0 = time.perf_counter()
    while state.snapshot is None and time.perf_counter() - t0 < 600:
        pump(0.05)
    snap = state.snapshot
    n_points = len(snap.codes)
    print(f"first snapshot after {time.perf_counter() - t0:.0f} s: {n_points:,} codes on the map", flush=True)
    meter = LagMeter()

    # --- 1: event-loop lag while training, nobody touching the window: Qt's own event loop runs, as
    # in the studio (this script's pump below, which wakes every millisecond to drive input, cost
    # the training threads about a tenth of their speed on 2 cores, in alternating 8 s windows) ---
    meter.start()
    passive = (time.perf_counter(), 0.0)
    idle = QEventLoop()
    QTimer.singleShot(int(args.seconds * 1000), idle.quit)
    idle.exec()
    passive = (passive[0], time.perf_counter())
    lags = meter.stop()

    # --- 2: click to decoded image shown ---
    latent_map = find(window, "Latent map")
    decoded = find(window, "Decoded sample")
    plot = latent_map.plot
    vb = plot.plotItem.vb
    (x0, x1), (y0, y1) = vb.viewRange()
    rng = np.random.default_rng(0)
    click_ms: list[float] = []
    paint_ms: list[float] = []  # of which repainting the decoded view
    missed = 0  # clicks while a new epoch's map was still being computed (nothing to decode from yet)
    for _ in range(60):
        while latent_map.busy_computing:
            pump(0.01)
        (x0, x1), (y0, y1) = vb.viewRange()
        x, y = rng.uniform(x0, x1), rng.uniform(y0, y1)
        pos = plot.mapFromScene(vb.mapViewToScene(pg_point(x, y)))
        before = decoded.current_image
        t = time.perf_counter()
        QTest.mouseClick(plot.viewport(), Qt.LeftButton, Qt.NoModifier, QPoint(int(pos.x()), int(pos.y())))
        t_painted = time.perf_counter()
        decoded.repaint()
        if decoded.current_image is before:
            missed += 1
        else:
            click_ms.append((time.perf_counter() - t) * 1e3)
            paint_ms.append((time.perf_counter() - t_painted) * 1e3)
        QApplication.processEvents()

    # --- 3: slider drag ---
    sliders_panel = find(window, "Latent sliders")
    slider = next(s for s in sliders_panel.findChildren(QSlider) if s.isVisible() and s.isEnabled())
    updates = [0]
    state.decoded.connect(lambda *_: updates.__setitem__(0, updates[0] + 1))
    t = time.perf_counter()
    i = 0
    while time.perf_counter() - t < 3.0:
        slider.setValue(slider.minimum() + (i * 7) % max(1, slider.maximum() - slider.minimum()))
        i += 1
        QApplication.processEvents()
        time.sleep(0.002)
    drag_rate = updates[0] / (time.perf_counter() - t)

    # --- 4: the studio's own map at its size limit ---
    while latent_map.busy_computing:
        pump(0.01)
    QApplication.processEvents()
    shown = len(state.snapshot.codes)
    frames = 0
    t = time.perf_counter()
    while time.perf_counter() - t < 3.0:
        k = frames % 40
        if k < 20:
            vb.translateBy(x=0.05, y=0.03)
        else:
            vb.scaleBy((0.97, 0.97) if k < 30 else (1 / 0.97, 1 / 0.97))
        plot.viewport().repaint()  # a synchronous paint of the scene: every point drawn
        frames += 1
    fps = frames / (time.perf_counter() - t)
    hover_ms = []
    for _ in range(500):
        x, y = rng.uniform(x0, x1), rng.uniform(y0, y1)
        t = time.perf_counter()
        latent_map.hover_at(float(x), float(y))
        hover_ms.append((time.perf_counter() - t) * 1e3)

    # --- 5: lag while t-SNE and a lab run off the GUI thread (still training) ---
    def lag_while(busy) -> tuple[list[float], float]:
        meter.start()
        t = time.perf_counter()
        while busy() and time.perf_counter() - t < 600:
            QApplication.processEvents()
            time.sleep(0.001)
        return meter.stop(), time.perf_counter() - t

    latent_map.set_method("tsne")
    tsne_lags, tsne_s = lag_while(lambda: latent_map.busy_computing)
    lab = window.show_lab("Latent health")
    lab.run()
    lab_lags, lab_s = lag_while(lambda: lab.busy)
    still_training = state.training.running

    # A again, with the studio idle: back to the PCA map (a t-SNE of the last snapshot's codes would
    # otherwise run for a minute and a half beside the headless phase), training stopped, every
    # background task finished
    latent_map.set_method("pca")
    state.training.stop()
    t = time.perf_counter()
    while (state.training.running or latent_map.busy_computing or QThreadPool.globalInstance().activeThreadCount()) \
            and time.perf_counter() - t < 300:
        pump(0.05)
    pump(1.0)
    marks = [m for m in studio_marks if passive[0] <= m[0] <= passive[1]]
    studio_ips = wall_ips(marks, state.train_config.batch_size)
    base_after = headless_ips(state, args.seconds)  # A again
    base_ips = (base_before + base_after) / 2
    ratio = studio_ips / base_ips

    print()
    print(f"all measured while training (still training at the end: {still_training})")
    print(f"{'measure':<46}{'value':>12}  goal")
    print(f"{'event-loop lag p99, passive (ms)':<46}{pct(lags, 99):>12.1f}  <= 50   (p50 {pct(lags, 50):.1f}, max {max(lags):.1f}, n={len(lags)})")
    print(f"{'latent click -> decoded shown p95 (ms)':<46}{pct(click_ms, 95):>12.2f}  <= 16   (p50 {pct(click_ms, 50):.2f}, of which repaint p50 "
          f"{pct(paint_ms, 50):.2f}; {missed} of 60 clicks missed)")
    print(f"{'slider drag decoded updates per second':<46}{drag_rate:>12.0f}  >= 60")
    print(f"{f'latent map {shown:,} points: pan/zoom fps':<46}{fps:>12.1f}  >= 40   (limit {MAX_MAP_POINTS:,})")
    print(f"{'hover pick p95 (ms)':<46}{pct(hover_ms, 95):>12.3f}  <= 1")
    print(f"{f'lag p99 during t-SNE of {shown:,} codes (ms)':<46}{pct(tsne_lags, 99):>12.1f}  <= 50   ({tsne_s:.0f} s, off the GUI thread)")
    print(f"{'lag p99 during Latent health lab (ms)':<46}{pct(lab_lags, 99):>12.1f}  <= 50   ({lab_s:.0f} s)")
    print(f"{'training img/s: studio / headless (A-B-A)':<46}{ratio:>12.3f}  >= 0.85  ({studio_ips:,.0f} vs "
          f"{base_before:,.0f} before, {base_after:,.0f} after)")
    window.close()
    sys.exit(0)


def pg_point(x: float, y: float):
    from PySide6.QtCore import QPointF

    return QPointF(x, y)


if __name__ == "__main__":
    main()
