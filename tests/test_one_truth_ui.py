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
    w = create_window(spec)
    qtbot.addWidget(w)
    w.show()
    w.ask = lambda kind, text: "discard" if kind == "quit_unsaved" else "cancel"
    w.builder.set_config(ModelConfig.from_dict(model.to_dict()))
    w.training_panel.set_config(TrainConfig(**{"epochs": 2, "batch_size": 32, "device": "cpu", **train}))
    return w


def train(qtbot, w, timeout: int = 30000):
    with qtbot.waitSignal(w.state.training.finished, timeout=timeout) as blocker:
        qtbot.mouseClick(find_by_name(w, "Train"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not w.state.training.running, timeout=5000)
    return blocker.args[0]


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
    out = w.save_run(tmp_path / "run")
    assert out is not None and (out / "config.json").is_file()
    w2 = make_window(qtbot)
    with qtbot.waitSignal(w2.runOpened, timeout=30000):
        w2.open_run(tmp_path / "run")
    assert w2.state.snapshot is not None and w2.builder.config() == w.state.snapshot.model_config
