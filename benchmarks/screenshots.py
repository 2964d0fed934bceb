"""Refresh the README's screenshots: the studio after training the default model, and a lab.

    python3 dev.py bench screenshots [--epochs 6]

Runs the real window offscreen (QT_QPA_PLATFORM=offscreen unless set), trains the default conv
autoencoder on the bundled Fashion-MNIST split through the worker thread, clicks the latent map,
and saves assets/studio.png and assets/labs.png.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import aestudio  # noqa: F401  (first: OpenMP spin-wait)
from PySide6.QtWidgets import QApplication

from aestudio.app import create_window
from aestudio.core.config import ModelConfig, TrainConfig

ASSETS = Path(__file__).resolve().parent.parent / "assets"


def pump_until(cond, timeout: float) -> None:
    end = time.time() + timeout
    while not cond() and time.time() < end:
        QApplication.processEvents()
        time.sleep(0.01)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=6)
    args = ap.parse_args()
    os.environ.setdefault("AESTUDIO_SETTINGS_DIR", tempfile.mkdtemp(prefix="aestudio-shot-"))  # fresh: no saved layout
    w = create_window("fashion-10k")
    w.resize(1400, 900)
    w.show()
    w.builder.set_config(ModelConfig(input_shape=(1, 28, 28)))
    w.training_panel.set_config(TrainConfig(epochs=args.epochs, batch_size=32, lr=2e-3))  # the studio's defaults
    w.state.start_training()
    pump_until(lambda: not w.state.training.running, 1800)
    pump_until(lambda: len(w.latent_map.points) > 0 and not w.latent_map.busy_computing, 60)
    pts = w.latent_map.points
    x, y = pts[pts[:, 0].argmax()]
    w.latent_map.click_at(float(x) * 0.8, float(y) * 0.8)
    pump_until(lambda: False, 0.5)
    ASSETS.mkdir(exist_ok=True)
    w.grab().save(str(ASSETS / "studio.png"))
    lab = w.show_lab("PCA vs autoencoder")
    w.labs_window.resize(1150, 800)
    lab.run()
    pump_until(lambda: lab.last_result is not None, 600)
    pump_until(lambda: False, 0.5)
    w.labs_window.grab().save(str(ASSETS / "labs.png"))
    print("saved", ASSETS / "studio.png", ASSETS / "labs.png")
    w.close()


if __name__ == "__main__":
    main()
