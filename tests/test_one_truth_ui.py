"""Issue 8, the parts users see: contract names, closing and quitting, Stop's epoch, switching data,
linked exploration (map <-> sliders <-> decoded sample) and small things (wheel, z1 naming, titles)."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import find_by_name
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QMessageBox

from aestudio.app import create_window
from aestudio.core.config import ModelConfig, TrainConfig
from test_app import make_window as make_app_window
from test_app import train  # noqa: F401  (used by the tests below)

TINY = ModelConfig(arch="dense", latent=2, hidden=[32])
FIELD_NAMES = ["Architecture", "Kind", "Code size", "Epochs", "Batch size", "Learning rate", "Seed",
               "Validation fraction", "Noise"]


@pytest.fixture
def no_dialogs(monkeypatch):
    """Any file dialog or message box opened by the code under test fails the test."""
    def refuse(*_a, **_k):
        raise AssertionError("a dialog was opened")

    for name in ("getOpenFileName", "getSaveFileName", "getExistingDirectory"):
        monkeypatch.setattr(QFileDialog, name, refuse)
    monkeypatch.setattr(QMessageBox, "exec", refuse)


def make_window(qtbot, spec: str = "digits", model: ModelConfig = TINY, **train):
    """test_app's window, with the quit question answered (Discard) so teardown never blocks."""
    w = make_app_window(qtbot, spec, model, **train)
    w.ask = lambda kind, text: "discard" if kind == "quit_unsaved" else "cancel"
    return w


# ---- 1. contract ------------------------------------------------------------------------------
def test_contract_names_and_save_open_without_dialogs(qtbot, tmp_path, no_dialogs, torch_one_thread):
    w = make_window(qtbot)
    for name in FIELD_NAMES:
        widget = find_by_name(w, name)
        assert widget.toolTip(), name
    find_by_name(w, "Code size").setValue(3)
    assert w.state.model_config.latent == 3 and w.builder.config().latent == 3
    find_by_name(w, "Seed").setValue(7)
    assert w.training_panel.config().seed == 7
    kind = find_by_name(w, "Kind")
    kind.setCurrentIndex(kind.findData("vae"))
    assert w.builder.config().kind == "vae"
    w.builder.set_config(TINY)
    assert callable(w.save_run) and callable(w.open_run)
    train(qtbot, w)
    w.ask = None  # no hook: save_run and open_run still open no dialog
    out = w.save_run(tmp_path / "run")
    assert out is not None and (out / "config.json").is_file()
    again = w.save_run(tmp_path / "run")  # a run is there already: saved beside it, nothing destroyed
    assert again is not None and again != out and (again / "config.json").is_file()
    w2 = make_window(qtbot)
    w2.ask = None
    with qtbot.waitSignal(w2.runOpened, timeout=30000):
        w2.open_run(tmp_path / "run")
    assert w2.state.snapshot is not None and w2.builder.config() == w.state.snapshot.model_config


# ---- 2. closing and quitting ----------------------------------------------------------------------
def test_close_refuses_while_the_thread_runs_and_closes_once_it_stopped(qtbot, monkeypatch, torch_one_thread):
    w = make_window(qtbot, epochs=500, batch_size=16)
    with qtbot.waitSignal(w.state.training.progress, timeout=10000):
        qtbot.mouseClick(find_by_name(w, "Train"), Qt.MouseButton.LeftButton)
    ctl = w.state.training
    thread = ctl._thread
    monkeypatch.setattr(ctl, "shutdown", lambda timeout_ms=0: False)  # the thread did not end in time
    w.close()
    assert w.isVisible() and ctl.running and thread.isRunning()  # nothing destroyed a running thread
    assert "stopped" in find_by_name(w, "Message bar").message
    monkeypatch.undo()
    ctl.stop()
    qtbot.waitUntil(lambda: not w.isVisible(), timeout=10000)  # it closes by itself once the thread ended
    assert not ctl.running


def test_quit_with_unsaved_model_asks_save_discard_cancel(qtbot, tmp_path, no_dialogs, torch_one_thread):
    w = make_window(qtbot)
    train(qtbot, w)
    asked: list[str] = []
    answers = {"quit_unsaved": "cancel"}
    w.ask = lambda kind, text: (asked.append(kind), answers[kind])[1]
    w.choose_save_path = lambda suggested: (asked.append("path"), str(tmp_path / "kept"))[1]
    w.quit_action.trigger()
    assert asked == ["quit_unsaved"] and w.isVisible()  # Cancel keeps the window open
    answers["quit_unsaved"] = "Save"
    w.quit_action.trigger()
    assert asked == ["quit_unsaved", "quit_unsaved", "path"] and not w.isVisible()
    assert (tmp_path / "kept" / "config.json").is_file() and (tmp_path / "kept" / "weights.safetensors").is_file()


def test_quit_asks_nothing_once_saved_and_discard_closes(qtbot, tmp_path, no_dialogs, torch_one_thread):
    w = make_window(qtbot)
    train(qtbot, w)
    asked: list[str] = []
    w.ask = lambda kind, text: (asked.append(kind), "discard")[1]
    assert w.has_unsaved_model()
    w.save_run(tmp_path / "run")
    w.quit_action.trigger()
    assert asked == [] and not w.isVisible()
    w2 = make_window(qtbot)
    train(qtbot, w2)
    w2.ask = lambda kind, text: (asked.append(kind), "discard")[1]
    w2.quit_action.trigger()
    assert asked == ["quit_unsaved"] and not w2.isVisible()


def test_quit_during_training_and_save_saves_the_stopped_model(qtbot, tmp_path, no_dialogs, torch_one_thread):
    w = make_window(qtbot, epochs=500, batch_size=16)
    with qtbot.waitSignal(w.state.training.snapshot, timeout=20000):
        qtbot.mouseClick(find_by_name(w, "Train"), Qt.MouseButton.LeftButton)
    w.ask = lambda kind, text: {"quit_unsaved": QMessageBox.StandardButton.Save}[kind]
    w.choose_save_path = lambda suggested: str(tmp_path / "stopped")
    w.quit_action.trigger()
    assert not w.isVisible() and not w.state.training.running
    assert (tmp_path / "stopped" / "weights.safetensors").is_file()


# ---- 3. Stop says which weights are kept, and every panel shows that epoch --------------------------------
def _epochs_named(text: str) -> set[int]:
    import re

    return {int(n) for n in re.findall(r"[Ee]poch (\d+)", text)}


def test_stop_keeps_the_last_completed_epoch_and_every_panel_names_it(qtbot, torch_one_thread):
    import re

    w = make_window(qtbot, epochs=500, batch_size=16)
    with qtbot.waitSignal(w.state.training.snapshot, timeout=20000):  # at least one epoch completed
        qtbot.mouseClick(find_by_name(w, "Train"), Qt.MouseButton.LeftButton)
    qtbot.waitSignal(w.state.training.progress, timeout=10000).wait()  # and into the next epoch
    with qtbot.waitSignal(w.state.training.finished, timeout=10000) as blocker:
        qtbot.mouseClick(find_by_name(w, "Stop"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not w.state.training.running, timeout=15000)
    message = blocker.args[0].message
    kept = int(re.search(r"keeping the weights after epoch (\d+)", message).group(1))
    assert kept >= 1 and f"keeping the weights after epoch {kept}" in find_by_name(w, "Training status").text()
    snap = w.state.snapshot
    assert snap.epoch == kept and len(snap.history) == kept
    x, _y = w.loss_curves.curve_data("total", "val")
    assert len(x) == kept and x[-1] == kept  # the curves' last point is the kept epoch

    def every_panel_names_the_kept_epoch():  # the map may still be projecting the kept model's codes
        assert len(w.latent_map.points) > 0
        for text in (w.image_grid.caption.text(), find_by_name(w, "Latent map status").text(),
                     find_by_name(w, "Code source").text(), find_by_name(w, "Progress").format(),
                     find_by_name(w, "Loss summary").text(), find_by_name(w, "Decoded sample origin").text()):
            assert _epochs_named(text) == {kept}, text

    qtbot.waitUntil(every_panel_names_the_kept_epoch, timeout=15000)
    # the weights kept are the ones the history's last validation loss belongs to
    trainer = w.state.training.last_trainer
    assert trainer.evaluate_terms()["total"] == pytest.approx(trainer.history[-1]["val_total"], rel=1e-4)


# ---- 4. switching data sets -------------------------------------------------------------------------------
def test_switching_data_clears_curves_legend_grid_and_model(qtbot, torch_one_thread):
    w = make_window(qtbot)
    train(qtbot, w)
    qtbot.waitUntil(lambda: len(w.latent_map.points) > 0, timeout=15000)
    assert len(w.loss_curves.curve_data("total", "val")[0]) == 2
    assert w.latent_map.chips.isVisible() and len(w.latent_map.chips.buttons) == 10
    assert w.image_grid.outputs is not None
    with qtbot.waitSignal(w.data_panel.loaded, timeout=30000):
        w.data_panel.load("fashion-10k")
    assert w.state.snapshot is None
    assert w.loss_curves.terms == {} and len(w.loss_curves.curve_data("total", "batch")[0]) == 0
    assert "No training yet" in find_by_name(w, "Loss summary").text()
    assert not w.latent_map.chips.isVisible() and w.latent_map.chips.buttons == []
    assert w.latent_map._class_items == [] and len(w.latent_map.points) == 0
    assert w.image_grid.outputs is None
    assert w.decoded_view.current_image is None
    assert not w.latent_sliders.random_button.isEnabled()


# ---- 5. linked exploration ----------------------------------------------------------------------------------
def _click_map(qtbot, w, x: float, y: float):
    from PySide6.QtCore import QPointF

    plot, vb = w.latent_map.plot, w.latent_map.vb
    pos = plot.mapFromScene(vb.mapViewToScene(QPointF(x, y)))
    with qtbot.waitSignal(w.state.decoded, timeout=10000):
        qtbot.mouseClick(plot.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    spot = vb.mapSceneToView(plot.mapToScene(pos))
    return spot.x(), spot.y()


def test_2d_map_click_sets_the_sliders_and_a_slider_moves_the_mark(qtbot, torch_one_thread):
    w = make_window(qtbot)
    train(qtbot, w)
    qtbot.waitUntil(lambda: len(w.latent_map.points) > 0, timeout=15000)
    qtbot.wait(50)
    target = w.latent_map.points[3]
    x, y = _click_map(qtbot, w, float(target[0]), float(target[1]))
    sliders = w.latent_sliders
    np.testing.assert_allclose(sliders.code, [x, y], atol=1e-5)  # a 2-D code is the clicked point itself
    assert sliders.sliders[0].value() == pytest.approx(x, abs=0.01)
    assert sliders.sliders[1].value() == pytest.approx(y, abs=0.01)
    assert "map point" in find_by_name(w, "Code source").text()
    np.testing.assert_allclose(w.decoded_view.current_image, w.state.snapshot.decode([x, y])[0], atol=1e-6)

    mark = w.latent_map.code_mark
    with qtbot.waitSignal(w.state.decoded, timeout=10000):
        sliders.sliders[0].setValue(sliders.sliders[0].maximum())

    def mark_at_the_code():
        assert w.latent_map.code_mark is mark  # moved, not re-created
        mx, my = mark.getData()
        assert mx[0] == pytest.approx(float(sliders.code[0])) and my[0] == pytest.approx(float(sliders.code[1]))

    qtbot.waitUntil(mark_at_the_code, timeout=10000)
    mx, my = mark.getData()
    assert mx[0] == pytest.approx(sliders.sliders[0].maximum(), abs=1e-3)


def test_projected_map_click_sets_the_sliders_through_the_inverse(qtbot, torch_one_thread):
    w = make_window(qtbot, model=ModelConfig(arch="dense", latent=4, hidden=[32]))
    train(qtbot, w)
    qtbot.waitUntil(lambda: w.latent_map.mode == "projection" and not w.latent_map.busy_computing, timeout=20000)
    qtbot.wait(50)
    target = w.latent_map.points[5]
    x, y = _click_map(qtbot, w, float(target[0]), float(target[1]))
    sliders, proj = w.latent_sliders, w.latent_map.projection
    expected = proj.inverse(np.array([[x, y]], np.float32) * w.latent_map._flip)[0]
    np.testing.assert_allclose(sliders.code, expected, atol=1e-4)
    assert "inverse of PCA" in find_by_name(w, "Code source").text()
    # a slider code is marked where the projection puts it
    sliders.set_code(np.asarray(w.state.snapshot.codes[9], np.float32))
    mx, my = w.latent_map.code_mark.getData()
    p = proj.transform(w.state.snapshot.codes[9:10])[0] * w.latent_map._flip
    assert (mx[0], my[0]) == (pytest.approx(float(p[0]), abs=1e-4), pytest.approx(float(p[1]), abs=1e-4))


def test_each_new_model_refreshes_the_sliders_and_the_decoded_sample(qtbot, torch_one_thread):
    w = make_window(qtbot, epochs=4)
    seen: list[tuple[int, np.ndarray, np.ndarray, str, str]] = []

    def record(snap):
        if snap is not None:
            seen.append((snap.epoch, snap.codes.mean(0), w.latent_sliders.code.copy(),
                         find_by_name(w, "Code source").text(), w.decoded_view.caption.text()))

    w.state.snapshotChanged.connect(record)
    train(qtbot, w)
    epochs = [s[0] for s in seen]  # a new model every epoch the panels are ready for (never a queue of them)
    assert epochs == sorted(set(epochs)) and epochs[-1] == 4 and len(epochs) >= 2
    for epoch, mean, code, source, caption in seen:
        np.testing.assert_allclose(code, mean, atol=1e-5)  # not the first epoch's code
        assert "mean of the validation codes" in source and _epochs_named(source) == {epoch}
        assert _epochs_named(caption) == {epoch}
    snap = w.state.snapshot
    np.testing.assert_allclose(w.decoded_view.current_image, snap.decode(snap.codes.mean(0))[0], atol=1e-5)
    mx, my = w.latent_map.code_mark.getData()
    assert mx[0] == pytest.approx(float(snap.codes.mean(0)[0]), abs=1e-5)


# ---- 6. small things ------------------------------------------------------------------------------------
def _wheel(widget, dy: int = -120) -> None:
    from PySide6.QtCore import QPoint, QPointF
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication

    pos = QPointF(widget.rect().center())
    event = QWheelEvent(pos, QPointF(widget.mapToGlobal(pos.toPoint())), QPoint(0, 0), QPoint(0, dy),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)


def test_wheel_over_unfocused_fields_scrolls_the_builder_instead(qtbot):
    from PySide6.QtWidgets import QScrollArea

    w = make_window(qtbot, model=ModelConfig(arch="dense", kind="vae", latent=2, hidden=[32], beta=1.0))
    w.resize(1200, 500)  # short enough that the Model builder scrolls
    qtbot.wait(20)
    beta = find_by_name(w, "Beta")
    scroll = w.builder.findChild(QScrollArea)
    bar = scroll.verticalScrollBar()
    assert bar.maximum() > 0 and not beta.hasFocus()
    before = bar.value()
    for _ in range(3):
        _wheel(beta)
    assert beta.value() == 1.0 and w.builder.config().beta == 1.0  # the value is untouched
    assert bar.value() > before  # the builder scrolled
    for name in ("Kind", "Code size", "Epochs", "Noise"):
        field = find_by_name(w, name)
        value = field.currentIndex() if hasattr(field, "currentIndex") else field.value()
        _wheel(field)
        assert (field.currentIndex() if hasattr(field, "currentIndex") else field.value()) == value, name
    beta.setFocus()  # a focused field still takes the wheel
    qtbot.waitUntil(beta.hasFocus, timeout=10000)
    _wheel(beta, 120)
    assert beta.value() != 1.0


def test_titles_dimension_names_labs_size_and_empty_plots(qtbot, torch_one_thread):
    from PySide6.QtGui import QGuiApplication

    w = make_window(qtbot)
    display = QGuiApplication.applicationDisplayName() or "aestudio"
    for title in (w.windowTitle(),):
        assert title.endswith(display) and title.count("aestudio") == 1  # Qt appends nothing, nothing repeats
    # empty plots: no axes until there is data
    assert not w.loss_curves.axes_visible and not w.latent_map.axes_visible
    train(qtbot, w)
    qtbot.waitUntil(lambda: len(w.latent_map.points) > 0, timeout=15000)
    assert w.loss_curves.axes_visible and w.latent_map.axes_visible
    # one naming of latent dimensions: z1, z2, ...
    assert [lab.text() for lab in w.latent_sliders.dim_labels[:2]] == ["z1", "z2"]
    assert w.latent_map.plot.getPlotItem().getAxis("bottom").labelText.startswith("z1")
    # the Labs window fits the screen it opens on
    w.show_lab("Latent health")
    labs = w.labs_window
    avail = (w.screen() or QGuiApplication.primaryScreen()).availableGeometry()
    assert labs.width() <= avail.width() and labs.height() <= avail.height()
    assert labs.windowTitle().endswith(display) and labs.windowTitle().count("aestudio") == 1
    with qtbot.waitSignal(w.data_panel.loaded, timeout=30000):
        w.data_panel.load("fashion-10k")
    assert not w.loss_curves.axes_visible and not w.latent_map.axes_visible


def test_a_labs_empty_plots_hide_their_axes_until_a_result(qtbot, torch_one_thread):
    w = make_window(qtbot)
    train(qtbot, w)
    lab = w.show_lab("Latent health")
    assert lab.axes_hidden and lab._figure_axes()
    assert all(not item.getAxis(name).isVisible() for item, name in lab._figure_axes())
    qtbot.mouseClick(lab.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: lab.last_result is not None, timeout=30000)
    assert not lab.axes_hidden
    assert any(item.getAxis(name).isVisible() for item, name in lab._figure_axes())


def test_contract_names_are_unique_with_the_labs_open(qtbot):
    from conftest import find_all_by_name

    w = make_window(qtbot)
    for title in ("Few labels", "Denoising lab", "Anomaly lab", "PCA vs autoencoder", "Traversal", "Latent health"):
        w.show_lab(title)
    for name in FIELD_NAMES:
        found = find_all_by_name(w, name)
        assert len(found) == 1, (name, found)
        assert found[0].window() is w


def test_image_grid_uses_the_noise_the_model_was_trained_with(qtbot, torch_one_thread):
    w = make_window(qtbot, noise="gaussian:0.3")
    train(qtbot, w)
    assert w.state.snapshot.train_config.noise == "gaussian:0.3"
    noise = find_by_name(w, "Noise")
    noise.setCurrentIndex(noise.findData("none"))  # today's setting changes, the trained model does not
    assert w.training_panel.config().noise in (None, "none", "")
    w.state.set_snapshot(w.state.snapshot)
    assert w.image_grid.noisy is not None  # still the denoising model's noisy inputs


def test_a_labs_validation_set_is_the_models_after_the_seed_changes(qtbot, tmp_path, torch_one_thread):
    from aestudio.core.datasets import split_indices
    from aestudio.ui.labs.base import lab_data

    w = make_window(qtbot, seed=0)
    train(qtbot, w)
    _train_idx, val_idx = split_indices(w.state.dataset.n, w.state.train_config.val_fraction, 0)
    find_by_name(w, "Seed").setValue(5)  # a new setting for the next run
    find_by_name(w, "Validation fraction").set_exact(0.3)
    assert w.state.train_config.seed == 5 and w.state.train_config.val_fraction == 0.3
    data = lab_data(w.state)
    np.testing.assert_array_equal(data.val.images, w.state.dataset.images[val_idx])
    assert data.train.n + data.val.n == w.state.dataset.n
    w.save_run(tmp_path / "run")  # an opened run's lab data is its own split too
    w2 = make_window(qtbot, seed=9)
    with qtbot.waitSignal(w2.runOpened, timeout=30000):
        w2.open_run(tmp_path / "run")
    find_by_name(w2, "Seed").setValue(11)
    np.testing.assert_array_equal(lab_data(w2.state).val.images, w.state.dataset.images[val_idx])


def test_saving_during_a_second_run_saves_that_runs_weights_history_and_settings(qtbot, tmp_path, torch_one_thread):
    from aestudio.core.checkpoint import load_run
    from aestudio.core.training import Trainer

    w = make_window(qtbot, epochs=2)
    train(qtbot, w)
    first_history = list(w.state.snapshot.history)
    w.training_panel.set_config(TrainConfig(epochs=500, batch_size=16, lr=5e-3, device="cpu"))
    snaps = []
    w.state.training.snapshot.connect(snaps.append)
    qtbot.mouseClick(find_by_name(w, "Train"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(snaps) >= 3, timeout=30000)  # the second run is three epochs in
    out = w.save_run(tmp_path / "second")
    w.state.training.stop()
    qtbot.waitUntil(lambda: not w.state.training.running, timeout=10000)
    run = load_run(out)
    assert run.train_config.epochs == 500 and run.train_config.batch_size == 16
    assert len(run.history) >= 3 and run.history[0] != first_history[0]
    trainer = Trainer(run.model_config, run.train_config, w.state.dataset, model=run.model)
    evaluated = trainer.evaluate_terms()["total"]
    assert evaluated == pytest.approx(run.history[-1]["val_total"], rel=0.02)
