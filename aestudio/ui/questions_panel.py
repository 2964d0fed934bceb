"""The Questions guide: course questions, each answered by a one-click experiment.

The list holds the questions of `aestudio.core.questions`. *Run experiment* runs the selected
question's experiment in a worker thread (`workers.tasks.Task`; the GUI thread only draws), shows
progress, then the answer (this run's numbers) and its figure. When it is done it sets up the
model it trained in the Model builder (through the studio state's setters) and opens the lab or
view that explores the question further, each when its box is ticked. *Save answer…* writes the
same answer.md / figure.png / numbers.json as `aestudio questions --run N --out DIR`.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

import numpy as np
from PySide6.QtCore import QCoreApplication, Qt, Slot
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QHBoxLayout, QLabel, QListWidget, QListWidgetItem,
                               QMainWindow, QProgressBar, QPushButton, QScrollArea, QSplitter, QTextBrowser,
                               QVBoxLayout, QWidget)

from ..core.questions import QUESTIONS, Cancelled, Question, get_question, run_question
from ..core.training import Control
from ..workers.tasks import Task, start
from .state import StudioState


def _run(number: int, budget: str, control: Control, progress: Callable[[int, int], None]) -> Any:
    """The worker's job: (number, answer), or (number, None) when stopped."""
    try:
        return number, run_question(number, budget=budget, progress=progress, control=control)
    except Cancelled:
        return number, None


def figure_pixmap(figure: np.ndarray) -> QPixmap:
    """An RGB uint8 (H, W, 3) array as a pixmap (GUI thread)."""
    a = np.ascontiguousarray(np.asarray(figure, np.uint8)[..., :3])
    h, w = a.shape[:2]
    img = QImage(a.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
    return QPixmap.fromImage(img)


class QuestionsPanel(QWidget):
    """The list of questions, the Run button, and the answer of the last run."""

    def __init__(self, state: StudioState, parent: QWidget | None = None,
                 open_lab: Callable[[str], Any] | None = None, open_view: Callable[[str], Any] | None = None):
        super().__init__(parent)
        self.state = state
        self.open_lab = open_lab
        self.open_view = open_view
        self.setAccessibleName("Questions guide")
        self._task: Task | None = None
        self._control: Control | None = None
        self.answers: dict[int, Any] = {}  # question number -> its last Answer
        self.last_answer = None
        self.last_question: Question | None = None
        # Chooses the folder to save an answer in: choose_folder(suggested) -> path ("" cancels).
        self.choose_folder: Callable[[str], str] | None = None

        self.list = QListWidget()
        self.list.setAccessibleName("Question list")
        self.list.setWordWrap(True)
        for q in QUESTIONS:
            item = QListWidgetItem(f"{q.number}. {q.title}")
            item.setData(Qt.ItemDataRole.UserRole, q.number)
            item.setToolTip(q.question + ("" if q.available else "\n(needs a model feature this build lacks)"))
            if not q.available:
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEnabled)
            self.list.addItem(item)
        self.list.currentItemChanged.connect(self._on_select)
        self.list.itemDoubleClicked.connect(self._on_double_click)

        self.heading = QLabel()
        self.heading.setWordWrap(True)
        self.heading.setTextFormat(Qt.TextFormat.RichText)
        self.run_button = QPushButton("Run experiment")
        self.run_button.setAccessibleName("Run experiment")
        self.run_button.setToolTip("Train the question's small models in the background, measure, and answer "
                                   "with this run's numbers.")
        self.run_button.clicked.connect(self.run_selected)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop the experiment after the current training step.")
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.stop)
        self.budget = QComboBox()
        self.budget.setAccessibleName("Experiment budget")
        self.budget.addItem("Normal", "normal")
        self.budget.addItem("Quick look", "tiny")
        self.budget.setToolTip("Normal: enough training for the answer to hold (under two minutes on two CPU "
                               "cores). Quick look: a few steps, to see what the experiment does.")
        self.setup_box = QCheckBox("Set up the model in the builder")
        self.setup_box.setChecked(True)
        self.setup_box.setToolTip("When the experiment is done, put the model it trained into the Model builder "
                                  "(and its training noise into the Training panel), ready to train on your data.")
        self.open_box = QCheckBox("Open the related lab or view")
        self.open_box.setChecked(True)
        self.open_box.setToolTip("When the experiment is done, open the lab or panel that explores this question.")
        self.save_button = QPushButton("Save answer…")
        self.save_button.setToolTip("Write answer.md, figure.png, numbers.json and answer.html into a folder.")
        self.save_button.setEnabled(False)
        self.save_button.clicked.connect(self._ask_save)
        self.progress = QProgressBar()
        self.progress.setAccessibleName("Question progress")
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(8)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.answer = QTextBrowser()
        self.answer.setAccessibleName("Answer")
        self.answer.setOpenLinks(False)
        self.figure = QLabel()
        self.figure.setAccessibleName("Answer figure")
        self.figure.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        fig_scroll = QScrollArea()
        fig_scroll.setWidget(self.figure)
        fig_scroll.setWidgetResizable(True)

        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.stop_button)
        buttons.addWidget(self.budget)
        buttons.addStretch(1)
        buttons.addWidget(self.save_button)
        boxes = QHBoxLayout()
        boxes.addWidget(self.setup_box)
        boxes.addWidget(self.open_box)
        boxes.addStretch(1)
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.heading)
        rl.addLayout(buttons)
        rl.addLayout(boxes)
        rl.addWidget(self.progress)
        rl.addWidget(self.status)
        answer_split = QSplitter(Qt.Orientation.Vertical)
        answer_split.addWidget(self.answer)
        answer_split.addWidget(fig_scroll)
        answer_split.setStretchFactor(0, 2)
        answer_split.setStretchFactor(1, 3)
        answer_split.setSizes([250, 450])  # the figure gets the larger share
        rl.addWidget(answer_split, 1)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.list)
        split.addWidget(right)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 3)
        split.setSizes([300, 800])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(split)
        self.list.setCurrentRow(0)

    # ---- selection ----
    @property
    def busy(self) -> bool:
        return self._task is not None

    def selected(self) -> Question:
        item = self.list.currentItem()
        return get_question(item.data(Qt.ItemDataRole.UserRole) if item is not None else 1)

    def select(self, number: int) -> None:
        for i in range(self.list.count()):
            if self.list.item(i).data(Qt.ItemDataRole.UserRole) == number:
                self.list.setCurrentRow(i)
                return
        raise KeyError(f"there is no question {number}")

    @Slot(QListWidgetItem, QListWidgetItem)
    def _on_select(self, item: QListWidgetItem | None, _prev: QListWidgetItem | None = None) -> None:
        if item is None:
            return
        q = get_question(item.data(Qt.ItemDataRole.UserRole))
        where = q.lab or q.view
        more = f" · explore further: <i>{where}</i>" if where else ""
        self.heading.setText(f"<b>{q.number}. {q.title}</b><br>{q.question}<br>"
                             f"<span style='color: palette(mid)'>Topic: {q.topic}{more}</span>")
        if q.number in self.answers:
            self._show_answer(q, self.answers[q.number])
        elif not self.busy:
            models = f"{q.trainings} small model{'s' if q.trainings != 1 else ''}"
            self.answer.setPlainText(f"Press Run experiment: it trains {models} in the background (well under two "
                                     "minutes on two CPU cores), measures, and answers with the numbers and the "
                                     "figure of that run.")
            self.figure.clear()
            self.save_button.setEnabled(False)
        self.run_button.setEnabled(q.available and not self.busy)

    @Slot(QListWidgetItem)
    def _on_double_click(self, _item: QListWidgetItem) -> None:
        self.run_selected()

    # ---- running ----
    @Slot()
    def run_selected(self) -> None:
        self.run(self.selected().number)

    def run(self, number: int, budget: str | None = None) -> None:
        """Run question `number`'s experiment off the GUI thread (ignored while one runs)."""
        if self.busy:
            return
        q = get_question(number)
        if not q.available:
            self.status.setText("This question needs a model feature this build does not have.")
            return
        budget = budget or self.budget.currentData()
        self._control = Control()
        self.run_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.progress.setRange(0, 0)
        self.status.setText(f"Running question {q.number}: training {q.trainings} small "
                            f"model{'s' if q.trainings != 1 else ''}…")
        task = Task(_run, q.number, budget, self._control, progress=True)
        task.signals.progress.connect(self._on_progress)
        task.signals.done.connect(self._on_done)
        task.signals.failed.connect(self._on_failed)
        self._task = start(task)

    @Slot()
    def stop(self) -> None:
        if self._control is not None:
            self._control.stop()
            self.status.setText("Stopping…")

    @Slot(int, int)
    def _on_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)

    def _finish(self) -> None:
        self._task = None
        self._control = None
        self.stop_button.setEnabled(False)
        self.progress.setRange(0, 1)
        self.run_button.setEnabled(self.selected().available)

    @Slot(object)
    def _on_done(self, result: Any) -> None:
        self._finish()
        number, answer = result
        q = get_question(number)
        if answer is None:
            self.progress.setValue(0)
            self.status.setText(f"Question {number} stopped; nothing was changed.")
            return
        self.progress.setValue(1)
        self.answers[number] = answer
        self.last_answer, self.last_question = answer, q
        self.status.setText(f"Question {number} answered in {answer.seconds:.0f} s.")
        if self.selected().number == number:
            self._show_answer(q, answer)
        if self.setup_box.isChecked():
            self.setup_builder(answer)
        if self.open_box.isChecked():
            self.open_related(q)

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self._finish()
        self.progress.setValue(0)
        self.status.setText(f"<span style='color:#c0392b'>The experiment failed: {message}</span>")

    def _show_answer(self, q: Question, answer) -> None:
        from html import escape as e

        from ..core.questions.base import fmt_num
        from ..core.questions.report import label

        rows = "".join(f"<tr><td>{e(label(k))}</td><td align=right>&nbsp;{fmt_num(v)}</td></tr>"
                       for k, v in answer.numbers.items())
        runs = "".join(f"<li>{e(r)}</li>" for r in answer.runs)
        notes = "".join(f"<p style='color:#8a5a00'>{e(n)}</p>" for n in answer.notes)
        self.answer.setHtml(f"<p>{e(answer.conclusion)}</p>{notes}<p><b>Try next:</b> {e(answer.next_step)}</p>"
                            f"<p><b>What was run</b></p><ul>{runs}</ul><table>{rows}</table>")
        self.figure.setPixmap(figure_pixmap(answer.figure))
        self.save_button.setEnabled(True)

    # ---- what the answer sets up ----
    def setup_builder(self, answer) -> bool:
        """Put the answer's model into the builder (and its noise into the training settings)."""
        if answer.model_config is None or self.state.training.running:
            return False
        cfg = answer.model_config
        if self.state.dataset is not None:
            cfg = replace(cfg, input_shape=tuple(self.state.dataset.shape))
        self.state.set_model_config(cfg)
        if answer.train_config is not None:
            self.state.set_train_config(replace(self.state.train_config, noise=answer.train_config.noise,
                                                kl_warmup=answer.train_config.kl_warmup))
        return True

    def open_related(self, q: Question) -> None:
        if q.lab and self.open_lab is not None:
            self.open_lab(q.lab)
        elif q.view and self.open_view is not None:
            self.open_view(q.view)

    # ---- saving ----
    def save_answer(self, folder: str) -> dict:
        from ..core.questions.report import write_answer

        if self.last_answer is None or self.last_question is None:
            raise ValueError("no answer to save yet")
        q = self.selected() if self.selected().number in self.answers else self.last_question
        return write_answer(q, self.answers[q.number], folder, html=True)

    @Slot()
    def _ask_save(self) -> None:
        from ..core.questions.report import ReportError

        suggested = f"question-{self.selected().number}"
        if self.choose_folder is not None:
            folder = self.choose_folder(suggested)
        else:
            folder = QFileDialog.getExistingDirectory(self, "Save the answer in folder")
        if not folder:
            return
        try:
            paths = self.save_answer(folder)
        except (ReportError, ValueError) as e:
            self.status.setText(f"<span style='color:#c0392b'>{e}</span>")
            return
        self.status.setText(f"Saved {', '.join(p.name for p in paths.values())} in {folder}.")

    def wait_until_idle(self, timeout_s: float = 60.0) -> bool:
        """For tests and shutdown: block until the running experiment has finished."""
        task = self._task
        return task is None or task.finished_event.wait(timeout_s)

    def shutdown(self, timeout_s: float = 5.0) -> None:
        self.stop()
        self.wait_until_idle(timeout_s)


class QuestionsWindow(QMainWindow):
    """The Questions guide in its own window (accessible name "Questions")."""

    def __init__(self, state: StudioState, parent: QWidget | None = None):
        super().__init__(parent, Qt.WindowType.Window)
        self.setWindowTitle("Questions — aestudio")
        self.setAccessibleName("Questions")
        host = parent
        self.panel = QuestionsPanel(state, self, open_lab=getattr(host, "show_lab", None),
                                    open_view=self.show_view)
        self.setCentralWidget(self.panel)
        self.resize(1150, 760)
        app = QCoreApplication.instance()
        if app is not None:  # quitting stops a running experiment (it ends within one training step)
            app.aboutToQuit.connect(self.shutdown)

    @Slot()
    def shutdown(self) -> None:
        self.panel.shutdown()

    def show_view(self, title: str) -> bool:
        """Show and raise the main window's panel titled `title` (a dock such as "Latent map")."""
        from PySide6.QtWidgets import QDockWidget

        host = self.parentWidget()
        if host is None:
            return False
        for dock in host.findChildren(QDockWidget):
            if dock.windowTitle() == title:
                dock.show()
                dock.raise_()
                return True
        return False

    def closeEvent(self, event) -> None:  # noqa: N802
        self.panel.shutdown()
        super().closeEvent(event)


__all__ = ["QuestionsPanel", "QuestionsWindow", "figure_pixmap"]
