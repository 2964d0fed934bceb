"""Shared test setup: headless Qt, isolated settings, and finding widgets by accessible name."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path_factory, monkeypatch):
    """Every test gets its own empty studio settings (window layout, recent runs, last configs); the
    cache of decoded folders is off (tests that want it point AESTUDIO_FOLDER_CACHE at a temp folder)."""
    monkeypatch.setenv("AESTUDIO_SETTINGS_DIR", str(tmp_path_factory.mktemp("settings")))
    monkeypatch.setenv("AESTUDIO_FOLDER_CACHE", "off")


@pytest.fixture(autouse=True)
def _collect_qt_garbage_on_the_gui_thread(request):
    """Free the windows a test leaves behind here, on the GUI thread, at the end of each test.

    pyqtgraph items and panels form reference cycles, so a closed window's Qt objects wait for
    Python's cyclic GC. If that GC happens to run on a worker thread (any allocation can trigger
    it), a QWidget destructor runs there, takes Qt's connection lock and waits for the GIL while
    the GUI thread holds the GIL and waits for that lock: a deadlock (seen as a hung test run,
    diagnosed with py-spy). Collecting here keeps such garbage off the workers.
    """
    import gc

    yield
    if "qtbot" in request.fixturenames:  # only tests that made widgets leave Qt garbage
        gc.collect()
    elif not gc.isenabled() and gc.get_count()[0] > gc.get_threshold()[0]:
        gc.collect()  # the studio's GUI-thread collector (aestudio/ui/gc_guard.py) only runs in Qt's loop


@pytest.fixture(autouse=True)
def _no_modal_dialogs(monkeypatch):
    """A modal dialog in a headless test would wait forever where pytest-timeout cannot interrupt it
    (Qt's nested event loop never returns to Python): fail at once instead. Tests that expect a
    dialog patch it themselves (or answer through the window's `ask` hook)."""
    try:
        from PySide6.QtWidgets import QColorDialog, QDialog, QFileDialog, QInputDialog, QMessageBox
    except ImportError:  # pragma: no cover - core-only environments
        return

    def refuse(*args, **kwargs):
        raise AssertionError("a modal dialog opened during a test (answer it through a patch or window.ask)")

    monkeypatch.setattr(QDialog, "exec", refuse)
    monkeypatch.setattr(QMessageBox, "exec", refuse)
    for name in ("question", "warning", "critical", "information"):
        monkeypatch.setattr(QMessageBox, name, staticmethod(refuse))
    for name in ("getOpenFileName", "getOpenFileNames", "getSaveFileName", "getExistingDirectory"):
        monkeypatch.setattr(QFileDialog, name, staticmethod(refuse))
    monkeypatch.setattr(QColorDialog, "getColor", staticmethod(refuse))
    for name in ("getText", "getInt", "getDouble", "getItem"):
        monkeypatch.setattr(QInputDialog, name, staticmethod(refuse))


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's 8x8 digits as an ImageSet (read-only use: tests take subsets, never edit it)."""
    from aestudio.core.datasets import load_dataset

    return load_dataset("digits")


@pytest.fixture(scope="module")
def torch_one_thread():
    """Tiny models train fastest on one thread (and do not fight the GUI or other threads for cores)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def find_all_by_name(root, name: str, cls=None) -> list:
    """Widgets under `root` (and `root` itself) whose accessible name is `name`."""
    from PySide6.QtWidgets import QWidget

    cls = cls or QWidget
    found = [root] if isinstance(root, cls) and root.accessibleName() == name else []
    found += [w for w in root.findChildren(cls) if w.accessibleName() == name]
    return found


def find_by_name(root, name: str, cls=None):
    """The widget under `root` with accessible name `name` (a visible one if there are several)."""
    found = find_all_by_name(root, name, cls)
    if not found:
        raise LookupError(f"no widget with accessible name {name!r}")
    visible = [w for w in found if w.isVisible()]
    return (visible or found)[0]


@pytest.fixture
def by_name():
    return find_by_name
