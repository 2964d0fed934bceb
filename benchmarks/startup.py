"""Start-up: seconds from a fresh Python process to the studio's window shown, warm and cold.

    python3 dev.py bench startup [--repeats 3]

Each launch is a new process that imports aestudio, builds the main window on the bundled
fashion-10k set, shows it (offscreen) and processes the first events. It prints its own split:
Python start + ``import aestudio.app``, the window build (where torch, PySide6 and pyqtgraph are
imported) and the first show.

* warm: the usual second launch (bytecode compiled, files in the OS cache; the launches may write
  bytecode even where the environment sets PYTHONDONTWRITEBYTECODE);
* no bytecode: ``PYTHONPYCACHEPREFIX`` points at an empty folder, so every module is compiled
  again, as on the first launch after an install that did not compile bytecode.

The two alternate. The biggest imports of the last warm launch are listed (``-X importtime``).
The OS file cache cannot be emptied without root, so a first launch after a reboot (every
library read from disk) is slower still than "no bytecode".
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import time
t0 = time.perf_counter()
import os
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["AESTUDIO_SKIP_PROBE"] = "1"
from aestudio.app import create_window
t1 = time.perf_counter()
window = create_window("fashion-10k")
t2 = time.perf_counter()
window.show()
from PySide6.QtWidgets import QApplication
QApplication.processEvents()
t3 = time.perf_counter()
print(f"SPLIT {t1 - t0:.3f} {t2 - t1:.3f} {t3 - t2:.3f}")
"""


def launch(env: dict[str, str], importtime: bool = False) -> tuple[float, list[float], str]:
    args = [sys.executable, *(["-X", "importtime"] if importtime else []), "-c", CHILD]
    t = time.perf_counter()
    out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - t
    line = next((l for l in out.stdout.splitlines() if l.startswith("SPLIT")), None)
    if line is None:
        raise RuntimeError(out.stderr[-2000:])
    return wall, [float(v) for v in line.split()[1:]], out.stderr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    base = {**os.environ, "AESTUDIO_SETTINGS_DIR": tempfile.mkdtemp(prefix="aestudio-startup-")}
    # A launch writes bytecode, as Python does by default: an environment that forbids it (this
    # project's sandboxes set PYTHONDONTWRITEBYTECODE) left aestudio's own 84 modules compiled from
    # source at every "warm" launch, 0.22 s of each
    base.pop("PYTHONDONTWRITEBYTECODE", None)
    launch(base)  # bytecode written, files cached
    warm, cold = [], []
    for r in range(args.repeats):
        wall, split, _ = launch(base)
        warm.append(wall)
        print(f"  warm {r + 1}: {wall:.2f} s (start + import {split[0]:.2f}, window {split[1]:.2f}, show {split[2]:.2f})",
              flush=True)
        with tempfile.TemporaryDirectory() as empty:
            wall, split, _ = launch({**base, "PYTHONPYCACHEPREFIX": empty})
        cold.append(wall)
        print(f"  no bytecode {r + 1}: {wall:.2f} s (start + import {split[0]:.2f}, window {split[1]:.2f}, "
              f"show {split[2]:.2f})", flush=True)
    _, _, stderr = launch(base, importtime=True)
    rows = []
    for line in stderr.splitlines():
        parts = line.split("|")
        if line.startswith("import time:") and len(parts) == 3 and parts[1].strip().isdigit():
            name = parts[2].rstrip()
            if len(name) - len(name.lstrip()) <= 2:  # top-level imports only
                rows.append((int(parts[1]), name.strip()))
    print("biggest top-level imports of a warm launch (cumulative):")
    for us, name in sorted(rows, reverse=True)[:6]:
        print(f"  {us / 1e6:6.2f} s  {name}")
    print(f"window shown, warm:        median {statistics.median(warm):.2f} s (min {min(warm):.2f}, max {max(warm):.2f})")
    print(f"window shown, no bytecode: median {statistics.median(cold):.2f} s (min {min(cold):.2f}, max {max(cold):.2f})")
    print(f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
