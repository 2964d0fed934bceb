"""Issue 8 in the studio: after Open run, Continue training (same weights and optimizer state, history
appended) or Train from scratch; a changed setting makes a fork whose config.json names its parent."""
from __future__ import annotations

import dataclasses
import json
import os
import re

import pytest
from conftest import find_by_name
from PySide6.QtCore import Qt
from test_one_truth_ui import make_window

from aestudio.core.trained import OPTIMIZER_JSON, OPTIMIZER_WEIGHTS, open_trained


def _train(qtbot, w, button: str = "Train"):
    with qtbot.waitSignal(w.state.training.finished, timeout=30000) as blocker:
        qtbot.mouseClick(find_by_name(w, button), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not w.state.training.running, timeout=15000)
    return blocker.args[0]


def _epochs_named(text: str) -> set[int]:
    return {int(n) for n in re.findall(r"[Ee]poch (\d+)", text)}


@pytest.fixture
def saved_run(qtbot, tmp_path, torch_one_thread):
    """A 3-epoch run saved by one window; returns (folder, its history)."""
    w = make_window(qtbot, epochs=3)
    _train(qtbot, w)
    out = w.save_run(tmp_path / "run")
    assert (out / OPTIMIZER_WEIGHTS).is_file() and (out / OPTIMIZER_JSON).is_file()
    return out, list(w.state.snapshot.history)


def _open(qtbot, path):
    w = make_window(qtbot)
    with qtbot.waitSignal(w.runOpened, timeout=30000):
        w.open_run(path)
    return w


def test_open_run_then_continue_training_starts_from_the_saved_loss(qtbot, tmp_path, saved_run, torch_one_thread):
    path, history = saved_run
    w = _open(qtbot, path)
    button = find_by_name(w, "Continue training")
    assert button.isVisible() and button.isEnabled() and button.toolTip()
    assert find_by_name(w, "Train from scratch").isEnabled()
    assert "epoch 3" in find_by_name(w, "Continue status").text()
    w.training_panel.set_config(dataclasses.replace(w.state.train_config, epochs=1))  # epochs alone: no fork
    epochs = []
    w.state.training.epochEnded.connect(lambda e: epochs.append((e.epoch, e.train["total"])))
    finished = _train(qtbot, w, "Continue training")
    assert finished.reason == "completed" and w.state.continued == []
    assert [e for e, _ in epochs] == [4]  # numbered on
    first_new = epochs[0][1]
    assert first_new <= history[-1]["train_total"] * 1.05  # from the saved loss, not from scratch
    assert first_new < history[0]["train_total"] - 0.5 * (history[0]["train_total"] - history[-1]["train_total"])
    snap = w.state.snapshot
    assert snap.epoch == 4 and len(snap.history) == 4 and snap.history[:3] == tuple(history)
    x, _y = w.loss_curves.curve_data("total", "val")
    assert list(x) == [1, 2, 3, 4]  # the opened history stays, the new epoch is appended

    def every_panel_names_epoch_4():  # the opened run's map (epoch 3) shows until epoch 4's is projected
        assert len(w.latent_map.points) > 0
        for text in (w.image_grid.caption.text(), find_by_name(w, "Latent map status").text(),
                     find_by_name(w, "Code source").text(), find_by_name(w, "Loss summary").text()):
            assert _epochs_named(text) == {4}, text

    qtbot.waitUntil(every_panel_names_epoch_4, timeout=15000)
    out = w.save_run(tmp_path / "continued")
    config = json.loads((out / "config.json").read_text())
    assert "parent" not in config and len(json.loads((out / "history.json").read_text())) == 4


def test_a_changed_setting_makes_a_fork_that_names_its_parent(qtbot, tmp_path, saved_run, torch_one_thread):
    path, _history = saved_run
    w = _open(qtbot, path)
    parent_fp = open_trained(path, w.state.dataset).fingerprint
    w.training_panel.set_config(dataclasses.replace(w.state.train_config, epochs=1, lr=5e-4))
    assert "fork" in find_by_name(w, "Continue status").text() and "lr" in find_by_name(w, "Continue status").text()
    with qtbot.waitSignal(w.state.training.finished, timeout=30000):
        assert w.continue_training() is True  # the same as the button
    qtbot.waitUntil(lambda: not w.state.training.running, timeout=15000)
    assert w.state.continued == ["lr"] and "fork" in w.windowTitle()
    out = w.save_run(tmp_path / "fork")
    parent = json.loads((out / "config.json").read_text())["parent"]
    assert parent == {"path": str(path), "name": "run", "fingerprint": parent_fp, "epoch": 3}
    assert json.loads((out / "config.json").read_text())["train"]["lr"] == 5e-4


def test_continue_refuses_a_changed_network_and_train_from_scratch_starts_over(qtbot, saved_run, torch_one_thread):
    path, _history = saved_run
    w = _open(qtbot, path)
    w.builder.set_config(dataclasses.replace(w.state.model_config, latent=3))
    qtbot.waitUntil(lambda: w.state.model_config.latent == 3, timeout=15000)
    assert w.continue_training() is False and not w.state.training.running
    assert "weights do not fit" in find_by_name(w, "Message bar").message
    w.training_panel.set_config(dataclasses.replace(w.state.train_config, epochs=1))
    finished = _train(qtbot, w, "Train from scratch")
    assert finished.reason == "completed" and w.state.snapshot.epoch == 1 and len(w.state.snapshot.history) == 1
    assert w.state.snapshot.model_config.latent == 3 and w.state.continued is None


def test_an_old_run_without_optimizer_state_says_so_and_continues(qtbot, saved_run, torch_one_thread):
    path, _history = saved_run
    os.unlink(path / OPTIMIZER_WEIGHTS)
    os.unlink(path / OPTIMIZER_JSON)
    w = _open(qtbot, path)
    assert "fresh optimizer" in find_by_name(w, "Message bar").message
    assert "fresh optimizer" in find_by_name(w, "Continue status").text()
    w.training_panel.set_config(dataclasses.replace(w.state.train_config, epochs=1))
    finished = _train(qtbot, w, "Continue training")
    assert finished.reason == "completed" and w.state.snapshot.epoch == 4
