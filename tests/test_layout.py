"""The default dock layout: tabbed docks show one tab bar per group, nothing stale.

Checked in a fresh process, as the studio starts: there the first tab group's original bar
stayed visible over the dock area's corner (inside pytest-qt's application it did not show)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

SCRIPT = r"""
import json, time
from PySide6.QtWidgets import QApplication, QTabBar
from aestudio.app import create_window
w = create_window("digits")
w.resize(1400, 900)
w.show()
end = time.time() + 1.5
while time.time() < end:
    QApplication.processEvents()
    time.sleep(0.01)
bars = [b for b in w.findChildren(QTabBar) if b.parent() is w and b.isVisible()]
print(json.dumps(sorted([b.tabText(i) for i in range(b.count())] for b in bars)))
w.close()
"""


def test_each_dock_tab_group_shows_one_tab_bar(tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", AESTUDIO_SETTINGS_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    groups = json.loads(out.stdout.strip().splitlines()[-1])
    assert groups == [["Latent map", "Codes vs prior"], ["Loss curves", "Runs", "Look inside"]]
