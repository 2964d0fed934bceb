"""Issue 11, export in the studio: File > Export actions write what the CLI writes, on a worker thread,
with the path from the window's `choose_export_path` hook; "Show PyTorch code" beside the builder."""
from __future__ import annotations

import csv
import importlib.util

import pytest
import torch
from conftest import find_by_name
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from aestudio.app import create_window
from aestudio.core.checkpoint import save_run
from aestudio.core.config import ModelConfig, TrainConfig
from aestudio.core.datasets import load_dataset
from aestudio.core.models import Autoencoder

CFG = ModelConfig(arch="dense", kind="ae", input_shape=(1, 8, 8), latent=2, hidden=(8,))


@pytest.fixture
def window_with_run(qtbot, tmp_path):
    data = load_dataset("digits")
    torch.manual_seed(0)
    model = Autoencoder(CFG)
    model.init_data_stats(torch.from_numpy(data.images).float() / 255.0)
    run = save_run(tmp_path / "run", CFG, TrainConfig(epochs=1, noise="gaussian:0.3"), model.eval(), history=[],
                   data="digits")
    w = create_window("digits")
    qtbot.addWidget(w)
    w.show()
    with qtbot.waitSignal(w.runOpened, timeout=30000):
        w.open_run(run)
    asked = []

    def choose(kind, suggested):
        asked.append((kind, suggested))
        return str(tmp_path / "out" / {"codes": "codes.csv", "code": "model.py"}.get(kind, kind))

    w.choose_export_path = choose
    return w, tmp_path / "out", asked


def _export(qtbot, w, kind):
    with qtbot.waitSignal(w.export_actions.finished, timeout=60000) as blocker:
        w.export_actions.actions[kind].trigger()
    assert blocker.args[0] == kind
    return blocker.args[1]


def test_export_menu_writes_every_format(qtbot, window_with_run):
    w, out, asked = window_with_run
    menu_texts = [a.text() for a in w.menuBar().actions()[0].menu().actions()]
    assert "&Export" in menu_texts
    n = w.state.dataset.n

    _export(qtbot, w, "codes")
    rows = list(csv.reader(open(out / "codes.csv", newline="")))
    assert rows[0] == ["file", "label", "z1", "z2"] and len(rows) == n + 1

    _export(qtbot, w, "projector")
    assert len((out / "projector" / "vectors.tsv").read_text().splitlines()) == n
    assert len((out / "projector" / "metadata.tsv").read_text().splitlines()) == n + 1

    written = _export(qtbot, w, "reconstructions")
    assert len(written) == n and (out / "reconstructions" / "digits-00000.png").is_file()
    assert (out / "reconstructions" / "noisy").is_dir()  # the model was trained with noise: denoised images

    _export(qtbot, w, "torchscript")
    assert {p.name for p in (out / "torchscript").iterdir()} == {"encoder.pt", "decoder.pt"}
    if importlib.util.find_spec("onnx") is not None:  # ONNX only where the export extra is installed
        _export(qtbot, w, "onnx")
        assert {p.name for p in (out / "onnx").iterdir()} == {"encoder.onnx", "decoder.onnx"}
    assert [k for k, _ in asked][:4] == ["codes", "projector", "reconstructions", "torchscript"]
    assert w.message_bar.level == "info" and "Exported" in w.message_bar.message
    assert not w.export_actions.progress.isVisible()


def test_cancel_and_failure_are_messages(qtbot, window_with_run, tmp_path):
    w, out, _asked = window_with_run
    w.choose_export_path = lambda kind, suggested: ""
    w.export_actions.actions["codes"].trigger()
    assert not (out / "codes.csv").exists() and w.export_actions.task is None
    blocker_file = tmp_path / "blocker"
    blocker_file.write_text("a file, not a folder")
    w.choose_export_path = lambda kind, suggested: str(blocker_file / "p")
    with qtbot.waitSignal(w.export_actions.failed, timeout=30000) as blocker:
        w.export_actions.actions["projector"].trigger()
    assert "cannot write" in blocker.args[1]
    assert w.message_bar.level == "error" and "Could not export" in w.message_bar.message
    assert all(a.isEnabled() for a in w.export_actions.actions.values())  # usable again


def test_exports_need_a_model(qtbot):
    w = create_window("digits")
    qtbot.addWidget(w)
    assert w.state.snapshot is None
    assert not any(a.isEnabled() for a in w.export_actions.actions.values())
    assert w.export_actions.export("codes", "/nonexistent/codes.csv") is None
    assert "Train a model" in w.message_bar.message


def test_show_pytorch_code_beside_the_builder(qtbot, window_with_run):
    w, out, _asked = window_with_run
    button = find_by_name(w, "Show PyTorch code")
    assert w.docks["builder"].isAncestorOf(button) and w.docks["builder"].isAncestorOf(w.builder)
    with qtbot.waitSignal(w.export_actions.codeReady, timeout=30000) as blocker:
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    dialog = w.export_actions.code_dialog
    text = blocker.args[0]
    assert dialog.isVisible() and not dialog.isModal()
    assert dialog.text.isReadOnly() and dialog.text.toPlainText() == text
    assert "class Autoencoder(nn.Module)" in text and "nn.Linear(64, 8)" in text
    qtbot.mouseClick(find_by_name(dialog, "Copy code"), Qt.MouseButton.LeftButton)
    assert QApplication.clipboard().text() == text
    qtbot.mouseClick(find_by_name(dialog, "Save code"), Qt.MouseButton.LeftButton)
    assert (out / "model.py").read_text() == text
    dialog.close()


def test_show_code_explains_an_impossible_builder_config(qtbot):
    w = create_window("digits")
    qtbot.addWidget(w)
    w.builder.set_config(ModelConfig(arch="conv", input_shape=(1, 8, 8), latent=2, hidden=(4, 8, 16, 32)))
    dialog = w.export_actions.show_code()
    assert "cannot be built" in dialog.text.toPlainText()
    assert not dialog.save_button.isEnabled()
    dialog.close()


def test_cancel_stops_an_export(qtbot, window_with_run, monkeypatch):
    from aestudio.ui import export_actions

    w, out, _asked = window_with_run
    real_start = export_actions.start

    def cancelled_start(task):  # the user presses Cancel before the first batch is done
        w.export_actions.cancel()
        assert task.cancel_event.is_set() and w.export_actions.cancel_button.isVisibleTo(w)
        return real_start(task)

    monkeypatch.setattr(export_actions, "start", cancelled_start)
    with qtbot.waitSignal(w.export_actions.failed, timeout=30000) as blocker:
        w.export_actions.actions["reconstructions"].trigger()
    assert "cancelled" in blocker.args[1]
    assert w.message_bar.level == "info"
    assert not list((out / "reconstructions").glob("*.png"))
    assert not w.export_actions.cancel_button.isVisibleTo(w)
    assert all(a.isEnabled() for a in w.export_actions.actions.values())
