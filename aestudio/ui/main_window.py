"""The studio's main window: a thin shell that composes the panels in dock widgets.

It owns menus, the message bar, the status bar and settings (window layout, last data set,
model and training configs, recent runs); every panel is its own widget built from the shared
`StudioState`. Opening a run happens on a background Task (weights, data set and the latent
codes of its validation split); saving writes a run folder with `save_run`.
"""
from __future__ import annotations

import json
import os
import traceback
from functools import partial
from pathlib import Path

from PySide6.QtCore import (
    QByteArray,
    QCoreApplication,
    QSettings,
    QSize,
    Qt,
    QTimer,
    Signal,
    Slot,
)
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QTabBar,
    QDialog,
    QDialogButtonBox,
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSizePolicy,
    QTextBrowser,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..core.checkpoint import CONFIG_NAME, RunError, data_spec_problem, holds_run, read_config
from ..core.config import ModelConfig, TrainConfig
from ..core.trained import save_trained
from ..workers.runs import RunBundle, load_run_bundle  # noqa: F401 - load_run_bundle: also for ui.follow
from ..workers.tasks import Task, start
from ..workers.training import torch_threads
from . import style
from .builder_panel import BuilderPanel
from .continue_bar import ContinueBar
from .data_panel import DataPanel
from .decoded_view import DecodedSampleView
from .image_grid import ImageGridPanel
from .latent_map import LatentMapPanel
from .labs import LABS
from .labs.base import LabPanel
from .labs_window import LabsWindow
from .latent_sliders import LatentSlidersPanel
from .loss_curves import LossCurvesPanel
from .prior_view import PriorViewPanel
from .inspect_panel import InspectPanel
from .runs_panel import RunsPanel
from .state import StudioState
from .training_panel import ButtonAction, TrainingPanel

ORGANIZATION = "aestudio"
APPLICATION = "aestudio"
SETTINGS_ENV = "AESTUDIO_SETTINGS_DIR"
LAYOUT_VERSION = 4  # bumped when docks are added (Codes vs prior, Runs, Look inside)
MAX_RECENT = 8
DEFAULT_SIZE = (1400, 900)
DEFAULT_DATA = "fashion-10k"


def studio_settings() -> QSettings:
    """The studio's settings; `$AESTUDIO_SETTINGS_DIR/aestudio.ini` when that variable is set (tests)."""
    folder = os.environ.get(SETTINGS_ENV)
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        return QSettings(str(Path(folder) / "aestudio.ini"), QSettings.Format.IniFormat)
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANIZATION, APPLICATION)


def window_title(subject: str) -> str:
    """A window title that names the application once: "subject — aestudio". It ends with the display
    name, so Qt (which appends that name to other titles on Linux and Windows) does not repeat it."""
    return f"{subject} — {APPLICATION}"


# ---- small widgets -----------------------------------------------------------------------------
class PanelHost(QWidget):
    """Hosts a panel in a dock. It asks for the panel's own minimum size, but never more than a
    share of the screen: a panel whose minimum is very wide (a long status line) is then squeezed,
    its widest parts first, instead of forcing the whole window wider than the screen. When there
    is room it looks exactly like the panel itself."""

    MIN_CAP = QSize(380, 400)

    def __init__(self, panel: QWidget, parent: QWidget | None = None):
        super().__init__(parent)
        self.panel = panel
        self.setObjectName(f"{type(panel).__name__}Host")
        panel.setMinimumSize(1, 1)  # explicit: layouts may squeeze it below its hint if they must
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(panel)

    def _cap(self) -> QSize:
        screen = self.screen()
        if screen is None:
            return self.MIN_CAP
        avail = screen.availableGeometry()
        return QSize(max(self.MIN_CAP.width(), int(avail.width() * 0.27)),
                     max(self.MIN_CAP.height(), int(avail.height() * 0.45)))

    def minimumSizeHint(self) -> QSize:
        inner = self.panel.minimumSizeHint()
        cap = self._cap()
        return QSize(max(120, min(inner.width(), cap.width())), max(80, min(inner.height(), cap.height())))

    def sizeHint(self) -> QSize:
        return self.panel.sizeHint()


class MessageBar(QWidget):
    """A dismissable banner under the menu bar for errors and notices (never modal)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("MessageBar")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setAccessibleName("Message bar")
        self.level = ""
        lay = QHBoxLayout(self)
        lay.setContentsMargins(10, 6, 6, 6)
        lay.setSpacing(8)
        self.icon = QLabel()
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.text.setAccessibleName("Message")
        self.close_btn = QToolButton()
        self.close_btn.setAutoRaise(True)
        self.close_btn.setIcon(style.icon("fa5s.times", self))
        self.close_btn.setToolTip("Dismiss this message.")
        self.close_btn.setAccessibleName("Dismiss message")
        lay.addWidget(self.icon)
        lay.addWidget(self.text, 1)
        lay.addWidget(self.close_btn, 0, Qt.AlignmentFlag.AlignTop)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.dismiss)
        self.close_btn.clicked.connect(self.dismiss)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def _fit_height(self) -> None:
        """Word-wrapped text in a tool bar (which ignores height-for-width): size it ourselves."""
        m = self.layout().contentsMargins()
        spacing = self.layout().spacing()
        avail = (self.width() - m.left() - m.right() - 2 * spacing - self.icon.sizeHint().width()
                 - self.close_btn.sizeHint().width())
        self.text.setMinimumHeight(0)  # a fixed height would bias heightForWidth
        self.text.setMaximumHeight(16777215)
        h = self.text.heightForWidth(max(200, avail)) if self.text.text() else self.text.sizeHint().height()
        h = max(h, self.close_btn.sizeHint().height())
        self.text.setFixedHeight(h)
        self.setFixedHeight(h + m.top() + m.bottom())

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit_height()

    def show_message(self, text: str, level: str = "error", timeout_ms: int = 0) -> None:
        color = {"error": style.ERROR, "warning": style.WARN, "info": style.INFO}.get(level, style.INFO)
        name = {"error": "fa5s.exclamation-circle", "warning": "fa5s.exclamation-triangle"}.get(level, "fa5s.info-circle")
        self.level = level
        self.icon.setPixmap(style.icon(name, self, color).pixmap(18, 18))
        self.text.setText(text)
        self.setStyleSheet(style.banner_css(color))
        self._fit_height()
        host = self.parentWidget()
        (host if isinstance(host, QToolBar) else self).setVisible(True)
        self.setVisible(True)
        if timeout_ms:
            self._timer.start(timeout_ms)
        else:
            self._timer.stop()

    @Slot()
    def dismiss(self) -> None:
        self.level = ""
        self.text.setText("")
        host = self.parentWidget()
        if isinstance(host, QToolBar):
            host.setVisible(False)
        else:
            self.setVisible(False)

    @property
    def message(self) -> str:
        return self.text.text()


CONCEPTS_HTML = """
<h2>Autoencoder concepts</h2>
<p>An <b>autoencoder</b> squeezes each image through a small <i>code</i> (the latent vector) and learns to
rebuild the image from it. Whatever the code keeps is what the network found important.</p>
<h3>Undercomplete and overcomplete</h3>
<p><b>Undercomplete</b>: the code is smaller than the input, so the network must compress.
<b>Overcomplete</b>: the code is as large as the input or larger; it could simply copy the pixels, so it needs a
regulariser (sparsity, noise, contraction) to learn anything useful.</p>
<h3>Variational autoencoders: KL and reparameterisation</h3>
<p>A VAE's encoder outputs a mean and a variance per code unit. The code is sampled as
z = μ + σ·ε with ε ~ N(0, 1) (the <b>reparameterisation trick</b>, so gradients flow through the sampling).
A <b>KL divergence</b> term pulls every code distribution towards N(0, I); that keeps the latent space
smooth and lets you decode random samples. <b>β</b> weighs the KL term: higher β, tidier latent space,
blurrier images.</p>
<h3>Sparse autoencoders</h3>
<p>A penalty keeps most code units near zero for each image (L1, or a KL divergence pulling each unit's average
activation to a small target ρ). Each unit then tends to respond to one recognisable feature.</p>
<h3>Contractive autoencoders</h3>
<p>Penalise the Jacobian ‖∂z/∂x‖²: the code changes little when the input changes a little, so it follows the
directions in which real images vary and ignores the rest.</p>
<h3>Tied weights</h3>
<p>The decoder uses the transposed weight matrices of the encoder: half the weights, less overfitting, and a
linear tied autoencoder finds the same subspace as PCA.</p>
<h3>PCA versus autoencoders</h3>
<p>With linear layers and MSE an autoencoder can do no better than <b>PCA</b>, the best linear projection.
Non-linear activations let it bend the projection around curved data, so at the same code size it usually
reconstructs better.</p>
<h3>Denoising</h3>
<p>Corrupt the input (Gaussian noise, salt and pepper, masked pixels) and train the network to output the clean
image. It has to learn how images are put together rather than copy pixels.</p>
<h3>Anomaly detection</h3>
<p>An autoencoder reconstructs images like its training data well and unusual ones badly: a high reconstruction
error flags an image as unlike the rest.</p>
<h3>Stacked pretraining</h3>
<p>Deep autoencoders used to be trained greedily: first each encoder/decoder pair on its own, from the outside in,
then the whole network end to end (fine-tuning). Modern initialisation makes it optional, but it is instructive
to compare.</p>
"""


class ConceptsDialog(QDialog):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Autoencoder concepts")
        self.setAccessibleName("Autoencoder concepts")
        self.resize(620, 640)
        lay = QVBoxLayout(self)
        text = QTextBrowser(self)
        text.setOpenExternalLinks(True)
        text.setHtml(CONCEPTS_HTML)
        text.setAccessibleName("Concepts text")
        lay.addWidget(text)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)


# ---- the window ------------------------------------------------------------------------------
class MainWindow(QMainWindow):
    runOpened = Signal(str)  # path
    runOpenFailed = Signal(str)  # message
    runSaved = Signal(str)

    def __init__(self, state: StudioState, parent: QWidget | None = None, restore: bool = True):
        super().__init__(parent)
        self.state = state
        if state.parent() is None:
            state.setParent(self)
        # Qt appends the application's display name ("aestudio") to a title that does not end with it
        self.setWindowTitle(window_title("Autoencoder Studio"))
        self.setWindowIcon(style.app_icon())
        self.setAccessibleName("aestudio")
        # No AnimatedDocks: each progress update relays the window (its labels' new text), and Qt
        # then animated every dock's geometry (about 50 animations a second while a model trained),
        # each waking the GUI thread beside the training threads.
        self.setDockOptions(QMainWindow.DockOption.AllowNestedDocks | QMainWindow.DockOption.AllowTabbedDocks)
        self.settings = studio_settings()
        self._run_task: Task | None = None
        self._tasks: list[Task] = []
        self.opening_run = False
        self._closed = False
        # Answers the window's questions: ask(kind, text) -> answer. kind "replace_run" answers
        # "replace" | "beside" | "cancel"; kind "trust_data" answers "yes" | "no"; kind "quit_unsaved"
        # answers "save" | "discard" | "cancel". None: a QMessageBox.
        self.ask = None
        # Chooses the folder to save a run in: choose_save_path(suggested) -> path ("" cancels).
        # None: a file dialog (File > Save run…, and Save when quitting).
        self.choose_save_path = None
        self._saved_snapshot = None  # the snapshot a run folder holds (saved or opened): not "unsaved"
        self._quit_answer: str | None = None  # the answer to "quit_unsaved" while closing waits for training
        self._quitting = False  # closing through File > Quit (asks about an unsaved model)
        self._close_when_stopped = False
        self.labs_window: LabsWindow | None = None
        if restore:
            self._restore_configs()

        # panels
        self.data_panel = DataPanel(state)
        self.builder = BuilderPanel(state)
        self.training_panel = TrainingPanel(state)
        self.continue_bar = ContinueBar(state)  # Continue training / Train from scratch, under the Training panel
        self.continue_bar.continueRequested.connect(self.continue_training)
        self.training_host = QWidget()
        self.training_host.setObjectName("TrainingHost")
        host_lay = QVBoxLayout(self.training_host)
        host_lay.setContentsMargins(0, 0, 0, 0)
        host_lay.setSpacing(0)
        host_lay.addWidget(self.training_panel, 1)
        host_lay.addWidget(self.continue_bar)
        self.loss_curves = LossCurvesPanel(state)
        self.image_grid = ImageGridPanel(state)
        self.latent_map = LatentMapPanel(state)
        self.decoded_view = DecodedSampleView(state)
        self.latent_sliders = LatentSlidersPanel(state)
        self.prior_view = PriorViewPanel(state)  # issue 10: codes against the prior (AAE, VAE)
        self.runs_panel = RunsPanel(state)  # issue 11: compare runs
        self.runs_panel.openRequested.connect(lambda folder: self.open_run(folder, trust=self._data_trust(folder)))
        self.inspect_panel = InspectPanel(state)  # issue 11: look inside the model
        if restore:
            self._restore_data_options()

        self.docks: dict[str, QDockWidget] = {}
        for key, title, panel in (
            ("data", "Data", self.data_panel),
            ("builder", "Model builder", self.builder),
            ("training", "Training", self.training_panel),
            ("curves", "Loss curves", self.loss_curves),
            ("grid", "Image grid", self.image_grid),
            ("latent", "Latent map", self.latent_map),
            ("decoded", "Decoded sample", self.decoded_view),
            ("sliders", "Latent sliders", self.latent_sliders),
            ("prior", "Codes vs prior", self.prior_view),
            ("runs", "Runs", self.runs_panel),
            ("inside", "Look inside", self.inspect_panel),
        ):
            dock = QDockWidget(title, self)
            dock.setObjectName(f"dock_{key}")
            dock.setWidget(self.training_host if key == "training" else
                           panel if key in ("data", "builder") else PanelHost(panel))
            dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable |
                             QDockWidget.DockWidgetFeature.DockWidgetFloatable |
                             QDockWidget.DockWidgetFeature.DockWidgetClosable)
            dock.toggleViewAction().setToolTip(f"Show or hide the {title} panel.")
            self.docks[key] = dock

        self.message_bar = MessageBar()
        self.message_host = QToolBar("Messages", self)
        self.message_host.setObjectName("MessageBarHost")
        self.message_host.setMovable(False)
        self.message_host.setFloatable(False)
        self.message_host.toggleViewAction().setVisible(False)
        self.message_host.addWidget(self.message_bar)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, self.message_host)
        self.message_host.hide()

        self._build_menus()
        self.setAcceptDrops(True)  # a folder of images, or a run folder, dropped on the window opens it
        self._build_status_bar()
        self.resize(*DEFAULT_SIZE)
        self._default_layout()
        self._default_state = self.saveState(LAYOUT_VERSION)
        if restore:
            self._restore_window()

        state.statusMessage.connect(self._on_status)
        state.errorMessage.connect(self._on_error)
        state.training.finished.connect(self._on_training_finished)
        state.training.runningChanged.connect(self._on_running)
        state.snapshotChanged.connect(self._on_snapshot)
        from .follow import install as install_follow

        install_follow(self)  # File > Follow run folder… (self.run_follower)
        from .export_actions import install as install_exports

        install_exports(self)  # File > Export, Show PyTorch code (self.export_actions)

    # ---- layout ---------------------------------------------------------------------------
    def _default_layout(self) -> None:
        d = self.docks
        for dock in d.values():
            dock.setFloating(False)
            dock.show()
        L, R = Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea
        V, H = Qt.Orientation.Vertical, Qt.Orientation.Horizontal
        self.addDockWidget(L, d["data"])
        self.splitDockWidget(d["data"], d["builder"], V)
        self.splitDockWidget(d["builder"], d["training"], V)
        # right: [image grid | latent sliders] over [loss curves | latent map | decoded sample]
        self.addDockWidget(R, d["grid"])
        self.splitDockWidget(d["grid"], d["curves"], V)
        self.splitDockWidget(d["grid"], d["sliders"], H)
        self.splitDockWidget(d["curves"], d["latent"], H)
        self.splitDockWidget(d["latent"], d["decoded"], H)
        # Runs and Look inside share the loss curves' place, Codes vs prior the latent map's. Each
        # is placed beside its host first: tabifying a dock that is not in the layout yet left a
        # stale, visible tab bar behind (Qt keeps the first tab bar it made for the pair).
        self.splitDockWidget(d["curves"], d["runs"], H)
        self.splitDockWidget(d["curves"], d["inside"], H)
        self.splitDockWidget(d["latent"], d["prior"], H)
        self.tabifyDockWidget(d["latent"], d["prior"])
        self.tabifyDockWidget(d["curves"], d["runs"])
        self.tabifyDockWidget(d["curves"], d["inside"])
        self._hide_stale_tab_bars()
        d["latent"].raise_()
        d["curves"].raise_()
        w, h = self.width(), self.height()
        left = 355
        right = max(700, w - left)
        self.resizeDocks([d["data"], d["builder"], d["training"]], [130, 450, 280], V)
        self.resizeDocks([d["data"], d["grid"]], [left, right], H)
        self.resizeDocks([d["grid"], d["sliders"]], [int(right * 0.675), int(right * 0.325)], H)
        self.resizeDocks([d["curves"], d["latent"], d["decoded"]],
                         [int(right * 0.37), int(right * 0.43), int(right * 0.20)], H)
        self.resizeDocks([d["grid"], d["curves"]], [int(h * 0.42), int(h * 0.58)], V)

    def _hide_stale_tab_bars(self) -> None:
        """Hide dock tab bars that no tab group uses any more.

        Building two tab groups in a row left one group's first tab bar on screen (seen as the
        studio starts, on Qt's offscreen platform; tests/test_layout.py): a second bar with that
        group's first tabs, drawn over the dock area's bottom-left corner. The bar in use is the one holding every tab of its
        group; an earlier, shorter copy of a group's first tabs is stale.
        """
        bars = [b for b in self.findChildren(QTabBar) if b.parent() is self]
        texts = [[b.tabText(i) for i in range(b.count())] for b in bars]
        for bar, tabs in zip(bars, texts):
            if any(len(other) > len(tabs) and other[:len(tabs)] == tabs for other in texts):
                bar.hide()

    @Slot()
    def reset_layout(self) -> None:
        if self.isMaximized() or self.isFullScreen():
            self.showNormal()
        self.resize(*DEFAULT_SIZE)
        if not self.restoreState(self._default_state, LAYOUT_VERSION):
            self._default_layout()
        self._hide_stale_tab_bars()

    # ---- menus ------------------------------------------------------------------------------
    def _action(self, text: str, slot, shortcut=None, tip: str = "", icon: str | None = None) -> QAction:
        a = QAction(text, self)
        if shortcut is not None:
            a.setShortcut(QKeySequence(shortcut))
        if tip:
            a.setToolTip(tip)
            a.setStatusTip(tip)
        if icon:
            a.setIcon(style.icon(icon, self))
        a.triggered.connect(slot)
        return a

    def _build_menus(self) -> None:
        mb = self.menuBar()
        f = mb.addMenu("&File")
        self.open_run_action = self._action("&Open run…", self.open_run_dialog, QKeySequence.StandardKey.Open,
                                            "Open a saved run folder (or its config.json): model, curves and latent map.",
                                            "fa5s.folder-open")
        self.save_run_action = self._action("&Save run…", self.save_run_dialog, QKeySequence.StandardKey.Save,
                                            "Save the trained model, its configs and its loss history as a run folder.",
                                            "fa5s.save")
        self.save_run_action.setEnabled(False)
        f.addAction(self.open_run_action)
        self.recent_menu = f.addMenu("Recent runs")
        self.recent_menu.setToolTipsVisible(True)
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        f.addAction(self.save_run_action)
        f.addSeparator()
        self.open_folder_action = self._action("Open image &folder…", self.data_panel.open_folder_dialog, "Ctrl+Shift+O",
                                               "Load a folder of your own images as the data set.", "fa5s.images")
        f.addAction(self.open_folder_action)
        f.addSeparator()
        self.quit_action = self._action("&Quit", self.quit, QKeySequence.StandardKey.Quit, "Close the studio.")
        f.addAction(self.quit_action)

        v = mb.addMenu("&View")
        for dock in self.docks.values():
            v.addAction(dock.toggleViewAction())
        v.addSeparator()
        v.addAction(self._action("&Reset layout", self.reset_layout, None,
                                 "Put every panel back where it started."))

        t = mb.addMenu("&Training")
        t.setToolTipsVisible(True)
        tp = self.training_panel
        for a in (tp.train_action, tp.pause_action, tp.stop_action):
            t.addAction(a)
        t.addSeparator()
        self.continue_action = ButtonAction(self.continue_bar.continue_button, "&Continue training",
                                            ["Ctrl+Shift+Return"], self)
        t.addAction(self.continue_action)

        labs = mb.addMenu("&Labs")
        labs.setToolTipsVisible(True)
        for cls, description in LABS:
            labs.addAction(self._action(cls.title, partial(self.show_lab, cls.title), None, description))

        h = mb.addMenu("&Help")
        h.addAction(self._action("Autoencoder &concepts", self.show_concepts, QKeySequence.StandardKey.HelpContents,
                                 "A short guide to the ideas behind the options.", "fa5s.graduation-cap"))
        h.addAction(self._action("&Questions guide…", self.show_questions, "Ctrl+Shift+Q",
                                 "Course questions, each answered by a one-click experiment."))
        h.addAction(self._action("&About aestudio", self.show_about, None, "Version and credits."))

    def show_lab(self, title: str, *_args) -> LabPanel:
        """Open the Labs window (created on first use) at the lab with this title."""
        if self.labs_window is None:
            self.labs_window = LabsWindow(self.state, self)
        return self.labs_window.show_lab(title)

    def show_questions(self, *_args):
        """Open the Questions guide window (created on first use; ui/questions_panel.py)."""
        from .questions_panel import QuestionsWindow

        if getattr(self, "questions_window", None) is None:
            self.questions_window = QuestionsWindow(self.state, self)
        self.questions_window.show()
        self.questions_window.raise_()
        return self.questions_window

    def _build_status_bar(self) -> None:
        sb = self.statusBar()
        sb.setSizeGripEnabled(True)
        self.device_label = QLabel()
        from ..core.training import available_devices

        devs = available_devices()
        self.device_label.setText("  " + ("GPU: " + devs[0] if devs[0] != "cpu" else f"CPU · {torch_threads()} threads") + "  ")
        self.device_label.setToolTip("Where training runs by default (change it in the Training panel).")
        self.device_label.setStyleSheet(style.muted_css(self))
        sb.addPermanentWidget(self.device_label)

    # ---- messages -------------------------------------------------------------------------------
    @Slot(str)
    def _on_status(self, text: str) -> None:
        self.statusBar().showMessage(text)

    @Slot(str)
    def _on_error(self, text: str) -> None:
        self.show_message(text, "error")

    def show_message(self, text: str, level: str = "error", timeout_ms: int = 0) -> None:
        self.message_bar.show_message(text, level, timeout_ms)

    @Slot(object)
    def _on_training_finished(self, e) -> None:
        if e.reason == "nan":
            self.show_message(e.message, "warning")
        self.statusBar().showMessage(e.message)

    @Slot(bool)
    def _on_running(self, running: bool) -> None:
        if not running and self._close_when_stopped:
            self._close_when_stopped = False
            QTimer.singleShot(0, self.close)  # the close that waited for training to stop
        self.save_run_action.setEnabled(self.state.snapshot is not None)
        self.open_run_action.setEnabled(not running)
        self.open_folder_action.setEnabled(not running)
        if running and self.message_bar.level == "error":
            self.message_bar.dismiss()

    @Slot(object)
    def _on_snapshot(self, snapshot) -> None:
        self.save_run_action.setEnabled(snapshot is not None)

    # ---- runs -----------------------------------------------------------------------------------
    @Slot()
    def continue_training(self) -> bool:
        """The Continue training button: train the current model further (same weights, optimizer state,
        split; history appended). Changed settings make a fork that names its parent run. False (with a
        message) when it cannot start."""
        if self.opening_run:
            self.show_message("Wait until the run has opened.", "warning")
            return False
        parent_name = Path(self.state.run_path).name if self.state.run_path else None
        if not self.state.continue_training():
            return False
        changes = self.state.continued or []
        if changes:
            self.setWindowTitle(window_title(f"fork of {parent_name}" if parent_name else "fork"))
        return True

    @Slot()
    def open_run_dialog(self) -> None:
        start_dir = str(self.settings.value("runs/last_dir", str(Path.home())))
        path, _ = QFileDialog.getOpenFileName(
            self, "Open run: choose the config.json of a run folder", start_dir,
            "aestudio run (config.json weights.safetensors);;All files (*)")
        if path:
            self.open_run(path, trust=self._data_trust(path))

    def _question(self, kind: str, text: str) -> str:
        """Ask the user (or the `ask` hook); see __init__ for the kinds and answers."""
        if self.ask is not None:
            answer = self.ask(kind, text)
            name = getattr(answer, "name", None)  # a QMessageBox.StandardButton answers too
            return str(name if isinstance(name, str) else answer).strip().lower()
        box = QMessageBox(QMessageBox.Icon.Question, "aestudio", text, QMessageBox.StandardButton.NoButton, self)
        if kind == "quit_unsaved":
            buttons = {"save": box.addButton(QMessageBox.StandardButton.Save),
                       "discard": box.addButton(QMessageBox.StandardButton.Discard),
                       "cancel": box.addButton(QMessageBox.StandardButton.Cancel)}
            box.setDefaultButton(buttons["save"])
        elif kind == "replace_run":
            buttons = {"replace": box.addButton("Replace", QMessageBox.ButtonRole.DestructiveRole),
                       "beside": box.addButton("Save beside", QMessageBox.ButtonRole.AcceptRole),
                       "cancel": box.addButton(QMessageBox.StandardButton.Cancel)}
            box.setDefaultButton(buttons["beside"])
        else:
            buttons = {"yes": box.addButton("Read it", QMessageBox.ButtonRole.AcceptRole),
                       "no": box.addButton("Don't read it", QMessageBox.ButtonRole.RejectRole)}
            box.setDefaultButton(buttons["no"])
        box.exec()
        clicked = box.clickedButton()
        return next((k for k, b in buttons.items() if b is clicked), "no" if kind == "trust_data" else "cancel")

    def _data_trust(self, path: str) -> bool:
        """Whether to read the data a run names outside its folder: asks only when it matters."""
        try:
            run_dir = Path(path).parent if Path(path).is_file() else Path(path)
            _m, _t, meta = read_config(run_dir / CONFIG_NAME)
            resolved, reason = data_spec_problem(meta.get("data"), run_dir)
        except (RunError, OSError, ValueError):
            return False  # the task reports what is wrong with the run
        if reason is None or resolved is None:
            return False
        answer = self._question("trust_data", f"The run's data {meta.get('data')!r} {reason}.\n\n"
                                              "Read images from there? Only do so if you trust where this run came from.")
        return answer == "yes"

    def open_run(self, path: str | os.PathLike, trust: bool | None = None) -> None:
        """Load a run on a Task; `runOpened` or `runOpenFailed` follows. Opens no dialog: whether to read
        data the run names outside its folder is `trust`; None asks the `ask` hook if there is one, else
        does not read it (File > Open run… asks the user)."""
        path = str(path)
        if self.state.training.running:
            msg = "Stop training before opening a run."
            self.show_message(msg, "warning")
            self.runOpenFailed.emit(msg)
            return
        if self._run_task is not None:
            self._run_task.cancel()
        self._tasks = [t for t in self._tasks if not t.finished_event.is_set()]
        if trust is None:
            trust = self._data_trust(path) if self.ask is not None else False
        task = Task(load_run_bundle, path, self.state.data_spec, self.state.dataset, trust)
        task.signals.done.connect(self._on_run_loaded)
        task.signals.failed.connect(self._on_run_failed)
        self._run_task = task
        self._tasks.append(task)
        self.opening_run = True
        self.statusBar().showMessage(f"Opening run {path} …")
        start(task)

    @Slot(object)
    def _on_run_loaded(self, result) -> None:
        if self._run_task is None or self.sender() is not self._run_task.signals:
            return
        self._run_task = None
        self.opening_run = False
        trained, spec, data, snapshot, note = result
        self.data_panel.cancel()  # a data set still loading would replace the run's
        if self.state.training.running:
            self.show_message("Training started while the run was loading; the run was not opened.", "warning")
            self.runOpenFailed.emit("training is running")
            return
        if data is not self.state.dataset:
            self.state.set_dataset(data, spec)
        self._saved_snapshot = snapshot  # what the run folder holds
        self.state.apply_run(trained, snapshot)
        self.save_run_action.setEnabled(True)
        path = str(trained.source)
        self._add_recent(path)
        self.settings.setValue("runs/last_dir", str(Path(path).parent))
        self.setWindowTitle(window_title(Path(path).name))
        self.statusBar().showMessage(f"Opened run {path}")
        if note:
            self.show_message(f"Opened {Path(path).name}, but {note}.", "warning")
        self.runOpened.emit(path)

    @Slot(str)
    def _on_run_failed(self, message: str) -> None:
        if self._run_task is None or self.sender() is not self._run_task.signals:
            return
        self._run_task = None
        self.opening_run = False
        self.show_message(f"Could not open the run: {message}", "error")
        self.statusBar().clearMessage()
        self.runOpenFailed.emit(message)

    @Slot()
    def save_run_dialog(self) -> None:
        if self.state.snapshot is None:
            self.show_message("Train a model (or open a run) before saving.", "warning")
            return
        path = self._save_path(self.suggested_run_path())
        if not path:
            return
        target = self._run_folder(path)
        choice = self._replace_question(target) if holds_run(target) else None
        if choice not in (None, "replace", "beside"):
            self.statusBar().showMessage("Save cancelled")
            return
        self.save_run(path, if_exists=choice)

    @staticmethod
    def _run_folder(path: str | os.PathLike) -> Path:
        target = Path(path)
        return target.parent if target.is_file() and target.name == CONFIG_NAME else target

    def _replace_question(self, target: Path) -> str:
        return self._question("replace_run", f"{target} already holds a run.\n\nReplace it, or save this one "
                                             f"beside it (as {target.name}-2, ...)?")

    def suggested_run_path(self) -> str:
        base = Path(str(self.settings.value("runs/last_dir", str(Path.cwd() / "runs"))))
        snap = self.state.snapshot
        cfg = snap.model_config if snap is not None else self.state.model_config
        return str(base / f"{cfg.arch}-{cfg.kind}-{cfg.latent}")

    def _save_path(self, suggested: str) -> str:
        """The folder to save a run in ("" when cancelled): `choose_save_path`, else a file dialog."""
        if self.choose_save_path is not None:
            return str(self.choose_save_path(suggested) or "")
        path, _ = QFileDialog.getSaveFileName(self, "Save run as folder", suggested, "Run folder (*)")
        return path or ""

    def save_run(self, path: str | os.PathLike, if_exists: str | None = None) -> Path | None:
        """Write the current model (the latest snapshot) as a run folder. Returns its path, None on failure
        or when cancelled. Opens no dialog: when `path` already holds a run, `if_exists` ("replace",
        "beside", "cancel") says what to do; None asks the `ask` hook if there is one, else saves beside it
        (File > Save run… asks the user)."""
        snap = self.state.snapshot
        if snap is None:
            self.show_message("Train a model (or open a run) before saving.", "warning")
            return None
        target = self._run_folder(path)
        choice = "new"
        if holds_run(target):
            choice = if_exists or (self._replace_question(target) if self.ask is not None else "beside")
            if choice not in ("replace", "beside"):
                self.statusBar().showMessage("Save cancelled")
                return None
        try:
            # the trained value itself: its weights with its own history, settings, split and optimizer state
            trained = snap.trained
            out = save_trained(trained, target, data=trained.data_spec or self.state.data_spec,
                               overwrite=choice == "replace", beside=choice == "beside")
        except (OSError, RunError, ValueError) as e:
            message = str(e) if isinstance(e, RunError) else f"Could not save the run to {target}: {e}"
            self.show_message(message[0].upper() + message[1:], "error")
            return None
        self.state.run_path = str(out)
        self._saved_snapshot = snap
        self._add_recent(str(out))
        self.settings.setValue("runs/last_dir", str(out.parent))
        self.statusBar().showMessage(f"Saved run to {out}")
        self.runSaved.emit(str(out))
        return out

    def recent_runs(self) -> list[str]:
        raw = self.settings.value("runs/recent", "[]")
        try:
            items = json.loads(raw) if isinstance(raw, str) else list(raw or [])
        except (ValueError, TypeError):
            items = []
        return [str(p) for p in items if isinstance(p, str)][:MAX_RECENT]

    def _add_recent(self, path: str) -> None:
        path = str(Path(path).resolve())
        items = [p for p in self.recent_runs() if p != path]
        self.settings.setValue("runs/recent", json.dumps([path, *items][:MAX_RECENT]))
        from ..core.runs import remember_run

        remember_run(path)  # the Runs panel lists it

    @Slot()
    def _fill_recent_menu(self) -> None:
        m = self.recent_menu
        m.clear()
        items = [p for p in self.recent_runs() if (Path(p) / CONFIG_NAME).is_file()]
        if not items:
            a = m.addAction("No recent runs")
            a.setEnabled(False)
            return
        for i, p in enumerate(items):
            a = m.addAction(f"&{i + 1}  {Path(p).name}")
            a.setToolTip(p)
            a.triggered.connect(lambda _=False, p=p: self.open_run(p, trust=self._data_trust(p)))
        m.addSeparator()
        m.addAction("Clear list", lambda: self.settings.setValue("runs/recent", "[]"))

    # ---- help ---------------------------------------------------------------------------------------
    @Slot()
    def show_concepts(self) -> None:
        ConceptsDialog(self).exec()

    @Slot()
    def show_about(self) -> None:
        try:
            from importlib.metadata import version

            v = version("aestudio")
        except Exception:  # noqa: BLE001
            v = "dev"
        QMessageBox.about(self, "About aestudio",
                          f"<h3>aestudio {v}</h3><p>A studio for building, training and exploring autoencoders: "
                          "dense, convolutional and recurrent; plain, variational, sparse, contractive and "
                          "denoising.</p><p>Built with PySide6, PyTorch and pyqtgraph. MIT licence.</p>")

    # ---- settings -----------------------------------------------------------------------------------
    def _restore_configs(self) -> None:
        s = self.settings
        raw = s.value("model/config")
        if raw:
            try:
                cfg = ModelConfig.from_dict(json.loads(str(raw)))
                if not any(p.startswith("unknown") for p in cfg.problems()):
                    self.state.set_model_config(cfg)
            except (ValueError, TypeError, KeyError):
                pass
        raw = s.value("train/config")
        if raw:
            try:
                tcfg = TrainConfig.from_dict(json.loads(str(raw)))
                if not tcfg.problems():
                    self.state.set_train_config(tcfg)
            except (ValueError, TypeError, KeyError):
                pass

    def _restore_data_options(self) -> None:
        try:
            size = int(self.settings.value("data/folder_size", 28))
            ch = int(self.settings.value("data/folder_channels", 0))
            if 4 <= size <= 512 and ch in (0, 1, 3):
                self.data_panel.set_folder_options(size, ch or None)
            self.data_panel.set_folder_background(str(self.settings.value("data/folder_background", "auto")))
        except (TypeError, ValueError):
            pass
        try:
            recent = json.loads(str(self.settings.value("data/recent_folders", "[]")))
        except ValueError:
            recent = []
        if isinstance(recent, list):
            self.data_panel.add_recent(recent)

    def _restore_window(self) -> None:
        geo = self.settings.value("window/geometry")
        if isinstance(geo, QByteArray) and not geo.isEmpty():
            self.restoreGeometry(geo)
        st = self.settings.value("window/state")
        if isinstance(st, QByteArray) and not st.isEmpty() and not self.restoreState(st, LAYOUT_VERSION):
            self.restoreState(self._default_state, LAYOUT_VERSION)

    def remembered_spec(self) -> str | None:
        spec = self.settings.value("data/spec")
        if not isinstance(spec, str) or not spec:
            return None
        from .data_panel import is_folder_spec

        if is_folder_spec(spec) and not Path(spec).is_dir():
            return None
        return spec

    def save_settings(self) -> None:
        s = self.settings
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/state", self.saveState(LAYOUT_VERSION))
        if self.state.data_spec:
            s.setValue("data/spec", self.state.data_spec)
        size, ch = self.data_panel.folder_options()
        s.setValue("data/folder_size", size)
        s.setValue("data/folder_channels", ch or 0)
        s.setValue("data/folder_background", self.data_panel.folder_background())
        s.setValue("data/recent_folders", json.dumps(self.data_panel.recent))
        s.setValue("model/config", json.dumps(self.builder.config().to_dict()))
        s.setValue("train/config", json.dumps(self.training_panel.config().to_dict()))
        s.sync()

    # ---- closing --------------------------------------------------------------------------------------
    def has_unsaved_model(self) -> bool:
        """Training is running, or the current model is in no run folder (trained, not saved)."""
        snap = self.state.snapshot
        return self.state.training.running or (snap is not None and snap is not self._saved_snapshot)

    @Slot()
    def quit(self) -> None:
        """File > Quit: close, asking first about a trained model that was not saved."""
        self._quitting = True
        try:
            self.close()
        finally:
            self._quitting = False

    def _stop_training(self, timeout_s: float) -> bool:
        """Stop a running training and join its thread, at most `timeout_s` seconds. False: it is
        still running (its thread is left alone: destroying a running QThread aborts the process)."""
        ctl = self.state.training
        if not ctl.running:
            return True
        if not ctl.shutdown(int(timeout_s * 1000)):
            return False
        # deliver what the worker sent before it ended (the stopped model's snapshot, the finish)
        QCoreApplication.sendPostedEvents(ctl, 0)
        return True

    # ---- drag and drop ------------------------------------------------------------------------
    @staticmethod
    def dropped_path(mime) -> Path | None:
        """The one local folder (or a run's config.json) that `mime` carries; None for anything else."""
        urls = [u for u in mime.urls() if u.isLocalFile()] if mime.hasUrls() else []
        if len(urls) != 1:
            return None
        path = Path(urls[0].toLocalFile())
        return path if path.is_dir() or (path.name == CONFIG_NAME and path.is_file()) else None

    def open_dropped(self, path: str | os.PathLike) -> None:
        """What a drop does: a run folder (or its config.json) opens as a run, as File > Open run…
        does; any other folder loads as the data set, as File > Open image folder… does."""
        path = Path(path)
        if path.name == CONFIG_NAME or holds_run(path):
            self.open_run(str(path), trust=self._data_trust(str(path)))
        else:
            self.data_panel.load(str(path))

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if self.dropped_path(event.mimeData()) is not None:
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        path = self.dropped_path(event.mimeData())
        if path is None:
            event.ignore()
            return
        event.acceptProposedAction()
        # after the drop has returned to the file manager: opening a run may ask a question first
        QTimer.singleShot(0, self, partial(self.open_dropped, path))

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._closed:
            event.accept()
            return
        asks = self.ask is not None or event.spontaneous() or self._quitting
        if self._quit_answer is None and asks and self.has_unsaved_model():
            try:
                answer = self._question("quit_unsaved", "The trained model has not been saved.\n\n"
                                                        "Save it as a run before quitting?")
            except Exception:  # noqa: BLE001 - a broken `ask` hook never keeps the window (and a thread) alive
                traceback.print_exc()
                answer = "discard"
            if answer == "cancel":
                self.statusBar().showMessage("Quit cancelled")
                event.ignore()
                return
            self._quit_answer = "save" if answer == "save" else "discard"
        if not self._stop_training(2.0):
            self._close_when_stopped = True  # _on_running closes again once the thread has ended
            self.show_message("Training is finishing its current batch; the studio closes as soon as it has "
                              "stopped.", "warning")
            event.ignore()
            return
        if self._quit_answer == "save" and self.has_unsaved_model():
            path = self._save_path(self.suggested_run_path())
            if not path or self.save_run(path) is None:
                self._quit_answer = None
                self.show_message("The model was not saved, so the studio stays open.", "warning")
                event.ignore()
                return
        self._closed = True
        try:
            self.save_settings()
        except Exception:  # noqa: BLE001 - never block closing on settings
            pass
        if self.labs_window is not None:
            self.labs_window.shutdown(2.0)
            self.labs_window.close()
        self.data_panel.cancel()
        if self._run_task is not None:
            self._run_task.cancel()
            self._run_task = None
        event.accept()
