"""Smoke tests of the denoising, anomaly and PCA-vs-autoencoder labs on a small trained digits model:
Run computes off the GUI thread and fills the figure and the table; the live controls react; the
figure exports to PNG and SVG and the numbers to CSV."""
from __future__ import annotations

import csv
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage

from aestudio.core.config import ModelConfig, TrainConfig
from aestudio.core.datasets import load_dataset
from aestudio.core.training import fit
from aestudio.ui.labs.anomaly_lab import AnomalyLab
from aestudio.ui.labs.denoising_lab import DenoisingLab
from aestudio.ui.labs.pca_lab import PcaVsAutoencoderLab
from aestudio.ui.state import StudioState
from aestudio.workers.training import make_snapshot

TIMEOUT_MS = 60_000


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def trained(qapp):
    data = load_dataset("digits")
    mcfg = ModelConfig(arch="dense", input_shape=data.shape, latent=8, hidden=[64])
    tcfg = TrainConfig(epochs=3, batch_size=32, lr=3e-3, device="cpu", seed=0)
    trainer, last = fit(mcfg, tcfg, data)
    assert last.reason == "completed"
    return data, mcfg, tcfg, make_snapshot(trainer, 3)


@pytest.fixture
def state(trained):
    data, mcfg, tcfg, snapshot = trained
    st = StudioState()
    st.set_dataset(data, "digits")
    st.set_model_config(mcfg)
    st.set_train_config(tcfg)  # the labs split train / validation as this run did
    st.set_snapshot(snapshot)
    return st


def _wait_for_new_result(qtbot, lab, previous=None, timeout=TIMEOUT_MS):
    qtbot.waitUntil(lambda: lab.last_result is not None and lab.last_result is not previous and not lab.busy,
                    timeout=timeout)
    assert "color:#c0392b" not in lab.notice.text(), lab.notice.text()  # no error shown
    return lab.last_result


def _run(qtbot, lab):
    previous = lab.last_result
    qtbot.mouseClick(lab.run_button, Qt.MouseButton.LeftButton)
    return _wait_for_new_result(qtbot, lab, previous)


def _check_exports(lab, tmp_path):
    png = lab.export_figure(tmp_path / "figure.png")
    img = QImage(str(png))
    assert png.stat().st_size > 0 and not img.isNull() and img.width() > 100
    svg = lab.export_figure(tmp_path / "figure.svg")
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg") and len(list(root.iter())) > 10
    path = lab.export_numbers(tmp_path / "numbers.csv")
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == lab.number_header and len(rows) == len(lab.number_rows) + 1 > 1
    assert lab.export_figure_button.isEnabled() and lab.export_numbers_button.isEnabled()


def _check_accessibility(lab, *widgets):
    for w in widgets:
        assert w.accessibleName(), w
        assert w.toolTip(), w


def test_denoising_lab(qtbot, state, tmp_path):
    lab = DenoisingLab(state)
    qtbot.addWidget(lab)
    lab.resize(1000, 700)
    assert lab.accessibleName() == "Denoising lab"
    _check_accessibility(lab, lab.noise_combo, lab.strength, lab.steps, lab.pair_button, lab.run_button)
    assert lab.steps.accessibleName() == "Training steps" and lab.note_label.isHidden()
    lab.set_noise("gaussian", 0.3)
    result = _run(qtbot, lab)
    assert result.noise == "gaussian:0.3"
    assert [r.title for r in lab.rows.rows] == ["Original", "Noisy input", "Current model"]
    assert lab.table.rowCount() == 9 and lab.number_rows[-1][0].startswith("mean of 359")
    cur = result.reports["current"]
    assert lab.number_rows[-1][1] == pytest.approx(cur.psnr_noisy_mean)
    # each column's numbers carry the same decimals, so they line up
    for col in range(1, lab.table.columnCount()):
        texts = [lab.table.item(r, col).text() for r in range(lab.table.rowCount())]
        assert len({len(t.split(".")[1]) if "." in t else 0 for t in texts}) == 1, texts
    assert "dB" in lab.summary.text()

    # live: the slider re-runs on its own with the new strength
    lab.strength.setValue(60)
    qtbot.waitUntil(lambda: lab.last_result.noise == "gaussian:0.6" and not lab.busy, timeout=TIMEOUT_MS)
    assert lab.last_result.reports["current"].psnr_noisy_mean < cur.psnr_noisy_mean

    # comparison pair; a slider move while it trains is run afterwards with the latest value
    lab.steps.setValue(90)  # 1,438 training digits in batches of 32: two epochs
    assert "90 steps each" in lab.pair_button.text()
    lab.set_noise("gaussian", 0.3)
    qtbot.waitUntil(lambda: lab.last_result.noise == "gaussian:0.3" and not lab.busy, timeout=TIMEOUT_MS)
    previous = lab.last_result
    qtbot.mouseClick(lab.pair_button, Qt.MouseButton.LeftButton)
    assert lab.busy and not lab.pair_button.isEnabled()
    lab.strength.setValue(40)
    qtbot.wait(300)  # the throttle timer fires while the pair trains: remembered, run afterwards
    qtbot.waitUntil(lambda: lab.last_result is not previous and lab.last_result.noise == "gaussian:0.4"
                    and not lab.busy, timeout=TIMEOUT_MS)
    final = lab.last_result
    assert set(final.reports) == {"current", "plain", "denoising"}  # the pair is kept for later runs
    assert [r.title for r in lab.rows.rows][-2:] == ["Plain AE", "Denoising AE"]
    assert "plain AE PSNR (dB)" in lab.number_header and "denoising AE SSIM" in lab.number_header
    assert "denoising AE" in lab.summary.text()
    assert not lab.note_label.isHidden() and "still improving" in lab.note_label.text()  # 90 steps are too few
    assert lab.pair_button.isEnabled()
    _check_exports(lab, tmp_path)


@pytest.fixture
def odd_folder(tmp_path, trained):
    data = trained[0]
    folder = tmp_path / "odd"
    folder.mkdir()
    for i in range(5):
        Image.fromarray(data.images[i, 0]).save(folder / f"digit_{i}.png")
    rng = np.random.default_rng(1)
    for i in range(3):
        Image.fromarray((rng.random((8, 8)) * 255).astype(np.uint8)).save(folder / f"noise_{i}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    return folder


def test_anomaly_lab(qtbot, state, tmp_path, odd_folder):
    lab = AnomalyLab(state)
    qtbot.addWidget(lab)
    lab.resize(1000, 700)
    assert lab.accessibleName() == "Anomaly lab"
    _check_accessibility(lab, lab.classes, lab.steps, lab.train_button, lab.folder_button, lab.threshold_box,
                         lab.hist, lab.roc_plot)
    assert lab.classes.count() == 10
    result = _run(qtbot, lab)
    assert result.report.n == 359
    assert lab.table.rowCount() == 100 and lab.number_header[-1] == "flagged"
    assert len(lab.gallery.rows) == 3 and len(lab.gallery.rows[0].images) == 16
    assert lab.line.isVisible() and lab.hist_items

    # threshold: counts come from the precomputed scores, both ways in sync
    scores = result.report.scores
    low, high = float(np.quantile(scores, 0.5)), float(np.quantile(scores, 0.9))
    lab.line.setValue(low)
    n_low = lab.flagged_count
    assert n_low == int(np.sum(scores > low)) and f"{n_low:,}</span></b> of 359" in lab.flagged_label.text()
    lab.set_threshold(high)
    assert lab.flagged_count < n_low and lab.threshold_box.value() == pytest.approx(high, abs=1e-5)
    lab.threshold_box.setValue(0.0)
    assert lab.flagged_count == 359 and lab.line.value() == pytest.approx(0.0)
    assert all(row[-1] == "yes" for row in lab.number_rows)

    # normal-class training: ROC and AUROC against PCA
    lab.set_normal_classes([0, 1])
    lab.steps.setValue(20)  # 294 normal digits in batches of 32: two epochs
    assert lab.normal_classes == [0, 1] and "(20 steps)" in lab.train_button.text()
    previous = lab.last_result
    qtbot.mouseClick(lab.train_button, Qt.MouseButton.LeftButton)
    result = _wait_for_new_result(qtbot, lab, previous)
    assert result.normal is not None and result.normal.model_roc.auroc > 0.7
    assert len(lab.roc_ae.getData()[0]) > 2 and not lab.roc_hint.isVisible()
    assert any(str(r[1]).startswith("AUROC autoencoder") for r in lab.number_rows)
    assert "other classes" in lab.flagged_label.text() and len(lab.hist_items) == 2
    assert not lab.note_label.isHidden() and "AUROC may understate" in lab.note_label.text()

    # score a folder with the normal-class model
    previous = lab.last_result
    lab.score_folder(str(odd_folder))
    result = _wait_for_new_result(qtbot, lab, previous)
    assert result.folder.n == 8 and len(result.folder.skipped) == 1
    assert lab.folder_list.count() == 8 and lab.tabs.currentIndex() == 1
    assert lab.number_header == ["rank", "file", "error (MSE)", "flagged"] and len(lab.number_rows) == 8
    lab.set_threshold(float(np.median(result.folder.scores)))
    assert sum(r[-1] == "yes" for r in lab.number_rows) == int(np.sum(result.folder.scores > lab.threshold))
    assert "folder:" in lab.flagged_label.text()
    _check_exports(lab, tmp_path)


def test_pca_lab(qtbot, state, tmp_path):
    lab = PcaVsAutoencoderLab(state)
    qtbot.addWidget(lab)
    lab.resize(1000, 700)
    assert lab.accessibleName() == "PCA vs autoencoder"
    _check_accessibility(lab, lab.sizes_edit, lab.steps, lab.sweep_button, lab.curve_plot, lab.pca_map, lab.ae_map)
    result = _run(qtbot, lab)
    assert lab.table.rowCount() == 64
    assert lab.verdict_label.text().startswith("At 8 dimensions")
    assert lab.note_label.isHidden()  # the current model was not trained by the lab: nothing to say
    assert "%" in lab.verdict_label.text()
    x, y = lab.pca_line.getData()
    assert len(x) == 64 and np.all(np.diff(y) <= 1e-9)
    assert len(lab.ae_current.getData()[0]) == 1
    assert len(lab.pca_map.getPlotItem().listDataItems()) == 10  # one scatter per class
    assert [r.title for r in lab.recons.rows] == ["Original", "PCA-8", "Autoencoder (8)"]
    row8 = lab.number_rows[7]
    assert row8[0] == 8 and row8[2] == pytest.approx(result.comparison.ae_mse) and row8[3] == "current model"

    for text in ("x, 2", "4, ²"):  # "²" passes str.isdigit() but not int()
        lab.sizes_edit.setText(text)
        lab.train_sizes()
        assert not lab.busy and "not a latent size" in lab.notice.text()
    lab.sizes_edit.setText("2, 4")
    lab.steps.setValue(90)
    assert "90 steps each" in lab.sweep_button.text()
    previous = lab.last_result
    qtbot.mouseClick(lab.sweep_button, Qt.MouseButton.LeftButton)
    result = _wait_for_new_result(qtbot, lab, previous)
    assert [p.size for p in result.sweep] == [2, 4]
    assert len(lab.ae_points.getData()[0]) == 2
    assert lab.number_rows[1][3] == "trained 90 steps (still improving)" and "Trained sizes" in lab.verdict_label.text()
    assert not lab.note_label.isHidden() and "sizes 2, 4 were still improving" in lab.note_label.text()
    _check_exports(lab, tmp_path)


def test_lab_table_columns_share_their_decimals():
    """A column of 12.3 and 11.79, or 0.0146 and 0.0004, read unevenly with four significant digits
    each; a column's numbers now take the decimals of its largest one."""
    from aestudio.ui.labs.base import column_decimals, format_cell

    rows = [["val #1", 12.3, 0.0146, 7, float("nan")], ["val #2", 11.79, 0.0004, 12, 2.5e-9]]
    dec = column_decimals(rows)
    assert dec == [None, 2, 5, None, None]
    assert [format_cell(r[1], dec[1]) for r in rows] == ["12.30", "11.79"]
    assert [format_cell(r[2], dec[2]) for r in rows] == ["0.01460", "0.00040"]
    assert [format_cell(r[3], dec[3]) for r in rows] == ["7", "12"]  # ints stay ints
    assert format_cell(rows[0][4], dec[4]) == "–" and format_cell(rows[1][4], dec[4]) == "2.5e-09"
    assert format_cell(1234567.0, column_decimals([[1234567.0]])[0]) == "1.235e+06"
