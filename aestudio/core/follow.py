"""Run folders that are still being written: the writer's side (`LiveSaver`) and the reader's
(`RunFollower`). No Qt here; the studio polls a `RunFollower` from a timer (aestudio/ui/follow.py).

Writer. `aestudio train` saves the run folder after the first epoch and then again whenever
enough time has passed, with `save_run`, which builds the new version in a hidden sibling folder
and swaps it in with one rename: a reader (on this machine or through a synced folder) sees the
previous complete version or the new one, never half a file. While training runs, config.json
says `"finished": "running"`; the last save says how it ended (completed, stopped, nan).

Reader. `RunFollower.poll()` looks at the folder's three files (a `stat` each) and reads only the
small JSON files, and only when they changed. It reports one of

* ``waiting``: no run there yet (the writer has not saved its first epoch);
* ``running``: the writer says it is training and the folder changed within `quiet_after_s`;
* ``quiet``: the writer says it is training but nothing changed for `quiet_after_s` seconds
  (the process may have died, or a sync stopped);
* ``finished``: the writer saved its final version (`reason` says how it ended);
* ``gone``: the folder was there and has been deleted or moved away.

Loading the weights is left to the caller (the studio does it on a worker thread when
`weights_changed`).
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .checkpoint import CONFIG_NAME, HISTORY_NAME, WEIGHTS_NAME, RunError, holds_run, save_run
from .schema import SchemaError, check_history, read_json

RUNNING = "running"
WAITING, QUIET, FINISHED, GONE = "waiting", "quiet", "finished", "gone"
#: Seconds without any change after which a running run is called quiet.
QUIET_AFTER_S = 120.0


# ---- the reader ------------------------------------------------------------------------------
@dataclass
class FollowUpdate:
    state: str  # waiting | running | quiet | finished | gone
    message: str  # one line for the user
    history: list[dict[str, Any]] | None = None  # the full history, when it changed since the last poll
    weights_changed: bool = False  # a new weights file is in place (load it off the GUI thread)
    reason: str | None = None  # how a finished run ended: completed | stopped | nan | ...
    epochs: int = 0  # epoch records so far
    problem: str | None = None  # a file that could not be read this time (tried again at the next poll)

    @property
    def changed(self) -> bool:
        return self.history is not None or self.weights_changed


def _signature(path: Path) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


@dataclass
class RunFollower:
    path: Path
    quiet_after_s: float = QUIET_AFTER_S
    clock: Callable[[], float] = time.monotonic
    _seen: dict[str, tuple | None] = field(default_factory=dict)
    _last_change: float = 0.0
    _existed: bool = False
    _finished: str | None = None
    _epochs: int = 0
    state: str = WAITING

    def __post_init__(self) -> None:
        self.path = Path(os.path.abspath(self.path))
        self._last_change = self.clock()

    def poll(self) -> FollowUpdate:
        """Look at the folder once (cheap: three stats, and JSON reads only when files changed)."""
        now = self.clock()
        if not self.path.is_dir():
            if self._existed:
                self.state = GONE
                return FollowUpdate(GONE, f"The run folder {self.path} was deleted or moved while it was being "
                                          "followed; the studio keeps showing the last version it read.",
                                    epochs=self._epochs)
            self.state = WAITING
            return FollowUpdate(WAITING, f"Waiting for {self.path} to appear …")
        self._existed = True
        sigs = {name: _signature(self.path / name) for name in (CONFIG_NAME, HISTORY_NAME, WEIGHTS_NAME)}
        if sigs[CONFIG_NAME] is None or sigs[WEIGHTS_NAME] is None:
            self.state = WAITING
            return FollowUpdate(WAITING, f"Waiting for the first save in {self.path} …")
        update = FollowUpdate(self.state, "")
        if sigs != self._seen:
            self._last_change = now
            problem = None
            if sigs[CONFIG_NAME] != self._seen.get(CONFIG_NAME):
                try:
                    finished = read_json(self.path / CONFIG_NAME).get("finished")
                    self._finished = finished if isinstance(finished, str) else None
                except (SchemaError, AttributeError) as e:
                    problem = f"{CONFIG_NAME} could not be read ({e}); trying again"
            if sigs[HISTORY_NAME] != self._seen.get(HISTORY_NAME):
                history = self._read_history()
                if isinstance(history, str):
                    problem = history
                else:
                    update.history = history
                    self._epochs = len(history)
            update.weights_changed = sigs[WEIGHTS_NAME] != self._seen.get(WEIGHTS_NAME)
            if problem is None:
                self._seen = sigs
            else:  # keep the old signatures: the next poll reads the files again
                update.problem = problem
                update.weights_changed = False
        update.epochs = self._epochs
        live = self._finished in (None, RUNNING)
        if not live:
            self.state = FINISHED
            update.reason = self._finished
            update.message = f"The run finished ({self._finished}) after {self._epochs} epoch record(s)."
        elif now - self._last_change >= self.quiet_after_s:
            self.state = QUIET
            update.message = (f"No change in {self.path.name} for {now - self._last_change:.0f} s: the training "
                              "process may have stopped, or the folder is no longer being synced.")
        else:
            self.state = RUNNING
            update.message = f"Following {self.path.name}: {self._epochs} epoch record(s) so far."
        update.state = self.state
        return update

    def _read_history(self) -> list[dict[str, Any]] | str:
        try:
            value = read_json(self.path / HISTORY_NAME)
        except SchemaError as e:
            if not (self.path / HISTORY_NAME).exists():
                return []
            return f"{HISTORY_NAME} could not be read ({e}); trying again"
        problem = check_history(value)
        return problem if problem else value


# ---- the writer ------------------------------------------------------------------------------
#: A live save happens at most this often (seconds), and never takes more than 5% of the time.
LIVE_SAVE_MIN_S = 10.0


class LiveSaver:
    """Saves a training run's folder while it trains (see the module documentation).

    The folder is chosen at the first save, with save_run's rules: `out`, or `out-2`, ... when
    `out` holds a run. With `overwrite`, a run already in `out` is replaced only by a final save
    of a completed run; until then the live saves go beside it and that folder is removed once
    the completed run is in `out` (a failed run never replaces a good one)."""

    def __init__(self, out: str | Path, overwrite: bool = False, min_interval_s: float = LIVE_SAVE_MIN_S,
                 clock: Callable[[], float] = time.monotonic):
        self.out = Path(os.path.abspath(out))
        self.overwrite = overwrite
        self.min_interval_s = min_interval_s
        self.clock = clock
        self.folder: Path | None = None  # where the live saves go, once chosen
        self._replaces = holds_run(self.out)  # out held a run before this training started
        self._last = -float("inf")
        self._cost = 0.0
        self.saves = 0
        self.live = True  # set False after a live save failed: only the final save is tried then

    def due(self) -> bool:
        """Whether a live save is due now (the first one always is)."""
        if not self.live:
            return False
        if self.folder is None:
            return True
        return self.clock() - self._last >= max(self.min_interval_s, 20.0 * self._cost)

    def save(self, *args: Any, **kwargs: Any) -> Path:
        """A live save (save_run's arguments, less the target): marks the run as running."""
        kwargs["finished"] = RUNNING
        t0 = self.clock()
        if self.folder is None:
            self.folder = save_run(self.out, *args, beside=True, **kwargs)
        else:
            save_run(self.folder, *args, overwrite=True, **kwargs)
        self._cost = self.clock() - t0
        self._last = self.clock()
        self.saves += 1
        return self.folder

    def final(self, *args: Any, completed: bool, **kwargs: Any) -> Path:
        """The last save. Returns the folder the run ended up in."""
        if self.folder is None:
            replace = self.overwrite and completed
            return save_run(self.out, *args, overwrite=replace, beside=not replace, **kwargs)
        if self.overwrite and completed and self._replaces and self.folder != self.out:
            saved = save_run(self.out, *args, overwrite=True, **kwargs)
            if holds_run(self.folder):
                shutil.rmtree(self.folder, ignore_errors=True)
            return saved
        return save_run(self.folder, *args, overwrite=True, **kwargs)


def safe_final(saver: LiveSaver, *args: Any, completed: bool, **kwargs: Any) -> Path:
    """`saver.final`, and when that fails, the name of the last live save (or the error)."""
    try:
        return saver.final(*args, completed=completed, **kwargs)
    except RunError:
        if saver.folder is not None and holds_run(saver.folder):
            raise RunError(f"the final save failed; {saver.folder} keeps the save from an earlier epoch") from None
        raise
