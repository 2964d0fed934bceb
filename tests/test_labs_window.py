"""Every lab is reachable from the main window's Labs menu, by its accessible name, and runs there."""
from __future__ import annotations

from conftest import find_by_name
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractSpinBox
from test_app import make_window, train

LAB_NAMES = ["Denoising lab", "Anomaly lab", "PCA vs autoencoder", "Few labels", "Traversal", "Latent health",
             "VAE tools", "Code robustness"]


def test_labs_menu_opens_each_lab(qtbot):
    w = make_window(qtbot)
    menu = next(a.menu() for a in w.menuBar().actions() if a.text() == "&Labs")
    titles = [a.text() for a in menu.actions()]
    assert titles == LAB_NAMES
    for action in menu.actions():
        assert action.toolTip()
        action.trigger()
        lab = find_by_name(w.labs_window, action.text())
        assert lab.isVisible() and w.labs_window.tabs.currentWidget() is lab
        assert not lab.run_button.isEnabled()  # no model yet: explained, not clickable
        assert "Train a model" in lab.notice.text()


def test_a_lab_runs_on_the_model_trained_in_the_window(qtbot):
    w = make_window(qtbot)
    assert train(qtbot, w).reason == "completed"
    lab = w.show_lab("Latent health")
    assert lab.run_button.isEnabled()
    qtbot.mouseClick(lab.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: lab.last_result is not None, timeout=30000)
    assert lab.table.rowCount() > 0
    w.close()


def test_lab_number_fields_are_not_stretched_across_the_lab(qtbot):
    """A spin box alone on a form row spanned the whole 1,150 px lab (the VAE tools' Image and Draws,
    the Code robustness steps); each is now as wide as its numbers."""
    from aestudio.ui.labs.robustness_lab import RobustnessLab
    from aestudio.ui.labs.vae_lab import VaeToolsLab
    from aestudio.ui.state import StudioState

    state = StudioState()
    for lab in (VaeToolsLab(state), RobustnessLab(state)):
        qtbot.addWidget(lab)
        lab.resize(1150, 800)
        lab.show()
        qtbot.waitExposed(lab)
        spins = [w for w in lab.findChildren(QAbstractSpinBox) if w.isVisible()]
        assert spins and all(w.width() < 300 for w in spins), [(w.accessibleName(), w.width()) for w in spins]
