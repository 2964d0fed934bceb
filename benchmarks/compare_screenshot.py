"""Refresh assets/compare.png: the Runs panel comparing three runs (curves and metrics side by side).

    python3 dev.py bench compare_screenshot [--epochs 6]

Trains three dense autoencoders on the bundled Fashion-MNIST split with `aestudio train` (plain,
tied weights, variational; code size 16), evaluates them with `aestudio compare --evaluate`, then
opens the studio offscreen, adds the folder in the Runs panel, ticks the three runs and saves the
panel's loss-curve overlay and its metrics table side by side as one image.
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import aestudio  # noqa: F401  (first: OpenMP spin-wait)

from screenshots import ASSETS, pump_until  # noqa: E402  (the same folder)

RUNS = (("ae16", []), ("ae16-tied", ["--tied"]), ("vae16", ["--kind", "vae"]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--runs", type=Path, help="folder for the three runs (default: a temporary folder)")
    args = ap.parse_args()
    os.environ.setdefault("AESTUDIO_SETTINGS_DIR", tempfile.mkdtemp(prefix="aestudio-compare-shot-"))
    from aestudio import cli

    root = args.runs or Path(tempfile.mkdtemp(prefix="aestudio-compare-runs-"))
    for name, extra in RUNS:
        if not (root / name / "config.json").is_file():
            rc = cli.main(["train", "--data", "fashion-10k", "--arch", "dense", "--hidden", "256", "--latent", "16",
                           "--epochs", str(args.epochs), "--batch-size", "64", "--quiet", "--out", str(root / name),
                           *extra])
            assert rc == 0, name
    assert cli.main(["compare", str(root), "--evaluate"]) == 0

    from PySide6.QtCore import QPoint
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtWidgets import QApplication

    from aestudio.app import create_window

    w = create_window("fashion-10k")
    w.show()
    dock = w.docks["runs"]
    dock.setFloating(True)
    dock.resize(720, 820)
    dock.raise_()
    panel = w.runs_panel
    panel.choose_folder = lambda start: str(root)
    pump_until(lambda: not panel.busy, 30)
    panel.add_folder()
    pump_until(lambda: not panel.busy and len(panel.infos) == 3, 30)
    panel.set_ticked([name for name, _ in RUNS])
    split = panel.tabs.parentWidget()
    split.setSizes([150, 640])
    pump_until(lambda: False, 0.5)
    shots = [dock.grab().toImage()]  # the runs table over the overlaid curves
    panel.tabs.setCurrentIndex(1)  # then the metrics, side by side
    pump_until(lambda: False, 0.5)
    shots.append(panel.tabs.grab().toImage())
    out = QImage(sum(s.width() for s in shots), max(s.height() for s in shots), QImage.Format.Format_RGB32)
    out.fill(panel.palette().window().color())
    p = QPainter(out)
    x = 0
    for s in shots:
        p.drawImage(QPoint(x, 0), s)
        x += s.width()
    p.end()
    ASSETS.mkdir(exist_ok=True)
    out.save(str(ASSETS / "compare.png"))
    print("saved", ASSETS / "compare.png", "runs in", root)
    w.close()
    QApplication.processEvents()


if __name__ == "__main__":
    main()
