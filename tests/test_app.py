"""End to end through the main window: load, build, train, explore, stop, save, reopen, fail gracefully."""
from __future__ import annotations

import numpy as np
import shiboken6
from conftest import find_by_name
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QScrollArea

from aestudio.app import create_window
from aestudio.core.config import ModelConfig, TrainConfig

TINY = ModelConfig(arch="dense", latent=2, hidden=[32])
REQUIRED_NAMES = ["Dataset", "Open image folder", "Model builder", "Train", "Pause", "Stop", "Progress"]


def make_window(qtbot, spec: str = "digits", model: ModelConfig = TINY, **train):
    w = create_window(spec)
    qtbot.addWidget(w)
    w.show()
    w.builder.set_config(ModelConfig.from_dict(model.to_dict()))
    w.training_panel.set_config(TrainConfig(**{"epochs": 2, "batch_size": 32, "device": "cpu", **train}))
    return w


def train(qtbot, w, timeout: int = 30000):
    with qtbot.waitSignal(w.state.training.finished, timeout=timeout) as blocker:
        qtbot.mouseClick(find_by_name(w, "Train"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not w.state.training.running, timeout=15000)
    return blocker.args[0]


def test_required_widgets_are_findable(qtbot):
    w = make_window(qtbot)
    for name in REQUIRED_NAMES:
        widget = find_by_name(w, name)
        assert widget.toolTip(), name
    assert w.state.dataset is not None and w.state.data_spec == "digits"
    assert find_by_name(w, "Train").isEnabled()
    assert not find_by_name(w, "Pause").isEnabled() and not find_by_name(w, "Stop").isEnabled()


def test_train_then_explore_latent_space(qtbot):
    w = make_window(qtbot)
    finished = train(qtbot, w)
    assert finished.reason == "completed"
    assert len(w.loss_curves.curve_data("total", "train")[0]) == 2
    assert len(w.loss_curves.curve_data("total", "batch")[0]) > 0
    assert w.image_grid.outputs is not None and w.image_grid.outputs.shape[1:] == (1, 8, 8)
    assert "Done" in find_by_name(w, "Progress").format()
    assert w.save_run_action.isEnabled()

    qtbot.waitUntil(lambda: len(w.latent_map.points) > 0, timeout=15000)
    lo, hi = w.latent_map.points.min(0), w.latent_map.points.max(0)
    with qtbot.waitSignal(w.state.decoded, timeout=10000):
        w.latent_map.click_at(float(lo[0]), float(lo[1]))
    first = w.decoded_view.current_image.copy()
    w.latent_map.click_at(float(hi[0]), float(hi[1]))
    second = w.decoded_view.current_image.copy()
    assert not np.allclose(first, second)

    slider = w.latent_sliders.sliders[0]
    with qtbot.waitSignal(w.state.decoded, timeout=10000):
        slider.setValue(slider.maximum())
    assert w.decoded_view.current_origin == "sliders"
    assert not np.allclose(w.decoded_view.current_image, second)


def test_pause_resume_and_stop(qtbot):
    """Pause and Stop act through the GUI; that a stop takes effect within one batch is
    test_training.test_stop_is_honoured_within_one_batch (no timing threshold here: the
    timeouts below only guard against a hang)."""
    w = make_window(qtbot, epochs=500, batch_size=16)
    pause, stop = find_by_name(w, "Pause"), find_by_name(w, "Stop")
    with qtbot.waitSignal(w.state.training.progress, timeout=10000):
        qtbot.mouseClick(find_by_name(w, "Train"), Qt.MouseButton.LeftButton)
    assert not find_by_name(w, "Train").isEnabled() and pause.isEnabled() and stop.isEnabled()
    qtbot.mouseClick(pause, Qt.MouseButton.LeftButton)
    assert pause.text() == "Resume" and pause.accessibleName() == "Pause"
    qtbot.mouseClick(pause, Qt.MouseButton.LeftButton)
    assert pause.text() == "Pause"
    with qtbot.waitSignal(w.state.training.finished, timeout=10000) as blocker:
        qtbot.mouseClick(stop, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not w.state.training.running, timeout=10000)
    assert blocker.args[0].reason == "stopped"
    assert find_by_name(w, "Train").isEnabled()
    assert "stopped" in find_by_name(w, "Training status").text().lower()


def test_save_run_then_open_in_new_window(qtbot, tmp_path):
    w = make_window(qtbot)
    train(qtbot, w)
    saved_cfg = w.state.snapshot.model_config
    out = w.save_run(tmp_path / "run1")
    assert out is not None and (out / "config.json").is_file() and (out / "weights.safetensors").is_file()
    assert str(out.resolve()) in w.recent_runs()

    w2 = make_window(qtbot, "fashion-10k", model=ModelConfig())  # a different data set and model
    with qtbot.waitSignal(w2.runOpened, timeout=30000):
        w2.open_run(out)
    assert w2.state.data_spec == "digits" and w2.state.dataset.shape == (1, 8, 8)
    assert w2.builder.config() == saved_cfg
    assert len(w2.loss_curves.curve_data("total", "train")[0]) == 2
    qtbot.waitUntil(lambda: len(w2.latent_map.points) > 0, timeout=15000)
    assert w2.image_grid.outputs is not None
    assert find_by_name(w2, "Train").isEnabled()


def test_open_refuses_pickles_with_a_clear_message(qtbot, tmp_path):
    w = make_window(qtbot)
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"\x80\x04not really a pickle")
    with qtbot.waitSignal(w.runOpenFailed, timeout=10000) as blocker:
        w.open_run(bad)
    assert "pickle" in blocker.args[0].lower()
    bar = find_by_name(w, "Message bar")
    assert bar.isVisible() and "pickle" in bar.message.lower()


def test_training_menu_presses_the_buttons_and_follows_their_state(qtbot):
    w = make_window(qtbot, epochs=500, batch_size=16)
    menu = next(a.menu() for a in w.menuBar().actions() if a.text() == "&Training")
    train_a, pause_a, stop_a = menu.actions()[:3]
    assert QKeySequence("Ctrl+Return") in train_a.shortcuts() and QKeySequence("Shift+F5") in stop_a.shortcuts()
    assert train_a.isEnabled() and not pause_a.isEnabled() and not stop_a.isEnabled()
    assert w.training_panel.train_btn.toolTip().endswith("Shortcut: Ctrl+Return")
    w.training_panel.pause_btn.setToolTip("Continue training where it paused.")  # the panel re-words it ...
    assert w.training_panel.pause_btn.toolTip() == "Continue training where it paused.\n\nShortcut: F6"  # ... named once

    w.training_panel.train_btn.setEnabled(False)  # Train unavailable (e.g. the model has a problem) ...
    assert not train_a.isEnabled()
    train_a.trigger()  # ... so its shortcut does nothing either
    assert not w.state.training.running
    w.training_panel.train_btn.setEnabled(True)

    with qtbot.waitSignal(w.state.training.progress, timeout=15000):
        train_a.trigger()
    assert not train_a.isEnabled() and pause_a.isEnabled() and stop_a.isEnabled()
    pause_a.trigger()
    assert w.state.training.paused and pause_a.text() == "&Resume"
    pause_a.trigger()
    assert not w.state.training.paused and pause_a.text() == "&Pause"
    with qtbot.waitSignal(w.state.training.finished, timeout=10000) as blocker:
        stop_a.trigger()
    qtbot.waitUntil(lambda: not w.state.training.running, timeout=10000)
    assert blocker.args[0].reason == "stopped"
    assert train_a.isEnabled() and not pause_a.isEnabled() and not stop_a.isEnabled()


def test_training_menu_continues_a_trained_model(qtbot):
    w = make_window(qtbot)
    menu = next(a.menu() for a in w.menuBar().actions() if a.text() == "&Training")
    cont = next(a for a in menu.actions() if a.text() == "&Continue training")
    assert not cont.isEnabled()  # no model yet
    train(qtbot, w)
    assert cont.isEnabled()
    epoch = w.state.trained.epoch
    with qtbot.waitSignal(w.state.training.finished, timeout=30000):
        cont.trigger()
    qtbot.waitUntil(lambda: not w.state.training.running and w.state.trained.epoch == epoch + 2, timeout=15000)


def test_closing_during_training_stops_and_finishes_the_thread(qtbot):
    w = make_window(qtbot, epochs=500, batch_size=16)
    with qtbot.waitSignal(w.state.training.progress, timeout=10000):
        qtbot.mouseClick(find_by_name(w, "Train"), Qt.MouseButton.LeftButton)
    controller = w.state.training
    thread = controller._thread
    w.close()  # stops the run and waits for its thread (TrainingController.shutdown)
    assert not controller.running
    assert thread is not None
    assert not shiboken6.isValid(thread) or thread.isFinished()  # deleted, or at least finished


def test_folder_with_corrupt_files_lists_skipped(qtbot, tmp_path):
    folder = tmp_path / "pics"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (20, 20), dtype=np.uint8)).save(folder / f"img{i}.png")
    (folder / "broken.png").write_bytes(b"this is not a png")
    (folder / "notes.txt").write_text("hello")
    w = make_window(qtbot)
    panel = w.data_panel
    with qtbot.waitSignal(panel.loaded, timeout=20000):
        panel.load(str(folder), image_size=16, channels=1)
    assert w.state.dataset.n == 6 and w.state.dataset.shape == (1, 16, 16)
    skipped = find_by_name(w, "Skipped files")
    assert skipped.isVisible() and skipped.text() == "2 files skipped"
    qtbot.mouseClick(skipped, Qt.MouseButton.LeftButton)
    listing = find_by_name(w, "Skipped files list")
    assert listing.isVisible() and listing.count() == 2
    names = " ".join(listing.item(i).text() for i in range(listing.count()))
    assert "broken.png" in names and "notes.txt" in names
    assert "6" in find_by_name(w, "Dataset summary").text()
    assert w.builder.config().input_shape == (1, 16, 16)


def test_missing_dataset_shows_error_and_keeps_working(qtbot, tmp_path):
    w = make_window(qtbot)
    with qtbot.waitSignal(w.data_panel.loadFailed, timeout=10000):
        w.data_panel.load(str(tmp_path / "nope"))
    assert find_by_name(w, "Message bar").isVisible()
    assert w.state.data_spec == "digits" and find_by_name(w, "Train").isEnabled()


def test_impossible_config_disables_train_with_reason(qtbot):
    w = make_window(qtbot)
    w.builder.set_config(ModelConfig(arch="conv", tied=True))
    train_btn = find_by_name(w, "Train")
    assert not train_btn.isEnabled()
    problems = find_by_name(w, "Model problems")
    assert problems.isVisible() and "tied" in problems.text().lower()
    assert "tied" in find_by_name(w, "Training status").text().lower()
    w.builder.set_config(TINY)
    assert train_btn.isEnabled()


def test_worker_exception_is_shown_and_app_stays_usable(qtbot, monkeypatch):
    import aestudio.workers.training as worker_mod

    real = worker_mod.Trainer

    def broken(*args, **kwargs):
        raise RuntimeError("simulated failure in the trainer")

    monkeypatch.setattr(worker_mod, "Trainer", broken)
    w = make_window(qtbot)
    with qtbot.waitSignal(w.state.training.errored, timeout=10000):
        qtbot.mouseClick(find_by_name(w, "Train"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: find_by_name(w, "Train").isEnabled(), timeout=15000)
    bar = find_by_name(w, "Message bar")
    assert bar.isVisible() and "simulated failure" in bar.message
    assert "simulated failure" in find_by_name(w, "Training status").text()
    monkeypatch.setattr(worker_mod, "Trainer", real)
    w.training_panel.set_config(TrainConfig(epochs=1, batch_size=64, device="cpu"))
    assert train(qtbot, w).reason == "completed"


def test_layout_and_choices_are_remembered(qtbot):
    w = make_window(qtbot, model=ModelConfig(arch="dense", latent=7, hidden=[48]), epochs=3)
    w.docks["sliders"].hide()
    w.close()
    w2 = create_window()  # no spec: the remembered one
    qtbot.addWidget(w2)
    w2.show()
    assert w2.state.data_spec == "digits"
    assert w2.builder.config().latent == 7 and w2.builder.config().hidden == (48,)
    assert w2.training_panel.config().epochs == 3
    assert w2.docks["sliders"].isHidden()
    w2.reset_layout()
    assert not w2.docks["sliders"].isHidden()


def test_no_display_exits_with_a_clear_message(monkeypatch, capsys):
    import aestudio.app as app_mod

    monkeypatch.setattr(app_mod.sys, "platform", "linux")
    for var in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(var, raising=False)
    assert app_mod.run_studio("digits") == 1
    assert "no display" in capsys.readouterr().err


def test_missing_xcb_libraries_name_the_packages(monkeypatch):
    import aestudio.app as app_mod

    monkeypatch.setattr(app_mod.sys, "platform", "linux")
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr(app_mod, "missing_xcb_libraries", lambda: ["libxcb-cursor.so.0", "libxcb-icccm.so.4"])
    message = app_mod.display_problem()
    assert "sudo apt install libxcb-cursor0 libxcb-icccm4" in message
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")  # an explicit platform is left to Qt
    assert app_mod.display_problem() is None


def test_the_status_says_when_auto_shifts_a_small_set(qtbot, tmp_path):
    """Augmentation "auto" shifts a small folder of 28 px images: the studio says so under the
    buttons (with how to turn it off); with augmentation off it says nothing about shifts."""
    import sys as _sys
    from pathlib import Path as _Path

    _sys.path.insert(0, str(_Path(__file__).resolve().parents[1] / "benchmarks"))
    from heldout import make_tiny

    w = make_window(qtbot, epochs=1)
    with qtbot.waitSignal(w.state.datasetChanged, timeout=30000):
        w.data_panel.load(str(make_tiny(tmp_path / "tiny", n=60)))
    assert w.state.dataset.shape == (1, 28, 28)
    assert train(qtbot, w).reason == "completed"
    status = find_by_name(w, "Training status").text()
    assert "Note: Random shifts of up to 4 px (a small set: 48 training images)" in status, status
    assert "Augmentation under More settings turns them off" in status
    w.training_panel.set_config(TrainConfig(epochs=1, batch_size=32, device="cpu", augment="none"))
    assert train(qtbot, w).reason == "completed"
    assert "shifts" not in find_by_name(w, "Training status").text()


def test_the_status_says_when_auto_leaves_a_small_set_unshifted_for_a_short_run(qtbot, tmp_path):
    """480 training images of 28 px are shifted only in runs of 5 epochs or more: a one-epoch run
    says why it is not shifted and how to shift anyway."""
    import sys as _sys
    from pathlib import Path as _Path

    _sys.path.insert(0, str(_Path(__file__).resolve().parents[1] / "benchmarks"))
    from heldout import make_tiny

    w = make_window(qtbot, epochs=1)
    with qtbot.waitSignal(w.state.datasetChanged, timeout=30000):
        w.data_panel.load(str(make_tiny(tmp_path / "small", n=600)))
    assert train(qtbot, w).reason == "completed"
    status = find_by_name(w, "Training status").text()
    assert ("Note: No random shifts: 1 epoch is too few to memorise 480 training images; auto shifts them in runs "
            "of 5 epochs or more; Augmentation under More settings turns them on") in status, status


def test_mixed_precision_is_a_training_setting_and_its_note_is_shown(qtbot, monkeypatch):
    """Ticking Mixed precision on a CPU without bfloat16 instructions trains in float32 and says so
    under the buttons, during the run and after it."""
    import aestudio.core.training as engine
    from PySide6.QtWidgets import QCheckBox

    monkeypatch.setattr(engine, "cpu_has_bf16", lambda: False)
    w = make_window(qtbot, epochs=1)
    box = find_by_name(w.training_panel, "Mixed precision")
    assert isinstance(box, QCheckBox) and not box.isChecked() and box.toolTip()
    box.setChecked(True)
    assert w.training_panel.config().amp
    notes = []
    w.state.training.notes.connect(notes.append)
    assert train(qtbot, w).reason == "completed"
    assert notes and "bfloat16 instructions" in notes[0][0]
    status = find_by_name(w, "Training status").text()
    assert status.startswith("Finished 1 epoch") and "Note: Mixed precision (amp) on a CPU needs bfloat16" in status
    assert w.state.training.last_trainer._amp_dtype is None  # it trained in float32
    box.setChecked(False)
    assert train(qtbot, w).reason == "completed"
    assert "Note:" not in find_by_name(w, "Training status").text()  # a run without notes shows none


def _drop(w, *paths):
    """Drop local paths on the window as a file manager would; True when the window took the drop."""
    from PySide6.QtCore import QMimeData, QPointF, QUrl
    from PySide6.QtGui import QDropEvent

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    event = QDropEvent(QPointF(w.width() / 2, w.height() / 2), Qt.DropAction.CopyAction, mime,
                       Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    event.ignore()
    w.dropEvent(event)
    return event.isAccepted()


def test_a_dropped_image_folder_loads_and_a_dropped_run_folder_opens(qtbot, tmp_path):
    folder = tmp_path / "pics"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(folder / f"img{i}.png")
    w = make_window(qtbot)
    assert w.acceptDrops()
    with qtbot.waitSignal(w.data_panel.loaded, timeout=20000):
        assert _drop(w, folder)
    assert w.state.dataset.n == 12 and w.state.data_spec == str(folder)

    train(qtbot, w)
    run = w.save_run(tmp_path / "run")
    w2 = make_window(qtbot)
    with qtbot.waitSignal(w2.runOpened, timeout=30000):
        assert _drop(w2, run)  # a run folder opens as a run, not as images
    assert w2.state.snapshot is not None and w2.state.data_spec == str(folder)


def test_drops_the_window_cannot_use_are_refused(qtbot, tmp_path):
    w = make_window(qtbot)
    spec = w.state.data_spec
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (tmp_path / "notes.txt").write_text("hello")
    assert not _drop(w, tmp_path / "notes.txt")  # a file that is not a run's config.json
    assert not _drop(w, a, b)  # two folders: which one?
    assert not _drop(w, tmp_path / "missing")
    assert w.state.data_spec == spec and not w.data_panel.loading


def test_image_folders_are_remembered_across_sessions(qtbot, tmp_path):
    folders = []
    for name in ("cats", "dogs", "gone"):
        folder = tmp_path / name
        folder.mkdir()
        for i in range(4):
            Image.fromarray(np.full((12, 12), 40 * i, np.uint8)).save(folder / f"{i}.png")
        folders.append(folder)
    w = make_window(qtbot)
    for folder in folders:
        with qtbot.waitSignal(w.data_panel.loaded, timeout=20000):
            w.data_panel.load(str(folder))
    with qtbot.waitSignal(w.data_panel.loaded, timeout=20000):
        w.data_panel.load(str(folders[0]))  # again: the newest now
    assert w.data_panel.recent == [str(folders[0]), str(folders[2]), str(folders[1])]
    w.save_settings()
    for f in folders[2].iterdir():
        f.unlink()
    folders[2].rmdir()

    w2 = create_window("digits")  # a new session: digits loaded, the folders listed, none loaded
    qtbot.addWidget(w2)
    combo = find_by_name(w2, "Dataset")
    listed = [combo.itemData(i) for i in range(combo.count())]
    assert str(folders[0]) in listed and str(folders[1]) in listed and str(folders[2]) not in listed
    assert w2.state.data_spec == "digits" and not w2.data_panel.loading
    with qtbot.waitSignal(w2.data_panel.loaded, timeout=20000):
        combo.setCurrentIndex(listed.index(str(folders[1])))  # picking one loads it
        combo.activated.emit(combo.currentIndex())
    assert w2.state.data_spec == str(folders[1]) and w2.data_panel.recent[0] == str(folders[1])


def test_a_long_status_note_does_not_squeeze_the_training_fields(qtbot):
    """A three-line note under the Train button made the dock layout take its room from the
    settings above it (134 px of the 176 the fields need, at 1400 x 900): the panel now asks for the
    note's wrapped height, so the fields keep theirs and the Model builder's scroll area gives."""
    w = make_window(qtbot)
    w.resize(1400, 900)
    panel = w.training_panel
    note = ("Finished 3 epoch(s). Note: No random shifts: 3 epochs are too few to memorise 480 training images; "
            "auto shifts them in runs of 8 epochs or more; Augmentation under More settings turns them on.")
    panel.status.setText(note)
    qtbot.waitUntil(lambda: panel.status.height() >= panel.status.heightForWidth(panel.status.width()), timeout=5000)
    assert panel.status.height() > 2 * panel.status.fontMetrics().height()  # it wrapped
    assert panel.form.height() >= panel.form.minimumSizeHint().height()
    assert panel.widget("lr").height() >= panel.widget("lr").minimumSizeHint().height()
    # ... and the window still fits a 1366 x 768 screen (700 px left under a task bar and title): the
    # Model builder's body scrolls, so it gives up the height (661 px here; 685 when it could not)
    w.resize(1366, 700)
    qtbot.waitUntil(lambda: panel.status.height() >= panel.status.heightForWidth(panel.status.width()), timeout=5000)
    assert w.minimumSizeHint().height() <= 700, w.minimumSizeHint()
    assert panel.form.height() >= panel.form.minimumSizeHint().height()
    builder_body = w.builder.findChild(QScrollArea)
    least = builder_body.minimumHeight() or builder_body.minimumSizeHint().height()  # what its layout honours
    assert least <= 3 * builder_body.fontMetrics().lineSpacing() + 16, least


def test_the_auto_augmentation_entry_says_what_it_does_for_this_data_and_budget(qtbot, tmp_path):
    """Shifts depend on the set and on the epochs (augment.py): the Augmentation field's Auto entry
    says what it will do before a run starts, and why in its tooltip."""
    import sys as _sys
    from pathlib import Path as _Path

    _sys.path.insert(0, str(_Path(__file__).resolve().parents[1] / "benchmarks"))
    from heldout import make_tiny

    w = make_window(qtbot, epochs=1)
    combo = w.training_panel.form.widget("augment")
    auto = combo.findData("auto")
    assert combo.itemText(auto) == "Auto (no shifts here)"  # digits: 8 px
    assert "under 16 px" in combo.itemData(auto, Qt.ItemDataRole.ToolTipRole)
    with qtbot.waitSignal(w.state.datasetChanged, timeout=30000):
        w.data_panel.load(str(make_tiny(tmp_path / "small", n=600)))  # 480 training images of 28 px
    w.builder.set_config(ModelConfig(arch="dense", input_shape=(1, 28, 28), latent=2, hidden=[32]))
    qtbot.waitUntil(lambda: "too few" in (combo.itemData(auto, Qt.ItemDataRole.ToolTipRole) or ""), timeout=5000)
    assert combo.itemText(auto) == "Auto (no shifts here)"
    assert combo.itemData(auto, Qt.ItemDataRole.ToolTipRole).startswith("No random shifts: 1 epoch is too few")
    w.training_panel.set_config(TrainConfig(epochs=5, batch_size=32, device="cpu"))
    assert combo.itemText(auto) == "Auto (shifts of up to 4 px here)"
    assert "a small set: 480 training images" in combo.itemData(auto, Qt.ItemDataRole.ToolTipRole)
