"""Exploration labs, widgets: Few labels, Traversal, Latent health (pytest-qt smoke tests)."""
from __future__ import annotations

import csv
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractSpinBox, QCheckBox, QComboBox

from aestudio.core.config import ModelConfig, TrainConfig
from aestudio.core.datasets import make_shapes
from aestudio.core.training import fit
from aestudio.workers.training import make_snapshot

TIMEOUT_MS = 60_000


def _trained(data, kind: str, epochs: int, **kw):
    mc = ModelConfig(arch="dense", kind=kind, input_shape=data.shape, latent=8, **kw)
    tc = TrainConfig(epochs=epochs, batch_size=64, device="cpu", seed=0, val_fraction=0.2)
    trainer, _ = fit(mc, tc, data)
    return trainer, tc


@pytest.fixture(scope="module")
def digits_ae(digits):
    return _trained(digits, "ae", epochs=3)


@pytest.fixture(scope="module")
def digits_vae(digits):
    return _trained(digits, "vae", epochs=2, loss="bce")


@pytest.fixture(scope="module")
def shapes_vae():
    data = make_shapes(n=500, size=16, seed=0)
    trainer, tc = _trained(data, "vae", epochs=2, loss="bce", beta=4.0)
    return data, trainer, tc


def _state(qtbot, data, spec, trained):
    from aestudio.ui.state import StudioState

    trainer, tc = trained
    state = StudioState()
    state.set_dataset(data, spec)
    state.set_train_config(TrainConfig(**tc.to_dict()))  # the same split as the trainer's
    state.set_snapshot(make_snapshot(trainer, 1))
    return state


def _run(qtbot, lab):
    assert lab.run_button.isEnabled()
    lab.last_result = None
    qtbot.mouseClick(lab.run_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: lab.last_result is not None, timeout=TIMEOUT_MS)
    assert not lab.busy and lab.run_button.isEnabled()
    assert lab.export_figure_button.isEnabled() and lab.export_numbers_button.isEnabled()
    return lab.last_result


def _check_exports(lab, tmp_path, name):
    png = lab.export_figure(tmp_path / f"{name}.png")
    svg = lab.export_figure(tmp_path / f"{name}.svg")
    csv_path = lab.export_numbers(tmp_path / f"{name}.csv")
    assert png.stat().st_size > 1000 and svg.stat().st_size > 1000
    assert "<svg" in svg.read_text(errors="ignore")[:2000]
    with csv_path.open() as f:
        rows = list(csv.reader(f))
    assert rows[0] == lab.number_header and len(rows) == len(lab.number_rows) + 1
    return rows


def _check_controls_described(lab):
    """Every input control explains itself (tooltip) and has an accessible name."""
    inputs = [w for cls in (QAbstractSpinBox, QComboBox, QCheckBox) for w in lab.findChildren(cls)]
    assert inputs
    for w in inputs:
        assert w.toolTip(), f"{type(w).__name__} {w.accessibleName()!r} has no tooltip"
        assert w.accessibleName(), f"{type(w).__name__} with tooltip {w.toolTip()[:40]!r} has no accessible name"


def test_labs_wait_for_a_model(qtbot):
    from aestudio.ui.labs.few_labels_lab import FewLabelsLab
    from aestudio.ui.labs.health_lab import LatentHealthLab
    from aestudio.ui.labs.traversal_lab import TraversalLab
    from aestudio.ui.state import StudioState

    state = StudioState()
    for cls, title in ((FewLabelsLab, "Few labels"), (TraversalLab, "Traversal"), (LatentHealthLab, "Latent health")):
        lab = cls(state)
        qtbot.addWidget(lab)
        assert lab.title == title and lab.accessibleName() == title
        assert not lab.run_button.isEnabled() and "Train a model" in lab.notice.text()
        _check_controls_described(lab)


def test_few_labels_lab(qtbot, tmp_path, digits, digits_ae):
    from aestudio.ui.labs.few_labels_lab import FewLabelsLab

    lab = FewLabelsLab(_state(qtbot, digits, "digits", digits_ae))
    qtbot.addWidget(lab)
    lab.resize(1000, 700)
    lab.show()
    for c, box in lab.count_boxes.items():
        box.setChecked(c in (1, 10, None))
    lab.repeats.setValue(2)
    lab.finetune.setChecked(True)
    assert lab.finetune_epochs.isEnabled()
    lab.finetune_epochs.setValue(2)
    result = _run(qtbot, lab)
    assert result.counts == [1, 10, None] and set(result.curves) == {"codes", "pca", "raw", "finetune"}
    x, y = lab.curves["codes"].getData()
    assert len(x) == 3 and np.all(np.diff(x) > 0) and np.all((y >= 0) & (y <= 100))
    assert lab.chance_line.isVisible() and 0 < lab.chance_line.value() < 30
    assert lab.table.rowCount() == 3 and lab.number_header[0] == "labels per class"
    assert "Chance" in lab.caption.text()
    rows = _check_exports(lab, tmp_path, "few")
    assert rows[1][0] == "1" and rows[3][0].startswith("all")
    # no counts ticked: nothing runs
    for box in lab.count_boxes.values():
        box.setChecked(False)
    lab.run()
    assert not lab.busy and "at least one" in lab.notice.text()


def test_traversal_lab_on_shapes_shows_factor_scores(qtbot, tmp_path, shapes_vae):
    from aestudio.ui.labs.traversal_lab import TraversalLab

    data, trainer, tc = shapes_vae
    lab = TraversalLab(_state(qtbot, data, "shapes", (trainer, tc)))
    qtbot.addWidget(lab)
    lab.resize(1000, 700)
    lab.show()
    assert lab.method.isEnabled()
    assert lab.thumb_a.pixmap() is not None and not lab.thumb_a.pixmap().isNull()
    lab.rows_spin.setValue(4)
    lab.steps_spin.setValue(5)
    lab.base_mode.setCurrentIndex(1)
    lab.base_index.setValue(2)
    lab.index_a.setValue(1)
    lab.index_b.setValue(4)
    lab.method.setCurrentIndex(lab.method.findData("mi"))
    r = _run(qtbot, lab)
    assert r.base == "image 2" and r.pair == (1, 4) and len(r.dims) == 4
    shown = lab.trav_image.image
    assert shown.shape[:2] == (4 * 16 + 3, 5 * 16 + 4)
    assert lab.interp_image.image.shape[:2] == (2 * 16 + 1, 10 * 16 + 9)  # linear and spherical rows
    assert lab._factor_shown and lab.factor_image.image.shape[:2] == (5, 4)
    assert lab.number_header == ["dimension", "KL", *data.factor_names] and lab.table.rowCount() == 8
    assert "MIG" in lab.readout.text() and "prior" in lab.readout.text()
    left = lab.trav_plot.getAxis("left")._tickLevels[0]
    assert len(left) == 4 and left[0][1].startswith(f"z{r.dims[0] + 1} ")
    _check_exports(lab, tmp_path, "traversal")


def test_traversal_lab_without_factors(qtbot, digits, digits_ae):
    from aestudio.ui.labs.traversal_lab import TraversalLab

    lab = TraversalLab(_state(qtbot, digits, "digits", digits_ae))
    qtbot.addWidget(lab)
    assert not lab.method.isEnabled()
    r = _run(qtbot, lab)
    assert r.factor_matrix is None and not lab._factor_shown
    assert lab.number_header == ["dimension", "variance"]
    assert list(r.strips) == ["linear"]
    assert "fitted to the codes" in lab.readout.text()


def test_latent_health_lab(qtbot, tmp_path, digits, digits_vae):
    from aestudio.ui.labs.health_lab import LatentHealthLab

    lab = LatentHealthLab(_state(qtbot, digits, "digits", digits_vae))
    qtbot.addWidget(lab)
    lab.resize(1000, 700)
    lab.show()
    lab.threshold.setValue(0.02)
    r = _run(qtbot, lab)
    assert r.is_vae and r.kl_threshold == pytest.approx(0.02)
    heights = list(lab.bars_active.opts["height"]) + list(lab.bars_inactive.opts["height"])
    assert len(heights) == 8
    assert lab.table.rowCount() == 8 and lab.number_header[1] == "KL (nats)"
    text = lab.findings.text()
    assert "Findings" in text and "silhouette" in text and all(f.split(":")[0][:20] in text for f in r.findings)
    assert "KL to the prior" in lab.bar_plot.titleLabel.text
    rows = _check_exports(lab, tmp_path, "health")
    assert rows[0][-1] == "status"


def test_latent_health_lab_plain_autoencoder(qtbot, digits, digits_ae):
    from aestudio.ui.labs.health_lab import LatentHealthLab

    lab = LatentHealthLab(_state(qtbot, digits, "digits", digits_ae))
    qtbot.addWidget(lab)
    r = _run(qtbot, lab)
    assert not r.is_vae and lab.number_header[1] == "variance"
    assert "variance" in lab.bar_plot.titleLabel.text
    assert not lab.prior_lines[0].isVisible()


def test_labs_on_unlabelled_data(qtbot, digits):
    from aestudio.core.datasets import ImageSet
    from aestudio.ui.labs.few_labels_lab import FewLabelsLab
    from aestudio.ui.labs.health_lab import LatentHealthLab

    data = ImageSet("unlabelled digits", digits.images[:400], None, [])
    trained = _trained(data, "ae", epochs=1)
    state = _state(qtbot, data, "unlabelled", trained)
    few = FewLabelsLab(state)
    qtbot.addWidget(few)
    assert not few.run_button.isEnabled() and "no class labels" in few.notice.text()
    health = LatentHealthLab(state)
    qtbot.addWidget(health)
    r = _run(qtbot, health)
    assert r.silhouette is None and "No class labels" in health.findings.text()

    # the anomaly lab scores unlabelled images, and says why it cannot train on "normal" classes
    from aestudio.ui.labs import anomaly_lab

    anomaly = anomaly_lab.AnomalyLab(state)
    qtbot.addWidget(anomaly)
    assert anomaly.run_button.isEnabled() and not anomaly.train_button.isEnabled()
    assert anomaly.train_button.toolTip() == anomaly.classes.toolTip() == anomaly_lab.NO_CLASSES
    assert "subfolder per class" in anomaly.roc_hint.textItem.toPlainText()
    state.set_dataset(digits, "digits")  # classes again: the lab offers them, and its hints say so
    state.set_snapshot(make_snapshot(_trained(digits, "ae", epochs=1)[0], 1))
    qtbot.waitUntil(lambda: anomaly.classes.count() == 10)
    assert anomaly.train_button.isEnabled() and anomaly.train_button.toolTip() == anomaly_lab.TRAIN_TIP
    assert anomaly.roc_hint.textItem.toPlainText() == anomaly_lab.ROC_HINT


def test_labs_on_a_one_class_folder(qtbot, digits):
    """One class subfolder: the few-labels lab ran and then failed in its summary (an IndexError on
    the GUI thread); it and the anomaly lab's class training now say why they need two classes."""
    from aestudio.core.datasets import ImageSet
    from aestudio.ui.labs import anomaly_lab
    from aestudio.ui.labs.few_labels_lab import FewLabelsLab

    data = ImageSet("cats", digits.images[:300], np.zeros(300, np.int64), ["cats"])
    state = _state(qtbot, data, "cats", _trained(data, "ae", epochs=1))
    few = FewLabelsLab(state)
    qtbot.addWidget(few)
    assert not few.run_button.isEnabled() and "has one class" in few.notice.text()
    anomaly = anomaly_lab.AnomalyLab(state)
    qtbot.addWidget(anomaly)
    assert anomaly.classes.count() == 1 and not anomaly.train_button.isEnabled()
    assert anomaly.train_button.toolTip() == anomaly_lab.NO_CLASSES


def test_labs_say_when_the_model_they_measure_is_under_trained(qtbot, digits):
    """A lab's numbers about a model trained for 5 steps read as the architecture's; the doctor's
    finding now stands above them (and goes once the model is healthy)."""
    from aestudio.core.doctor import lab_caution
    from aestudio.ui.labs.pca_lab import PcaVsAutoencoderLab

    import dataclasses

    data = digits.subset(np.arange(400))
    trainer, tc = _trained(data, "ae", epochs=1)
    assert "too_few_steps" in [d["code"] for d in trainer.diagnoses]
    state = _state(qtbot, data, "digits", (trainer, tc))
    lab = PcaVsAutoencoderLab(state)
    qtbot.addWidget(lab)
    assert not lab.model_caution.isHidden()
    assert lab.model_caution.text().startswith("⚠ The training doctor found too few training steps in this model "
                                               "(epoch 1): trained longer it would likely do better")
    snap = make_snapshot(trainer, 1)
    state.set_snapshot(dataclasses.replace(snap, trained=dataclasses.replace(snap.trained, diagnoses=())))
    assert lab.model_caution.isHidden()
    # only the findings of the model's last epoch count; a collapse outweighs under-training
    both = [{"code": "too_few_steps", "epoch": 3}, {"code": "constant_output", "epoch": 3},
            {"code": "nan", "epoch": 1}]
    assert lab_caution(both, 3) == ("The training doctor found too few training steps and a collapsed output in "
                                    "this model (epoch 3): it learned little, so what this lab measures says little "
                                    "about the architecture. See Diagnosis.")
    assert lab_caution(both, 4) is None and lab_caution([{"code": "overfitting", "epoch": 3}], 3) is None
