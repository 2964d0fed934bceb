"""Starting the studio: checks that a window can open, creates the QApplication and the main window.

    create_window(data)  -> MainWindow, ready but not shown and without an event loop (tests, scripts)
    run_studio(data)     -> exit status: shows the window and runs the event loop

On Linux, before Qt is allowed to abort with "Could not load the Qt platform plugin xcb", the
display and the X11 client libraries Qt needs are checked; a missing piece is reported with the
Debian/Ubuntu packages to install, and the studio exits with status 1.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import subprocess
import sys
import traceback
from pathlib import Path

APP_NAME = "aestudio"
ORG_NAME = "aestudio"
DISPLAY_NAME = "aestudio"
DEFAULT_DATA = "fashion-10k"

# X11 client libraries the Qt xcb platform plugin loads, and the Debian/Ubuntu package of each.
XCB_LIBRARIES = {
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-xinerama.so.0": "libxcb-xinerama0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libOpenGL.so.0": "libopengl0",
    "libfontconfig.so.1": "libfontconfig1",
    "libdbus-1.so.3": "libdbus-1-3",
}
# Checked with ctypes when `ldd` cannot tell (the libraries Qt >= 6.5 needs that are most often absent).
CORE_XCB = ("libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libxcb-image.so.0",
            "libxcb-render-util.so.0", "libxcb-randr.so.0", "libxcb-shape.so.0", "libxcb-xkb.so.1",
            "libxkbcommon-x11.so.0")
APT_HINT = ("sudo apt install libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 "
            "libxcb-randr0 libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 libxkbcommon-x11-0")


# ---- platform checks (no Qt GUI objects yet) --------------------------------------------------
def _can_load(soname: str) -> bool:
    try:
        ctypes.CDLL(soname)
        return True
    except OSError:
        return False


def _qt_xcb_plugin_files() -> list[Path]:
    try:
        import PySide6
    except ImportError:
        return []
    root = Path(PySide6.__file__).resolve().parent / "Qt"
    return [p for p in (root / "plugins" / "platforms" / "libqxcb.so", root / "lib" / "libQt6XcbQpa.so.6") if p.is_file()]


def missing_xcb_libraries() -> list[str]:
    """Shared libraries the Qt xcb plugin needs that this system lacks (sonames)."""
    missing: list[str] = []
    ldd = shutil.which("ldd")
    files = _qt_xcb_plugin_files()
    if ldd and files:
        for f in files:
            try:
                out = subprocess.run([ldd, str(f)], capture_output=True, text=True, timeout=10, check=False).stdout
            except (OSError, subprocess.SubprocessError):
                break
            for line in out.splitlines():
                if "not found" in line:
                    name = line.split("=>")[0].strip()
                    if name and name not in missing:
                        missing.append(name)
        else:
            return missing
    return [lib for lib in CORE_XCB if not _can_load(lib)]


def display_problem() -> str | None:
    """Why no window can open here (a message for the terminal), or None if it looks fine."""
    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM"):
        return None
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        return ("aestudio: error: no display found (neither DISPLAY nor WAYLAND_DISPLAY is set), so the studio "
                "window cannot open.\n"
                "  Run it inside a desktop session, forward X11 over ssh (ssh -X), or use the command line:\n"
                "    aestudio train --data fashion-10k --out runs/first   /   aestudio evaluate runs/first\n"
                "  (QT_QPA_PLATFORM=offscreen renders without a screen, for scripts and tests.)")
    if os.environ.get("WAYLAND_DISPLAY"):
        return None  # Qt uses its Wayland plugin; the X11 libraries are not needed
    missing = missing_xcb_libraries()
    if not missing:
        return _probe_x11()
    packages = sorted({XCB_LIBRARIES.get(m, m) for m in missing})
    return ("aestudio: error: Qt cannot open a window because system libraries for X11 are missing: "
            + ", ".join(missing) + ".\n"
            "  On Debian/Ubuntu install them with:\n"
            f"    sudo apt install {' '.join(packages)}\n"
            "  (the usual full set: " + APT_HINT + ")\n"
            "  On Fedora: sudo dnf install xcb-util-cursor xcb-util-wm xcb-util-keysyms libxkbcommon-x11")


def _probe_x11() -> str | None:
    """Try to start Qt on $DISPLAY in a child process: a display that is set but unreachable makes Qt
    abort, which must not happen to the studio itself. Skipped when AESTUDIO_SKIP_PROBE is set."""
    if os.environ.get("AESTUDIO_SKIP_PROBE"):
        return None
    code = "import sys\nfrom PySide6.QtGui import QGuiApplication\nQGuiApplication(sys.argv[:1])\nprint('ok')\n"
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return None  # cannot tell; let Qt try
    if out.returncode == 0 and out.stdout.strip().endswith("ok"):
        return None
    lines = [ln for ln in out.stderr.strip().splitlines() if ln.strip()]
    detail = lines[0] if lines else f"exit status {out.returncode}"
    return (f"aestudio: error: Qt cannot open a window on display {os.environ.get('DISPLAY')!r}: {detail}\n"
            "  Check that an X server is running there (over ssh use `ssh -X`), or use the command line:\n"
            "    aestudio train --data fashion-10k --out runs/first   /   aestudio evaluate runs/first")


# ---- the application ------------------------------------------------------------------------
def ensure_app():
    """The QApplication (created if needed), with names, icon, style and pyqtgraph options set."""
    # Every window needs torch and numpy. Imported before PySide6, they escape PySide6's import hook,
    # which reads the source of each module imported after it, looking for "PySide6": torch's 725
    # modules and numpy's 82 were read at every launch (1,363 modules in all, 0.21 s).
    import numpy  # noqa: F401
    import torch  # noqa: F401
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        QApplication.setApplicationName(APP_NAME)
        QApplication.setOrganizationName(ORG_NAME)
        QApplication.setApplicationDisplayName(DISPLAY_NAME)
        QApplication.setDesktopFileName("aestudio")
        app = QApplication(sys.argv[:1])
    else:
        app.setApplicationName(APP_NAME)
        app.setOrganizationName(ORG_NAME)
    import pyqtgraph as pg

    from .ui import style

    pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)
    icon = style.app_icon()
    if not icon.isNull():
        app.setWindowIcon(icon)
    style.apply_app_style(app)
    return app


def create_window(data: str | None = None):
    """The main window, ready to show (no event loop). `data` is a data-set spec (CLI's --data);
    None means the one used last time, else fashion-10k. Bundled sets load at once; folders and
    full sets load in the background with progress."""
    app = ensure_app()
    from .ui import gc_guard
    from .workers.priority import compute_alone

    compute_alone()  # before the first model is built: the GUI thread never gets a team (workers/priority.py)

    gc_guard.install(app)  # Qt objects in reference cycles are freed on the GUI thread only
    from .core.datasets import DatasetError, bundled_names
    from .ui.main_window import MainWindow
    from .ui.state import StudioState

    state = StudioState()
    window = MainWindow(state)
    spec = data or window.remembered_spec() or DEFAULT_DATA
    if spec in bundled_names():
        try:
            window.data_panel.load_now(spec)
        except DatasetError as e:
            window.show_message(f"Could not load {spec}: {e}", "error")
            if spec != DEFAULT_DATA:
                window.data_panel.load_now(DEFAULT_DATA)
    else:
        window.data_panel.load(spec)
    return window


def _install_excepthook(window) -> None:
    """Unexpected exceptions in slots or event handlers: show them, keep the studio alive."""
    previous = sys.excepthook

    def hook(etype, value, tb):
        text = "".join(traceback.format_exception(etype, value, tb))
        sys.stderr.write(text)
        if issubclass(etype, KeyboardInterrupt):
            previous(etype, value, tb)
            return
        try:
            from PySide6.QtWidgets import QMessageBox

            from .core.errors import user_message

            box = QMessageBox(window)
            box.setIcon(QMessageBox.Icon.Critical)
            box.setWindowTitle("Unexpected error")
            msg = user_message(value)
            box.setText(msg or f"Something went wrong: {etype.__name__}: {value}")
            box.setInformativeText("The studio is still running; you can keep working. "
                                   "If this keeps happening, please report it with the details below.")
            box.setDetailedText(text)
            box.open()  # window-modal, not blocking the event loop
        except Exception:  # noqa: BLE001 - never fail inside the hook
            previous(etype, value, tb)

    sys.excepthook = hook


#: After the window shows, the first training's one-time waits are paid on a background thread
#: instead (`warm_up_studio`).
WARM_UP_DELAY_MS = 1500


_warm_task = None  # kept: a task whose signals are garbage-collected cannot report


def warm_up_studio() -> None:
    """The first training's one-time costs, paid before it: torch imports its compiler stack for
    the first optimizer (`core.training.warm_up`), and the latent map of the first snapshot needs
    scikit-learn's PCA, 0.9 s of imports during which no other Python thread runs (the training
    thread made about 300 images in the second after its first snapshot, instead of 2,900)."""
    from .core.training import warm_up

    warm_up()
    import sklearn.decomposition  # noqa: F401


def start_warm_up():
    """Start `warm_up_studio` on a background thread (the studio does so once its window shows)."""
    global _warm_task
    from .workers.tasks import Task, start

    _warm_task = start(Task(warm_up_studio))
    return _warm_task


def run_studio(data: str | None = None) -> int:
    """Open the studio and run until it is closed. Returns the exit status."""
    problem = display_problem()
    if problem:
        print(problem, file=sys.stderr)
        return 1
    app = ensure_app()
    window = create_window(data)
    _install_excepthook(window)
    window.show()
    try:
        import signal

        signal.signal(signal.SIGINT, lambda *_: window.close())  # Ctrl-C in the terminal closes cleanly
    except (ValueError, OSError):
        pass
    from PySide6.QtCore import QTimer

    tick = QTimer()  # lets Python see Ctrl-C while Qt's loop runs
    tick.start(250)
    tick.timeout.connect(lambda: None)
    QTimer.singleShot(WARM_UP_DELAY_MS, start_warm_up)
    status = int(app.exec())
    from PySide6.QtCore import QThreadPool

    QThreadPool.globalInstance().waitForDone(3000)  # let background tasks finish before teardown
    return status


__all__ = ["create_window", "display_problem", "ensure_app", "missing_xcb_libraries", "run_studio"]
