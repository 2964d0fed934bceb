"""Dependencies point one way: the core never imports Qt, so it runs on a headless GPU box."""
from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import aestudio.core

CORE = Path(aestudio.core.__file__).parent


def test_core_imports_with_qt_blocked():
    modules = sorted(f"aestudio.core.{m.name}" for m in pkgutil.walk_packages([str(CORE)]))
    modules.append("aestudio.cli")
    code = (
        "import sys\n"
        "for name in ('PySide6', 'pyqtgraph', 'superqt', 'qtawesome', 'shiboken6'):\n"
        "    sys.modules[name] = None  # any import of these now fails\n"
        f"import importlib\nfor m in {modules!r}:\n    importlib.import_module(m)\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_no_core_file_mentions_a_gui_toolkit():
    for path in CORE.rglob("*.py"):
        text = path.read_text()
        for name in ("PySide6", "pyqtgraph", "superqt", "qtawesome"):
            assert name not in text, f"{path.relative_to(CORE)} mentions {name}"


def test_importing_aestudio_shortens_openmp_spinning_unless_the_user_chose():
    code = "import os, aestudio, torch; print(os.environ.get('GOMP_SPINCOUNT'))"
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.stdout.strip() == "20000", out.stderr[-1000:]
    env["GOMP_SPINCOUNT"] = "7"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.stdout.strip() == "7"
    del env["GOMP_SPINCOUNT"]
    env["OMP_WAIT_POLICY"] = "ACTIVE"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.stdout.strip() == "None"
