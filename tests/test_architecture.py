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


UI = CORE.parent / "ui"


def _imports(tree) -> set[str]:
    import ast

    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_ui_module_imports_torch():
    """Widgets receive numpy; computing with torch happens in the core and the workers (issue 8)."""
    import ast

    files = sorted(UI.rglob("*.py"))
    assert len(files) > 10
    for path in files:
        names = _imports(ast.parse(path.read_text(), str(path)))  # module level and inside functions alike
        bad = sorted(n for n in names if n == "torch" or n.startswith("torch."))
        assert not bad, f"{path.relative_to(UI.parent)} imports {bad}"


def test_ui_modules_reach_torch_only_through_core_or_workers():
    """With torch blocked, importing any ui module fails only where the core or a worker imports torch."""
    modules = sorted(f"aestudio.ui.{m.name}" for m in pkgutil.walk_packages([str(UI)]))
    code = (
        "import sys, importlib, traceback\n"
        "sys.modules['torch'] = None\n"
        "bad = []\n"
        f"for m in {modules!r}:\n"
        "    try:\n"
        "        importlib.import_module(m)\n"
        "    except ImportError as e:\n"
        "        frames = [f for f in traceback.extract_tb(e.__traceback__) if '/aestudio/' in f.filename]\n"
        "        where = frames[-1].filename if frames else '?'\n"
        "        if '/aestudio/ui/' in where or 'torch' not in str(e):\n"
        "            bad.append((m, where, str(e)))\n"
        "print('bad', bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("bad []"), out.stdout[-2000:]
