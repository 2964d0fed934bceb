"""File > Export in the studio, and "Show PyTorch code" beside the model builder.

Each export is a menu action doing what its command does (aestudio/core/export.py):

    Codes…            aestudio encode       (.csv or .npy, with file names and labels)
    Projector…        aestudio encode --format projector
    Reconstructions…  aestudio reconstruct  (denoised images for a model trained with noise)
    ONNX…             aestudio export --onnx
    TorchScript…      aestudio export --torchscript
    Show PyTorch code aestudio code         (a read-only window with Copy and Save…)

They work on the current model (the latest snapshot: a trained, or opened, model) and the whole
current data set. The work runs on a pool thread (`workers.tasks.Task`); its progress shows in the
status bar, and the message bar says where the files went or why nothing was written.

Where to write comes from `window.choose_export_path(kind, suggested) -> path` ("" cancels) when a
test (or an embedding application) sets it, else from a file dialog. Kinds: codes, projector,
reconstructions, onnx, torchscript, code.
"""
from __future__ import annotations

import os
from functools import partial
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtGui import QFont, QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..core import export as core_export
from ..core.codegen import generate_code
from ..workers.tasks import Task, start

# kind -> (menu text, tip, file or folder, suggested name)
EXPORTS = {
    "codes": ("&Codes…", "Write the codes of every image of the current data set, with file names and labels "
                         "(.csv: file,label,z1..zk; .npy: the matrix, and NAME.meta.csv beside it).", "file", "codes.csv"),
    "projector": ("&Projector…", "Write the codes as TensorBoard Embedding Projector files (vectors, metadata, "
                                 "a sprite of thumbnails and projector_config.pbtxt) into a folder.", "folder", "projector"),
    "reconstructions": ("&Reconstructions…", "Write the model's output for every image as PNG files named after "
                                             "their sources (denoised images when the model was trained with noise).",
                        "folder", "reconstructions"),
    "onnx": ("&ONNX…", "Write encoder.onnx (input 'images') and decoder.onnx (input 'codes') with a free batch size, "
                       "each checked against PyTorch first. Needs the onnx package.", "folder", "onnx"),
    "torchscript": ("&TorchScript…", "Write encoder.pt and decoder.pt (traced TorchScript), each checked against "
                                     "PyTorch first.", "folder", "torchscript"),
}
TITLES = {"codes": "codes", "projector": "Embedding Projector files", "reconstructions": "reconstructions",
          "onnx": "ONNX files", "torchscript": "TorchScript files", "code": "the PyTorch code"}


# ---- the work (pool thread) -----------------------------------------------------------------------
def _codes(model, data, path, progress=None, cancel=None):
    fmt = core_export.code_format(path)
    core_export.prepare_file(path)
    codes = core_export.encode_set(model, data, progress=progress, cancel=cancel)
    return core_export.write_codes(path, codes, data, fmt)


def _projector(model, data, path, progress=None, cancel=None):
    core_export.prepare_dir(path)
    codes = core_export.encode_set(model, data, progress=progress, cancel=cancel)
    return core_export.write_projector(path, codes, data)


def _reconstructions(model, data, path, noise, progress=None, cancel=None):
    return core_export.write_reconstructions(path, model, data, noise, progress=progress, cancel=cancel)


def _onnx(model, path, progress=None, cancel=None):  # seconds at most: not cancelled half-way
    return [c.path for c in core_export.export_onnx(model, path, progress=progress)]


def _torchscript(model, path, progress=None, cancel=None):
    return [c.path for c in core_export.export_torchscript(model, path, progress=progress)]


def _write_text(path: str, text: str) -> list[Path]:
    target = core_export.prepare_file(path)
    core_export.write_atomic(target, text.encode("utf-8"))
    return [target]


# ---- the controller ------------------------------------------------------------------------------------
class ExportController(QObject):
    """The export actions of one main window (see the module documentation)."""

    finished = Signal(str, object)  # kind, list of written paths
    failed = Signal(str, str)  # kind, message
    codeReady = Signal(str)  # the text shown in the code window

    def __init__(self, window):
        super().__init__(window)
        self.window = window
        self.actions = {}
        self.task: Task | None = None
        self._tasks: list[Task] = []
        self.code_dialog: CodeDialog | None = None
        self.progress = QProgressBar()
        self.progress.setAccessibleName("Export progress")
        self.progress.setMaximumWidth(160)
        self.progress.setTextVisible(True)
        self.progress.hide()
        self.cancel_button = QPushButton("Cancel export")
        self.cancel_button.setAccessibleName("Cancel export")
        self.cancel_button.setToolTip("Stop the export; files already written stay.")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.hide()
        window.statusBar().addPermanentWidget(self.progress)
        window.statusBar().addPermanentWidget(self.cancel_button)

    # ---- paths ----
    def _suggested(self, kind: str) -> str:
        base = Path(str(self.window.settings.value("export/last_dir", "") or
                        self.window.settings.value("runs/last_dir", "") or Path.cwd()))
        name = "model.py" if kind == "code" else EXPORTS[kind][3]
        return str(base / name)

    def choose_path(self, kind: str) -> str:
        """Where to write `kind` ("" when cancelled): the window's hook, else a file dialog."""
        suggested = self._suggested(kind)
        hook = getattr(self.window, "choose_export_path", None)
        if hook is not None:
            return str(hook(kind, suggested) or "")
        title = f"Export {TITLES[kind]}"
        if kind == "code":
            path, _ = QFileDialog.getSaveFileName(self.window, title, suggested, "Python file (*.py)")
        elif kind == "codes":
            path, _ = QFileDialog.getSaveFileName(self.window, title, suggested,
                                                  "CSV table (*.csv);;NumPy array (*.npy)")
        else:
            path = QFileDialog.getExistingDirectory(self.window, f"{title}: choose a folder",
                                                    str(Path(suggested).parent))
        return path or ""

    # ---- exports ----
    def export(self, kind: str, path: str | os.PathLike | None = None) -> Task | None:
        """Start exporting `kind` to `path` (None: ask). Returns the task, or None when nothing started."""
        w = self.window
        snap = w.state.snapshot
        if snap is None or (w.state.dataset is None and kind in ("codes", "projector", "reconstructions")):
            self._fail(kind, "Train a model (or open a run) before exporting.", "warning")
            return None
        if self.task is not None and not self.task.finished_event.is_set():
            self._fail(kind, "Another export is still running; wait for it to finish.", "warning")
            return None
        path = str(path) if path is not None else self.choose_path(kind)
        if not path:
            w.statusBar().showMessage("Export cancelled")
            return None
        model, data = snap.model, w.state.dataset
        if kind == "codes":
            task = Task(_codes, model, data, path, progress=True, cancellable=True)
        elif kind == "projector":
            task = Task(_projector, model, data, path, progress=True, cancellable=True)
        elif kind == "reconstructions":
            trained = getattr(snap, "train_config", None) or w.state.train_config
            task = Task(_reconstructions, model, data, path, trained.noise, progress=True, cancellable=True)
        elif kind == "onnx":
            task = Task(_onnx, model, path, progress=True, cancellable=True)
        elif kind == "torchscript":
            task = Task(_torchscript, model, path, progress=True, cancellable=True)
        else:
            raise ValueError(f"unknown export {kind!r}")
        return self._start(kind, path, task)

    def _start(self, kind: str, path: str, task: Task) -> Task:
        task.signals.done.connect(partial(self._done, kind, path))
        task.signals.failed.connect(partial(self._failed, kind))
        task.signals.progress.connect(self._on_progress)
        self.task = task
        self._tasks = [t for t in self._tasks if not t.finished_event.is_set()] + [task]
        for action in self.actions.values():
            action.setEnabled(False)
        self.progress.setRange(0, 0)  # busy until the first progress report
        self.progress.show()
        self.cancel_button.show()
        self.window.statusBar().showMessage(f"Exporting {TITLES[kind]} to {path} …")
        start(task)
        return task

    @Slot(int, int)
    def _on_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(min(done, max(total, 1)))

    @Slot()
    def cancel(self) -> None:
        """Ask the running export to stop (at its next batch or file)."""
        if self.task is not None:
            self.task.cancel()

    def _finish(self) -> None:
        self.task = None
        self.progress.hide()
        self.cancel_button.hide()
        self._update_enabled()

    def _done(self, kind: str, path: str, written) -> None:
        self._finish()
        written = list(written or [])
        self.window.settings.setValue("export/last_dir", str(Path(path).parent if kind in ("codes", "code") else path))
        where = path if kind not in ("codes", "code") else ", ".join(str(p) for p in written)
        count = f"{len(written):,} files" if kind == "reconstructions" else TITLES[kind]
        text = f"Exported {count} to {where}"
        self.window.statusBar().showMessage(text)
        self.window.show_message(text + ".", "info", 8000)
        self.finished.emit(kind, written)

    def _failed(self, kind: str, message: str) -> None:
        cancelled = self.task is not None and self.task.cancel_event.is_set()
        self._finish()
        if cancelled:
            self._fail(kind, f"Export of {TITLES[kind]} cancelled.", "info")
        else:
            self._fail(kind, f"Could not export {TITLES[kind]}: {message}", "error")

    def _fail(self, kind: str, message: str, level: str) -> None:
        self.window.show_message(message, level)
        self.window.statusBar().clearMessage()
        self.failed.emit(kind, message)

    # ---- enabled state ----
    @Slot()
    def _update_enabled(self, *_args) -> None:
        has_model = self.window.state.snapshot is not None
        busy = self.task is not None
        for action in self.actions.values():
            action.setEnabled(has_model and not busy)

    # ---- the code window ----
    @Slot()
    def show_code(self) -> "CodeDialog":
        """Open (or raise) the window with the PyTorch code of the model in the builder."""
        w = self.window
        flush = getattr(getattr(w, "builder", None), "flush", None)
        if callable(flush):
            flush()
        config = w.state.model_config
        if self.code_dialog is None:
            self.code_dialog = CodeDialog(self, w)
        dialog = self.code_dialog
        dialog.show_pending()
        dialog.show()
        dialog.raise_()
        problems = config.problems()
        if problems:
            dialog.show_problem("This model cannot be built yet: " + "; ".join(problems))
            return dialog
        task = Task(generate_code, config)  # builds and checks the model: off the GUI thread
        task.signals.done.connect(partial(self._code_done, task))
        task.signals.failed.connect(partial(self._code_failed, task))
        self._code_task = task
        self._tasks = [t for t in self._tasks if not t.finished_event.is_set()] + [task]
        start(task)
        return dialog

    def _code_done(self, task: Task, text) -> None:
        if task is not getattr(self, "_code_task", None) or self.code_dialog is None:
            return  # a newer request replaced this one
        self.code_dialog.show_code(str(text))
        self.codeReady.emit(str(text))

    def _code_failed(self, task: Task, message: str) -> None:
        if task is getattr(self, "_code_task", None) and self.code_dialog is not None:
            self.code_dialog.show_problem(f"Could not write the code: {message}")

    def save_code(self, text: str, path: str | None = None) -> Path | None:
        path = path if path is not None else self.choose_path("code")
        if not path:
            return None
        try:
            written = _write_text(path, text)
        except core_export.ExportError as e:
            self._fail("code", f"Could not save the code: {e}", "error")
            return None
        self._done("code", path, written)
        return written[0]


class CodeDialog(QDialog):
    """The model's PyTorch code, read-only, with Copy and Save… (a window, not modal)."""

    def __init__(self, controller: ExportController, parent: QWidget | None = None):
        super().__init__(parent)
        self.controller = controller
        self.setWindowTitle("PyTorch code of the model")
        self.setAccessibleName("PyTorch code")
        self.setModal(False)
        self.resize(820, 700)
        lay = QVBoxLayout(self)
        self.note = QLabel("The model in the builder as one standalone PyTorch file (torch and safetensors only). "
                           "Run it with a run folder as its argument to load that run's weights.")
        self.note.setWordWrap(True)
        lay.addWidget(self.note)
        self.text = QPlainTextEdit(self)
        self.text.setReadOnly(True)
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.text.setAccessibleName("Code text")
        font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        font.setStyleHint(QFont.StyleHint.Monospace)
        self.text.setFont(font)
        lay.addWidget(self.text, 1)
        buttons = QDialogButtonBox(self)
        self.copy_button = buttons.addButton("Copy", QDialogButtonBox.ButtonRole.ActionRole)
        self.copy_button.setAccessibleName("Copy code")
        self.copy_button.setToolTip("Copy the whole file to the clipboard.")
        self.save_button = buttons.addButton("Save…", QDialogButtonBox.ButtonRole.ActionRole)
        self.save_button.setAccessibleName("Save code")
        self.save_button.setToolTip("Save the file as model.py (or any name).")
        close = buttons.addButton(QDialogButtonBox.StandardButton.Close)
        close.clicked.connect(self.close)
        self.copy_button.clicked.connect(self.copy)
        self.save_button.clicked.connect(self.save)
        lay.addWidget(buttons)
        self.code = ""

    def show_pending(self) -> None:
        self.code = ""
        self.text.setPlainText("Writing the code …")
        self.copy_button.setEnabled(False)
        self.save_button.setEnabled(False)

    @Slot(object)
    def show_code(self, text: str) -> None:
        self.code = str(text)
        self.text.setPlainText(self.code)
        self.copy_button.setEnabled(True)
        self.save_button.setEnabled(True)

    def show_problem(self, message: str) -> None:
        self.code = ""
        self.text.setPlainText(message)
        self.copy_button.setEnabled(False)
        self.save_button.setEnabled(False)

    @Slot()
    def copy(self) -> None:
        if self.code:
            QGuiApplication.clipboard().setText(self.code)
            self.controller.window.statusBar().showMessage("Copied the code to the clipboard")

    @Slot()
    def save(self) -> Path | None:
        return self.controller.save_code(self.code) if self.code else None


# ---- installing ----------------------------------------------------------------------------------------
def install(window) -> ExportController:
    """Add File > Export (and "Show PyTorch code" under the model builder) to `window`; returns the
    controller (window.export_actions)."""
    controller = ExportController(window)
    window.export_actions = controller
    if not hasattr(window, "choose_export_path"):
        window.choose_export_path = None
    file_menu = window.menuBar().actions()[0].menu()
    menu = file_menu.addMenu("&Export")
    menu.menuAction().setToolTip("Take the current model and its codes out of the studio.")
    for kind, (text, tip, _what, _name) in EXPORTS.items():
        action = window._action(text, partial(_trigger, controller, kind), None, tip)
        menu.addAction(action)
        controller.actions[kind] = action
    menu.addSeparator()
    code_action = window._action("Show PyTorch &code…", controller.show_code, None,
                                 "The model in the builder as one standalone PyTorch file you can read, copy or save.",
                                 "fa5s.code")
    menu.addAction(code_action)
    controller.code_action = code_action
    # the export menu sits above Quit
    actions = file_menu.actions()
    quit_action = getattr(window, "quit_action", None)
    if quit_action in actions:
        file_menu.removeAction(menu.menuAction())
        index = actions.index(quit_action)
        before = actions[index - 1] if index > 0 and actions[index - 1].isSeparator() else quit_action
        file_menu.insertMenu(before, menu)
    _add_code_button(window, controller)
    window.state.snapshotChanged.connect(controller._update_enabled)
    controller._update_enabled()
    return controller


def _trigger(controller: ExportController, kind: str, *_args) -> None:
    controller.export(kind)


def _add_code_button(window, controller: ExportController) -> None:
    """A "Show PyTorch code" button under the builder, in the builder's dock."""
    dock = getattr(window, "docks", {}).get("builder")
    panel = dock.widget() if dock is not None else None
    if panel is None:
        return
    host = QWidget()
    host.setObjectName("BuilderHost")
    lay = QVBoxLayout(host)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.setSpacing(0)
    lay.addWidget(panel, 1)
    row = QHBoxLayout()
    row.setContentsMargins(8, 2, 8, 4)
    row.addStretch(1)
    button = QPushButton("Show PyTorch code")
    button.setAccessibleName("Show PyTorch code")
    button.setToolTip("See the model in the builder as one standalone PyTorch file: the exact layers, "
                      "ready to copy into your own code.")
    button.clicked.connect(controller.show_code)
    row.addWidget(button)
    lay.addLayout(row)
    dock.setWidget(host)
    controller.code_button = button
