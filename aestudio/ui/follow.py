"""File > Follow run folder…: show a run that another process is still writing, and keep up with it.

A QTimer on the GUI thread polls a `core.follow.RunFollower` (a few `stat` calls; it reads
config.json and history.json only when they changed). New epoch records go straight to the loss
curves; new weights are loaded on a pool thread (`load_run_bundle`, as File > Open run does), and
the image grid, latent map and sliders follow when that finishes. The status bar says what the
run is doing; the message bar says when it finished, went quiet, or its folder disappeared.
Opening another run, starting training or closing the window stops following.
"""
from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal, Slot
from PySide6.QtWidgets import QFileDialog

from ..core.follow import FINISHED, GONE, QUIET, QUIET_AFTER_S, RUNNING, WAITING, FollowUpdate, RunFollower
from ..workers.tasks import Task, start

POLL_MS = 1000


class RunFollowController(QObject):
    """Follows one run folder for a main window (see the module documentation)."""

    stateChanged = Signal(str, str)  # state (waiting | running | quiet | finished | gone), message
    updated = Signal(object)  # the model snapshot after a reload

    def __init__(self, window, poll_ms: int = POLL_MS, quiet_after_s: float = QUIET_AFTER_S):
        super().__init__(window)
        self.window = window
        self.quiet_after_s = quiet_after_s
        self.timer = QTimer(self)
        self.timer.setInterval(poll_ms)
        self.timer.timeout.connect(self.poll)
        self.follower: RunFollower | None = None
        self.state = ""
        self.message = ""
        self.trust = False
        self._opened = False  # the first full open (data set included) went through window.open_run
        self._task: Task | None = None
        self._tasks: list[Task] = []
        self._reload_pending = False
        self._stale_open = False
        self.reloads = 0
        window.runOpened.connect(self._on_opened)
        window.runOpenFailed.connect(self._on_open_failed)
        window.state.training.runningChanged.connect(self._on_training)

    # ---- public ----------------------------------------------------------------------------
    @property
    def following(self) -> bool:
        return self.follower is not None

    @property
    def path(self) -> Path | None:
        return self.follower.path if self.follower else None

    def follow(self, path: str | os.PathLike, trust: bool | None = None) -> None:
        """Start following `path` (a run folder, possibly not written yet). `trust` as in open_run."""
        if self.window.state.training.running:
            self.window.show_message("Stop training before following a run.", "warning")
            return
        self.stop(quietly=True)
        p = Path(path)
        if p.name in ("config.json", "weights.safetensors", "history.json"):
            p = p.parent
        self.follower = RunFollower(p, quiet_after_s=self.quiet_after_s)
        if trust is None:
            trust = self.window._data_trust(str(p)) if (p / "config.json").exists() and self.window.ask else False
        self.trust = bool(trust)
        self._opened = False
        self.state = ""
        self.timer.start()
        self.poll()

    def stop(self, quietly: bool = False) -> None:
        self.timer.stop()
        if self.follower is not None and not quietly:
            self.window.statusBar().showMessage(f"Stopped following {self.follower.path.name}")
        self.follower = None
        self._reload_pending = False

    def follow_dialog(self) -> None:
        start_dir = str(self.window.settings.value("runs/last_dir", str(Path.home())))
        path = QFileDialog.getExistingDirectory(self.window, "Follow a run folder that is being written", start_dir)
        if path:
            self.follow(path, trust=self.window._data_trust(path) if Path(path, "config.json").exists() else False)

    # ---- polling ---------------------------------------------------------------------------
    @Slot()
    def poll(self) -> FollowUpdate | None:
        if self.follower is None:
            return None
        try:
            upd = self.follower.poll()
        except OSError as e:  # a network share that stopped answering: say so, keep trying
            upd = FollowUpdate(QUIET, f"Cannot read {self.follower.path}: {e.strerror or e}")
        if upd.state not in (WAITING, GONE):
            if not self._opened:
                if self.window.opening_run:
                    self._stale_open = self._stale_open or upd.changed  # changed while the first open reads
                elif upd.changed:
                    self._stale_open = False
                    self.window.open_run(str(self.follower.path), trust=self.trust)
            else:
                if upd.history is not None:
                    self.window.state.historyReset.emit(list(upd.history))
                if upd.weights_changed:
                    self._reload()
        self._set_state(upd)
        if upd.state == GONE:
            self.timer.stop()
        return upd

    def _set_state(self, upd: FollowUpdate) -> None:
        changed = upd.state != self.state
        self.state, self.message = upd.state, upd.message
        self.window.statusBar().showMessage(upd.message)
        if changed:
            if upd.state == FINISHED:
                level = "warning" if upd.reason in ("nan", "unknown") else "info"
                self.window.show_message(upd.message, level)
            elif upd.state in (QUIET, GONE):
                self.window.show_message(upd.message, "warning")
            self.stateChanged.emit(upd.state, upd.message)

    # ---- reloading the weights (pool thread) -----------------------------------------------
    def _reload(self) -> None:
        if self._task is not None:
            self._reload_pending = True  # one more after the one in flight
            return
        from .main_window import load_run_bundle

        state = self.window.state
        task = Task(load_run_bundle, str(self.follower.path), state.data_spec, state.dataset, self.trust)
        task.signals.done.connect(self._on_reloaded)
        task.signals.failed.connect(self._on_reload_failed)
        self._task = task
        self._tasks = [t for t in self._tasks if not t.finished_event.is_set()] + [task]
        start(task)

    @Slot(object)
    def _on_reloaded(self, result) -> None:
        if self._task is None or self.sender() is not self._task.signals:
            return
        self._task = None
        if self.follower is None or self.window.state.training.running:
            return
        run, spec, data, snapshot, _note = result
        state = self.window.state
        if data is not state.dataset:
            state.set_dataset(data, spec)
        self.window._saved_snapshot = snapshot
        state.apply_run(run, snapshot)
        self.reloads += 1
        self.updated.emit(snapshot)
        if self._reload_pending:
            self._reload_pending = False
            self._reload()

    @Slot(str)
    def _on_reload_failed(self, message: str) -> None:
        if self._task is None or self.sender() is not self._task.signals:
            return
        self._task = None
        if self.follower is None:
            return
        if not self.follower.path.is_dir():
            self.poll()  # says the folder is gone
            return
        self.window.statusBar().showMessage(f"Could not read the latest weights ({message}); trying at the next change")

    # ---- the window's own run opening ---------------------------------------------------------
    @Slot(str)
    def _on_opened(self, path: str) -> None:
        if self.follower is not None and Path(os.path.abspath(path)) == self.follower.path:
            self._opened = True
            if self._stale_open:  # the folder changed while it was being opened
                self._stale_open = False
                self._reload()
        elif self.follower is not None:
            self.stop()  # the user opened another run

    @Slot(str)
    def _on_open_failed(self, message: str) -> None:
        if self.follower is not None and not self._opened:
            self.window.statusBar().showMessage(f"Waiting for a readable save ({message})")
            self.follower._seen = {}  # try the open again at the next poll

    @Slot(bool)
    def _on_training(self, running: bool) -> None:
        if running and self.follower is not None:
            self.stop()


def install(window) -> RunFollowController:
    """Add File > Follow run folder… to `window` and return its controller (window.run_follower)."""
    controller = RunFollowController(window)
    window.run_follower = controller
    action = window._action("&Follow run folder…", controller.follow_dialog, None,
                            "Open a run folder that a training process (here or on a server, through a shared or "
                            "synced folder) is still writing, and keep the curves, images and map up to date.",
                            "fa5s.satellite-dish")
    window.follow_run_action = action
    file_menu = window.menuBar().actions()[0].menu()
    actions = file_menu.actions()
    after = actions.index(window.open_run_action) + 1 if window.open_run_action in actions else len(actions)
    file_menu.insertAction(actions[after] if after < len(actions) else None, action)
    window.state.training.runningChanged.connect(lambda running: action.setEnabled(not running))
    return controller
