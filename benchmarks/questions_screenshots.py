"""Screenshots of the Questions guide for the README: the guide, and two answered questions.

    python3 dev.py bench questions_screenshots [--budget normal] [--questions 7,12]

Runs the real window offscreen (QT_QPA_PLATFORM=offscreen unless set), opens Help > Questions
guide, saves assets/questions.png, then runs each question through the window's worker thread at
the given budget and saves assets/question_NN.png once its answer is shown.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import aestudio  # noqa: F401  (first: OpenMP spin-wait)
from aestudio.app import create_window

from screenshots import ASSETS, pump_until  # noqa: E402  (the same folder)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", default="normal", choices=("normal", "tiny"))
    ap.add_argument("--questions", default="7,12")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    os.environ.setdefault("AESTUDIO_SETTINGS_DIR", str(Path("/tmp/aestudio-shot-settings")))
    w = create_window("fashion-10k")
    w.resize(1400, 900)
    w.show()
    qw = w.show_questions()
    qw.resize(1250, 820)
    panel = qw.panel
    panel.open_box.setChecked(False)  # keep the screenshots on the guide
    pump_until(lambda: False, 0.5)
    ASSETS.mkdir(exist_ok=True)
    qw.grab().save(str(ASSETS / "questions.png"))
    print("saved", ASSETS / "questions.png")
    for n in (int(v) for v in args.questions.split(",")):
        panel.select(n)
        t0 = time.time()
        panel.run(n, budget=args.budget)
        pump_until(lambda: not panel.busy, 1800)
        pump_until(lambda: False, 0.5)
        out = ASSETS / f"question_{n:02d}.png"
        qw.grab().save(str(out))
        print("saved", out, f"({time.time() - t0:.0f} s)")
    w.close()


if __name__ == "__main__":
    main()
