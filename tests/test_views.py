"""The training and latent-space views: loss curves, image grid, latent map, latent sliders, decoded sample.

A tiny dense autoencoder is trained once on the bundled digits (no GUI), and every panel is
driven through the `StudioState` signals the real studio uses.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor
from PySide6.QtTest import QTest

from aestudio.core.config import ModelConfig, TrainConfig
from aestudio.core.models import Autoencoder
from aestudio.core.training import BatchEnd, EpochEnd, StageStarted, Trainer, fit
from aestudio.ui.decoded_view import DecodedSampleView
from aestudio.ui.image_grid import ImageGridPanel
from aestudio.ui.imaging import heatmap, to_qimage, to_uint8
from aestudio.ui.latent_map import LatentMapPanel
from aestudio.ui.latent_sliders import PAGE, LatentSlidersPanel
from aestudio.ui.loss_curves import LossCurvesPanel
from aestudio.ui.state import StudioState
from aestudio.core.trained import trained_model
from aestudio.workers.training import ModelSnapshot, Preview, make_snapshot


@pytest.fixture(scope="module")
def trained(digits):
    """(snapshot, events) of a dense AE with an 8-D code, 2 epochs on digits."""
    torch.manual_seed(0)
    mc = ModelConfig(arch="dense", kind="ae", input_shape=digits.shape, latent=8, hidden=[32])
    events = []
    trainer, last = fit(mc, TrainConfig(epochs=2, batch_size=128, lr=3e-3, device="cpu"), digits, events.append)
    assert last.reason == "completed"
    return make_snapshot(trainer, 2), events


@pytest.fixture
def state(qtbot, digits):
    s = StudioState()
    s.set_dataset(digits, "digits")
    yield s
    s.training.shutdown()


def fake_snapshot(n: int, latent: int, classes: int = 10, seed: int = 0, kind: str = "ae") -> ModelSnapshot:
    """A snapshot with random codes (no training): an untrained model that decodes 8x8 images."""
    rng = np.random.default_rng(seed)
    mc = ModelConfig(arch="dense", kind=kind, input_shape=(1, 8, 8), latent=latent, hidden=[16])
    model = Autoencoder(mc).eval()
    codes = rng.normal(size=(n, latent)).astype(np.float32)
    labels = rng.integers(0, classes, n)
    images = np.zeros((n, 1, 8, 8), np.float32)
    return ModelSnapshot(trained_model(model, mc, epoch=1), codes, labels, images, [str(k) for k in range(classes)],
                         model)


def shown(qtbot, widget, w=560, h=440):
    qtbot.addWidget(widget)
    widget.resize(w, h)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


# ---- imaging helpers ------------------------------------------------------------------------------
def test_imaging_helpers_convert_and_colour():
    gray = np.linspace(0, 1, 64, dtype=np.float32).reshape(1, 8, 8)
    assert to_uint8(gray).shape == (8, 8) and to_uint8(gray).dtype == np.uint8
    assert to_uint8(gray)[0, 0] == 0 and to_uint8(gray)[-1, -1] == 255
    rgb = np.random.default_rng(0).random((3, 5, 7), dtype=np.float32)
    assert to_uint8(rgb).shape == (5, 7, 3)
    img = to_qimage(gray, 64)
    assert (img.width(), img.height()) == (64, 64)
    assert img.pixelColor(63, 63).red() == 255  # nearest-neighbour: the last source pixel fills the corner
    hm = heatmap(gray[0], 0.0, 1.0)
    assert hm.shape == (8, 8, 3) and hm.dtype == np.uint8
    assert not np.array_equal(hm[0, 0], hm[-1, -1])


# ---- loss curves ------------------------------------------------------------------------------------
def test_loss_curves_receive_batch_and_epoch_points(qtbot, state):
    panel = shown(qtbot, LossCurvesPanel(state), 640, 360)
    assert panel.accessibleName() == "Loss curves"
    t = state.training
    t.started.emit()
    t.stageStarted.emit(StageStarted("train", 0, 1, 2))
    for step in range(1, 11):
        t.progress.emit(BatchEnd("train", 1 + (step - 1) // 5, 2, (step - 1) % 5 + 1, 5, step, 10,
                                 {"recon": 10.0 / step, "kl": 1.0, "total": 10.0 / step + 1.0}, 1000.0, 1.0))
        if step % 5 == 0:
            t.epochEnded.emit(EpochEnd("train", step // 5, 2, {"recon": 5.0, "kl": 1.0, "total": 6.0},
                                       {"recon": 6.0, "kl": 1.1, "total": 7.1}, 1000.0, 1.0, 0.5, step, 10))
    x, y = panel.curve_data("total", "batch")
    assert len(x) == 10
    np.testing.assert_allclose(x, np.arange(1, 11) / 5.0)  # fractional epochs: step / batches
    assert set(panel.terms) == {"recon", "kl", "total"}
    vx, vy = panel.curve_data("kl", "val")
    np.testing.assert_allclose(vx, [1.0, 2.0])
    np.testing.assert_allclose(vy, [1.1, 1.1])
    tx, _ = panel.curve_data("recon", "train")
    np.testing.assert_allclose(tx, [0.5, 1.5])  # epoch means sit mid-epoch
    # the drawn item holds the same points (setData on a kept item)
    item = panel.terms["total"].batch_item
    assert len(item.getOriginalDataset()[0]) == 10
    # one legend entry per term, each with a tooltip from TERM_HELP
    assert len(panel.legend.items) == 3
    assert all("KL divergence" in s.toolTip() for s, lab in panel.legend.items if lab.text == "KL")

    panel.log_box.setChecked(True)
    assert panel.plot.getPlotItem().ctrl.logYCheck.isChecked()
    panel.log_box.setChecked(False)

    # many points: buffers grow by doubling, nothing breaks
    for step in range(11, 1100):
        t.progress.emit(BatchEnd("train", 2, 2, 5, 5, step, 1100, {"total": 1.0}, 1.0, 1.0))
    assert len(panel.curve_data("total", "batch")[0]) == 1099


def test_the_loss_legend_wraps_into_rows_on_a_narrow_plot(qtbot, state):
    """A VAE's three terms did not fit a 340 px plot in one row: the last one was cut off."""
    panel = shown(qtbot, LossCurvesPanel(state), 640, 360)
    t = state.training
    t.started.emit()
    t.stageStarted.emit(StageStarted("train", 0, 1, 1))
    t.epochEnded.emit(EpochEnd("train", 1, 1, {"recon": 5.0, "kl": 1.0, "total": 6.0},
                               {"recon": 6.0, "kl": 1.1, "total": 7.1}, 1000.0, 1.0, 0.5, 5, 5))
    assert len(panel.legend.items) == 3 and panel.legend.columnCount == 3  # wide: one row

    def right_edge() -> float:  # of the rightmost legend entry, in the plot widget's pixels
        plot = panel.plot
        return max(plot.mapFromScene(lab.mapToScene(lab.boundingRect().topRight())).x() for _, lab in panel.legend.items)

    panel.resize(340, 360)
    qtbot.waitUntil(lambda: panel.legend.columnCount < 3, timeout=5000)
    qtbot.waitUntil(lambda: right_edge() <= panel.plot.width(), timeout=5000)
    panel.resize(640, 360)
    qtbot.waitUntil(lambda: panel.legend.columnCount == 3, timeout=5000)


def test_a_progress_report_redraws_the_batch_line_and_an_epoch_end_its_points(qtbot, state, monkeypatch):
    panel = shown(qtbot, LossCurvesPanel(state), 640, 360)
    t = state.training
    t.started.emit()
    t.progress.emit(BatchEnd("train", 1, 2, 1, 5, 1, 10, {"total": 2.0}, 1000.0, 1.0))
    curves = panel.terms["total"]
    redrawn: list[str] = []
    for name in ("batch_item", "train_item", "val_item"):
        item = getattr(curves, name)
        monkeypatch.setattr(item, "setData", lambda *a, name=name, original=item.setData, **k: (
            redrawn.append(name), original(*a, **k)))
    t.progress.emit(BatchEnd("train", 1, 2, 5, 5, 5, 10, {"total": 1.5}, 1000.0, 1.0))  # the epoch's last batch
    assert redrawn == ["batch_item"]  # the epoch markers did not change: not redrawn
    t.epochEnded.emit(EpochEnd("train", 1, 2, {"total": 1.6}, {"total": 1.7}, 1000.0, 1.0, 0.5, 5, 10))
    assert set(redrawn) == {"batch_item", "train_item", "val_item"}
    assert panel.curve_data("total", "val")[1].tolist() == [1.7]


def test_plot_axes_and_grids_are_opaque_and_under_the_data(qtbot, state, monkeypatch):
    """Semi-transparent lines make Qt's raster engine wait for its thread pool on every long line
    (ui/imaging.OpaqueAxis): the loss and latent plots draw theirs in opaque, pre-blended colours."""
    import pyqtgraph as pg

    from aestudio.ui import imaging

    drawn: list[QColor] = []
    original = pg.AxisItem.drawPicture

    def record(self, p, axis_spec, tick_specs, text_specs):
        drawn.extend(pen.color() for pen, _, _ in [axis_spec, *tick_specs])
        return original(self, p, axis_spec, tick_specs, text_specs)

    monkeypatch.setattr(pg.AxisItem, "drawPicture", record)
    for panel in (LossCurvesPanel(state), LatentMapPanel(state)):
        item = panel.plot.getPlotItem()
        for name in ("left", "bottom"):
            assert isinstance(item.getAxis(name), imaging.OpaqueAxis)
            assert item.getAxis(name).zValue() < item.getViewBox().zValue()  # curves and points cover the grid
    panel = shown(qtbot, LossCurvesPanel(state), 640, 360)
    t = state.training
    t.started.emit()
    for step in range(1, 6):
        t.progress.emit(BatchEnd("train", 1, 2, step, 5, step, 10, {"total": 3.0 / step}, 1000.0, 1.0))
    t.epochEnded.emit(EpochEnd("train", 1, 2, {"total": 1.6}, {"total": 1.7}, 1000.0, 1.0, 0.5, 5, 10))
    qtbot.wait(50)  # the plot lays out its axes for the data
    drawn.clear()
    for name in ("left", "bottom"):
        panel.plot.getPlotItem().getAxis(name).picture = None
    panel.plot.viewport().repaint()
    assert len(drawn) > 4  # axis lines, ticks and grid lines were drawn ...
    assert all(c.alpha() == 255 for c in drawn)  # ... every one opaque
    bg = panel.plot.backgroundBrush().color()
    assert any(abs(c.lightnessF() - bg.lightnessF()) < 0.2 for c in drawn)  # grid lines stay faint
    over = imaging.over(QColor(0, 0, 0, 64), QColor(255, 255, 255))
    assert over.alpha() == 255 and over.red() == over.green() == over.blue() == 191


def test_a_plain_autoencoders_total_and_reconstruction_are_one_curve(qtbot, state):
    panel = shown(qtbot, LossCurvesPanel(state), 640, 360)
    history = [{"stage": "train", "epoch": e, "train_recon": 9.0 / e, "train_total": 9.0 / e,
                "val_recon": 10.0 / e, "val_total": 10.0 / e} for e in (1, 2, 3)]
    state.historyReset.emit(history)
    assert [label.text for _, label in panel.legend.items] == ["total = reconstruction"]
    assert all(it.isVisible() for it in panel.terms["total"].items)
    assert not any(it.isVisible() for it in panel.terms["recon"].items)  # drawn once, not twice on top
    assert len(panel.curve_data("recon", "val")[0]) == 3  # its data is still kept
    # a second term makes the two differ: both come back, each under its own name
    state.historyReset.emit([{**h, "train_kl": 1.0, "val_kl": 1.0} for h in history])
    assert [label.text for _, label in panel.legend.items] == ["total", "reconstruction", "KL"]
    assert all(it.isVisible() for it in panel.terms["recon"].items)


def test_loss_curves_draw_history_with_stage_markers(qtbot, state):
    panel = shown(qtbot, LossCurvesPanel(state), 640, 360)
    history = [
        {"stage": "pretrain layer 1/2", "epoch": 1, "train_recon": 9.0, "train_total": 9.0},
        {"stage": "pretrain layer 2/2", "epoch": 1, "train_recon": 4.0, "train_total": 4.0},
        {"stage": "fine-tune", "epoch": 1, "train_recon": 3.0, "train_total": 3.0, "val_recon": 3.5, "val_total": 3.5},
        {"stage": "fine-tune", "epoch": 2, "train_recon": 2.0, "train_total": 2.0, "val_recon": 2.5, "val_total": 2.5},
    ]
    state.historyReset.emit(history)
    assert len(panel.stage_lines) == 3
    assert [line.value() for line in panel.stage_lines] == [0.0, 1.0, 2.0]
    # names are items of their own at the top of the view, not pyqtgraph's line labels (see loss_curves.py)
    assert [label.textItem.toPlainText() for label in panel.stage_labels] == [
        "pretrain layer 1/2", "pretrain layer 2/2", "fine-tune"]
    assert all(getattr(line, "label", None) is None for line in panel.stage_lines)
    top = panel.plot.getPlotItem().getViewBox().viewRange()[1][1]
    assert all(label.pos().y() == pytest.approx(top) for label in panel.stage_labels)
    x, y = panel.curve_data("total", "train")
    np.testing.assert_allclose(y, [9.0, 4.0, 3.0, 2.0])
    vx, vy = panel.curve_data("recon", "val")
    np.testing.assert_allclose(vx, [3.0, 4.0])
    # a loaded run has no batch points: the training line joins the epoch means, broken between stages
    lx, ly = panel.curve_data("total", "batch")
    np.testing.assert_allclose(ly[np.isfinite(ly)], [9.0, 4.0, 3.0, 2.0])
    assert np.isnan(ly).sum() == 2
    state.historyReset.emit([])
    assert panel.terms == {} and panel.stage_lines == []

    # live: a stacked run's stages get markers too
    t = state.training
    t.started.emit()
    t.stageStarted.emit(StageStarted("pretrain layer 1/2", 0, 2, 1))
    t.epochEnded.emit(EpochEnd("pretrain layer 1/2", 1, 1, {"recon": 1.0, "total": 1.0}, {}, 1.0, 1.0, 1.0, 5, 10))
    t.progress.emit(BatchEnd("pretrain layer 1/2", 1, 1, 5, 5, 5, 10, {"recon": 1.0, "total": 1.0}, 1.0, 1.0))
    t.stageStarted.emit(StageStarted("fine-tune", 1, 2, 1))
    t.progress.emit(BatchEnd("fine-tune", 1, 1, 1, 5, 6, 10, {"recon": 3.0, "total": 3.0}, 1.0, 1.0))
    assert [line.value() for line in panel.stage_lines] == [0.0, 1.0]
    lx, ly = panel.curve_data("recon", "batch")
    np.testing.assert_allclose(ly[np.isfinite(ly)], [1.0, 3.0])
    assert np.isnan(ly[1])  # the line does not join two stages' different losses: one segment each
    assert len(panel.terms["recon"].segments) == 2


# ---- image grid ---------------------------------------------------------------------------------------
def test_image_grid_rows_click_and_error_map(qtbot, state, trained):
    snap, _ = trained
    panel = shown(qtbot, ImageGridPanel(state), 700, 300)
    assert panel.accessibleName() == "Image grid"
    assert panel.visible_rows() == []
    x = snap.images[:8]
    out = np.clip(x * 0.5 + 0.1, 0, 1).astype(np.float32)
    state.training.preview.emit(Preview(x, None, out, 1, "train"))
    assert panel.visible_rows() == ["Original", "Reconstruction"]

    noisy = np.clip(x + 0.2, 0, 1).astype(np.float32)
    state.training.preview.emit(Preview(x, noisy, out, 2, "train"))
    assert panel.visible_rows() == ["Original", "Noisy input", "Denoised"]
    state.training.preview.emit(Preview(x, None, out, 3, "train"))
    assert panel.visible_rows() == ["Original", "Reconstruction"]

    tile = panel.tiles["Output"][3]
    with qtbot.waitSignal(state.imageSelected, timeout=10000) as sig:
        qtbot.mouseClick(tile, Qt.MouseButton.LeftButton)
    assert sig.args == [3]
    d = panel.detail
    assert d is not None and d.isVisible() and d.index == 3
    np.testing.assert_allclose(d.error_map, np.abs(x[3] - out[3]).mean(0), atol=1e-6)
    assert d.mse == pytest.approx(float(np.mean((x[3] - out[3]) ** 2)), rel=1e-5)
    assert d.views["error"].image() is not None
    assert "mean squared error" in d.summary.text()
    d.close()


def test_image_grid_reconstructs_a_loaded_snapshot(qtbot, state, trained):
    snap, _ = trained
    panel = shown(qtbot, ImageGridPanel(state), 700, 300)
    state.set_snapshot(snap)  # not training: the panel computes the outputs itself
    assert panel.visible_rows() == ["Original", "Reconstruction"]
    assert len(panel.indices) == 8
    with torch.no_grad():
        expected = snap.model(torch.from_numpy(snap.images[panel.indices])).clamp(0, 1).numpy()
    np.testing.assert_allclose(panel.outputs, expected, atol=1e-5)

    # a denoising run shows its noisy inputs: the noise the model was trained with, not today's setting
    state.train_config = TrainConfig(noise="gaussian:0.3")
    state.set_snapshot(snap)
    assert panel.visible_rows() == ["Original", "Reconstruction"]
    state.train_config = TrainConfig()
    denoiser = dataclasses.replace(snap.trained, train_config=TrainConfig(noise="gaussian:0.3"))
    state.set_snapshot(dataclasses.replace(snap, trained=denoiser))
    assert panel.visible_rows() == ["Original", "Noisy input", "Denoised"]
    state.set_snapshot(None)
    assert state.dataset is not None and panel.visible_rows() == ["Original"]  # no model: the loaded images


def test_image_grid_fits_its_columns_to_the_width_and_never_clips_a_row_label(qtbot, state, trained):
    snap, _ = trained
    panel = shown(qtbot, ImageGridPanel(state), 760, 300)
    x = snap.images[:8]
    state.training.preview.emit(Preview(x, None, np.clip(x * 0.5, 0, 1).astype(np.float32), 1, "train"))

    def tiles_on(row: str) -> int:
        return sum(t.isVisible() for t in panel.tiles[row])

    assert tiles_on("Original") == tiles_on("Output") == 8
    panel.resize(420, 300)  # a narrow dock: fewer whole tiles, not eight clipped ones
    qtbot.waitUntil(lambda: tiles_on("Original") < 8, timeout=10000)
    assert 1 <= tiles_on("Original") == tiles_on("Output") < 8
    label = panel.row_labels["Output"]
    assert label.text() == "Reconstruction" and label.width() >= label.sizeHint().width()
    last = max(i for i, t in enumerate(panel.tiles["Original"]) if t.isVisible())
    right = panel.tiles["Original"][last].geometry().right()
    assert panel.grid_host.mapTo(panel, panel.grid_host.rect().topLeft()).x() + right <= panel.width()
    panel.resize(760, 300)
    qtbot.waitUntil(lambda: tiles_on("Original") == 8, timeout=10000)


def _class_sorted(digits, classes: int):
    """The digits of the first `classes` classes, sorted by class (like a folder of class subfolders)."""
    keep = np.flatnonzero(digits.labels < classes)
    return digits.subset(keep[np.argsort(digits.labels[keep], kind="stable")])


@pytest.mark.parametrize("classes", [3, 10])
def test_pick_spread_covers_the_classes_of_a_sorted_set(digits, classes):
    from aestudio.core.labs.selection import pick_spread

    labels = _class_sorted(digits, classes).labels
    idx = pick_spread(labels, 8)
    assert len(idx) == 8 and len(set(idx.tolist())) == 8
    assert len(set(labels[idx].tolist())) == min(8, classes)
    np.testing.assert_array_equal(idx, pick_spread(labels, 8))  # deterministic
    assert not np.array_equal(idx, pick_spread(labels, 8, seed=1))  # seeded
    assert len(pick_spread(labels[:5], 8)) == 5 and len(pick_spread(labels, 0)) == 0
    plain = pick_spread(None, 8, total=100)  # unlabelled: evenly spread, first to last
    assert plain[0] == 0 and plain[-1] == 99 and len(set(plain.tolist())) == 8
    assert pick_spread(None, 8, total=3).tolist() == [0, 1, 2]


@pytest.mark.parametrize("classes", [3, 10])
def test_image_grid_shows_a_spread_of_classes(qtbot, state, digits, classes):
    """On a class-sorted validation set the grid's images cover min(8, classes) classes, both the
    worker's previews while training and a loaded snapshot; a click selects the right image."""
    from aestudio.workers.training import TrainingWorker

    data = _class_sorted(digits, classes)
    mc = ModelConfig(arch="dense", kind="ae", input_shape=data.shape, latent=4, hidden=[16])
    tc = TrainConfig(epochs=1, batch_size=128, device="cpu", val_fraction=0.2)
    worker = TrainingWorker(mc, tc, data)
    trainer = worker.trainer = Trainer(mc, tc, data)
    assert len(set(trainer.val_set.labels[:8].tolist())) == 1  # the first eight: all one class
    panel = shown(qtbot, ImageGridPanel(state), 700, 300)
    state.set_dataset(data, "sorted")
    snap = make_snapshot(trainer, 0)
    state.set_snapshot(snap)
    assert len(set(panel.shown_labels())) == min(8, classes) and "" not in panel.shown_labels()
    np.testing.assert_array_equal(panel.originals, snap.images[panel.indices])

    state.training.preview.emit(worker._preview(trainer, 1, "train"))
    assert len(set(panel.shown_labels())) == min(8, classes)
    np.testing.assert_array_equal(panel.originals, snap.images[panel.indices])
    with qtbot.waitSignal(state.imageSelected, timeout=10000) as sig:
        qtbot.mouseClick(panel.tiles["Original"][2], Qt.MouseButton.LeftButton)
    assert sig.args == [int(panel.indices[2])]
    assert f"#{int(panel.indices[2]) + 1}" in panel.detail.summary.text()
    panel.detail.close()


# ---- latent map -------------------------------------------------------------------------------------------
def wait_projection(qtbot, panel, method="pca", timeout=20000):
    qtbot.waitUntil(lambda: not panel.busy_computing and panel.mode == "projection"
                    and panel.projection.method == method, timeout=timeout)


def test_latent_map_click_decodes_two_different_images(qtbot, state, trained):
    snap, _ = trained
    panel = shown(qtbot, LatentMapPanel(state))
    view = shown(qtbot, DecodedSampleView(state), 300, 300)
    assert panel.accessibleName() == "Latent map" and view.accessibleName() == "Decoded sample"
    state.set_snapshot(snap)
    assert panel.busy_computing  # the projection runs off the GUI thread
    wait_projection(qtbot, panel)
    assert panel.points.shape == (len(snap.codes), 2)

    (x0, y0), (x1, y1) = panel.points.min(0), panel.points.max(0)
    images = []
    for x, y in ((x0, y0), (x1, y1)):
        with qtbot.waitSignal(state.decoded, timeout=10000):
            code = panel.click_at(float(x), float(y))
        expected_code = panel.projection.inverse(np.array([[x, y]], np.float32))[0]
        np.testing.assert_allclose(code, expected_code, atol=1e-5)
        np.testing.assert_allclose(view.current_image, snap.decode(expected_code)[0], atol=1e-6)
        assert view.current_origin.startswith("latent map (")
        images.append(view.current_image.copy())
    assert not np.allclose(images[0], images[1])
    assert panel.cross.data["x"][0] == pytest.approx(x1)


def test_latent_map_real_mouse_click_and_hover(qtbot, state, trained):
    snap, _ = trained
    panel = shown(qtbot, LatentMapPanel(state))
    view = DecodedSampleView(state)
    qtbot.addWidget(view)
    state.set_snapshot(snap)
    wait_projection(qtbot, panel)
    qtbot.wait(50)  # let the view range settle

    plot, vb = panel.plot, panel.plot.plotItem.vb
    target = panel.points[7]
    widget_pos = plot.mapFromScene(vb.mapViewToScene(QPointF(float(target[0]), float(target[1]))))
    with qtbot.waitSignal(state.decoded, timeout=10000) as sig:
        qtbot.mouseClick(plot.viewport(), Qt.MouseButton.LeftButton, pos=widget_pos)
    assert sig.args[1].startswith("latent map")
    # the click landed within a pixel of the point: the decoded code is (almost) that spot's inverse
    spot = vb.mapSceneToView(plot.mapToScene(widget_pos))
    expected = panel.projection.inverse(np.array([[spot.x(), spot.y()]], np.float32))[0]
    np.testing.assert_allclose(panel.last_code, expected, atol=1e-4)
    np.testing.assert_allclose(view.current_image, snap.decode(panel.last_code)[0], atol=1e-6)

    # hover: the nearest point wins, highlighted with a ring and a thumbnail
    for i in (0, 7, len(panel.points) - 1):
        px, py = panel.points[i]
        assert panel.hover_at(float(px), float(py)) == i or np.allclose(panel.points[panel.hover_index], (px, py))
    i = panel.hover_at(float(panel.points[5, 0]) + 1e-4, float(panel.points[5, 1]))
    assert np.allclose(panel.points[i], panel.points[5]) and panel.thumb.isVisible()
    assert panel.ring.data["x"][0] == pytest.approx(panel.points[i, 0])
    # a real mouse move over a point shows it too
    target = panel.points[11]
    widget_pos = plot.mapFromScene(vb.mapViewToScene(QPointF(float(target[0]), float(target[1]))))
    QTest.mouseMove(plot.viewport(), widget_pos)
    qtbot.waitUntil(lambda: panel.hover_index >= 0, timeout=10000)
    assert np.linalg.norm(panel.points[panel.hover_index] - target) < 0.05 * np.ptp(panel.points, axis=0).max()


def test_latent_map_hover_over_the_same_point_keeps_its_thumbnail_and_follows_the_view(qtbot, state, trained):
    snap, _ = trained
    panel = shown(qtbot, LatentMapPanel(state))
    state.set_snapshot(snap)
    wait_projection(qtbot, panel)
    qtbot.wait(50)
    px, py = (float(v) for v in panel.points[5])
    i = panel.hover_at(px, py)
    key, place = panel.thumb.image.pixmap().cacheKey(), panel.thumb.pos()
    assert panel.hover_at(px + 1e-6, py) == i  # the mouse moved a little: same point, nothing redrawn
    assert panel.thumb.image.pixmap().cacheKey() == key and panel.thumb.pos() == place
    panel.plot.plotItem.vb.translateBy(x=0.1 * float(np.ptp(panel.points[:, 0])))  # the view pans under the cursor
    qtbot.wait(20)
    assert panel.hover_at(px, py) == i
    assert panel.thumb.image.pixmap().cacheKey() == key and panel.thumb.pos() != place
    assert panel.ring.data["x"][0] == pytest.approx(px)
    j = next(k for k in range(len(panel.points)) if not np.allclose(panel.points[k], panel.points[i]))
    assert panel.hover_at(*(float(v) for v in panel.points[j])) != i
    assert panel.thumb.image.pixmap().cacheKey() != key

def test_latent_map_points_bounds_follow_new_data_and_zoom(qtbot, state, trained):
    """The map's scatter items remember their bounding rectangle (pyqtgraph recomputes it on every
    click and hover); it must still be exactly pyqtgraph's after new points and after a zoom."""
    import pyqtgraph as pg

    snap, _ = trained
    panel = shown(qtbot, LatentMapPanel(state))
    state.set_snapshot(snap)
    wait_projection(qtbot, panel)
    qtbot.wait(50)
    items = [i for i in panel._class_items if len(i.data)]
    assert items

    def fresh(item):  # what pyqtgraph computes, with nothing remembered
        return pg.ScatterPlotItem.boundingRect(item)

    for item in items:
        assert item.boundingRect() == fresh(item)
    item = items[0]
    before = item.boundingRect()
    pts = np.asarray(item.data["x"]), np.asarray(item.data["y"])
    item.setData(x=pts[0] * 3 + 5, y=pts[1] * 3 - 5)  # new data far from the old
    assert item.boundingRect() == fresh(item) and item.boundingRect() != before
    padded = item.boundingRect()
    panel.plot.plotItem.vb.scaleBy((0.25, 0.25))  # zoom in: the pixel margin shrinks in data units

    def follows_the_zoom():
        assert item.boundingRect() == fresh(item) and item.boundingRect().width() < padded.width()

    qtbot.waitUntil(follows_the_zoom, timeout=10000)


def test_latent_map_tsne_runs_off_thread_and_decodes(qtbot, state, trained):
    snap, _ = trained
    small = dataclasses.replace(snap, codes=snap.codes[:150], labels=snap.labels[:150], images=snap.images[:150])
    panel = shown(qtbot, LatentMapPanel(state))
    state.set_snapshot(small)
    wait_projection(qtbot, panel, "pca")
    panel.set_method("tsne")
    assert panel.busy_computing and panel.busy.isVisibleTo(panel)
    wait_projection(qtbot, panel, "tsne", timeout=30000)
    assert not panel.busy.isVisibleTo(panel)
    assert panel.points.shape == (150, 2)
    x, y = panel.points[3]
    code = panel.click_at(float(x), float(y))
    np.testing.assert_allclose(code, small.codes[panel.point_rows[3]], atol=1e-5)  # on a point: its own code


def test_latent_map_two_and_one_dimensional_codes(qtbot, state):
    panel = shown(qtbot, LatentMapPanel(state))
    view = DecodedSampleView(state)
    qtbot.addWidget(view)
    snap2 = fake_snapshot(300, 2)
    state.set_snapshot(snap2)
    assert panel.mode == "direct" and not panel.method_combo.isEnabled()
    np.testing.assert_allclose(panel.points, snap2.codes)
    panel.click_at(0.5, -1.0)
    np.testing.assert_allclose(view.current_image, snap2.decode(np.array([0.5, -1.0]))[0], atol=1e-6)

    snap1 = fake_snapshot(300, 1)
    state.set_snapshot(snap1)
    assert panel.mode == "strip"
    np.testing.assert_allclose(panel.points[:, 0], snap1.codes[:, 0])
    assert np.all(np.abs(panel.points[:, 1] - snap1.labels) <= 0.3 + 1e-6)  # one strip per class
    code = panel.click_at(0.7, 4.0)
    np.testing.assert_allclose(code, [0.7])
    np.testing.assert_allclose(view.current_image, snap1.decode(np.array([0.7]))[0], atol=1e-6)
    state.set_snapshot(None)
    assert panel.mode == "none" and panel.click_at(0.0, 0.0) is None


def test_latent_map_handles_60k_points(qtbot, state):
    panel = shown(qtbot, LatentMapPanel(state))
    snap = fake_snapshot(60_000, 2)
    state.set_snapshot(snap)
    assert panel.points.shape == (60_000, 2)
    assert sum(len(item.data) for item in panel._class_items) == 60_000
    assert len(panel._class_items) == 10  # one item per class, not a brush per point
    i = panel.hover_at(*map(float, snap.codes[1234]))
    assert np.allclose(panel.points[i], snap.codes[1234])
    assert panel.click_at(0.0, 0.0) is not None
    panel.grab()  # it renders


# ---- latent sliders ------------------------------------------------------------------------------------------
def test_latent_sliders_decode_live(qtbot, state, trained):
    snap, _ = trained
    panel = shown(qtbot, LatentSlidersPanel(state), 380, 480)
    view = DecodedSampleView(state)
    qtbot.addWidget(view)
    assert panel.accessibleName() == "Latent sliders"
    assert panel.notice.isVisible() and not panel.random_button.isEnabled()
    state.set_snapshot(snap)
    assert not panel.notice.isVisible() and panel.random_button.isEnabled()
    visible = [s for s in panel.sliders if s.isVisible()]
    assert len(visible) == 8
    # slider ranges: mean +- 3 std of the codes
    mean, std = snap.codes.mean(0), snap.codes.std(0)
    assert visible[0].minimum() == pytest.approx(mean[0] - 3 * std[0], abs=0.02)
    assert visible[0].maximum() == pytest.approx(mean[0] + 3 * std[0], abs=0.02)

    with qtbot.waitSignal(state.decoded, timeout=10000):
        panel.reset()
    base = view.current_image.copy()
    np.testing.assert_allclose(panel.code, mean, atol=1e-5)

    # drag a slider with the mouse: the decoded image follows
    inner = visible[2]._slider
    start = inner.rect().center()
    QTest.mousePress(inner, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    for dx in range(5, inner.width() // 2 - 4, 10):
        QTest.mouseMove(inner, start + type(start)(dx, 0))
    QTest.mouseRelease(inner, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                       start + type(start)(inner.width() // 2 - 5, 0))
    qtbot.waitUntil(lambda: not np.allclose(view.current_image, base), timeout=10000)
    assert panel.code[2] > mean[2]

    def shows_the_code():  # the coalescing timer lands the last value
        np.testing.assert_allclose(view.current_image, snap.decode(panel.code)[0], atol=1e-6)

    qtbot.waitUntil(shows_the_code, timeout=10000)

    # programmatic slider change
    with qtbot.waitSignal(state.decoded, timeout=10000):
        visible[0].setValue(visible[0].minimum())
    qtbot.waitUntil(shows_the_code, timeout=10000)

    before = view.current_image.copy()
    with qtbot.waitSignal(state.decoded, timeout=10000):
        qtbot.mouseClick(panel.random_button, Qt.MouseButton.LeftButton)
    assert not np.allclose(view.current_image, before)
    assert view.current_origin == "sliders"

    state.imageSelected.emit(5)
    panel.start_from_image()
    np.testing.assert_allclose(panel.code, snap.codes[5])
    assert "#6" in panel.source.text()
    z = np.linspace(-1, 1, 8).astype(np.float32)
    panel.set_code(z)
    np.testing.assert_allclose(view.current_image, snap.decode(z)[0], atol=1e-6)
    assert visible[7].value() == pytest.approx(1.0, abs=0.01)


def test_latent_sliders_page_through_a_large_code(qtbot, state):
    panel = shown(qtbot, LatentSlidersPanel(state), 380, 520)
    snap = fake_snapshot(200, 30, kind="vae")
    state.set_snapshot(snap)
    assert panel.page_combo.isVisible() and panel.page_combo.count() == 3
    assert sum(s.isVisible() for s in panel.sliders) == PAGE
    # VAE ranges cover the prior's -3..3
    assert panel.sliders[0].minimum() <= -3.0 and panel.sliders[0].maximum() >= 3.0
    z = np.arange(30, dtype=np.float32) / 10
    panel.set_code(z)
    panel.page_combo.setCurrentIndex(2)
    assert panel.first_dim == 24
    assert sum(s.isVisible() for s in panel.sliders) == 6
    assert panel.sliders[0].value() == pytest.approx(2.4, abs=0.01)
    panel.sliders[1].setValue(-1.0)
    assert panel.code[25] == pytest.approx(-1.0, abs=0.01)
    assert panel.code[0] == pytest.approx(0.0)  # other pages keep their values
    with qtbot.waitSignal(state.decoded, timeout=10000):
        panel.random_sample()
    assert "prior" in panel.source.text()
    state.set_snapshot(None)
    assert panel.notice.isVisible()


def test_decoded_view_shows_latest_image(qtbot, state):
    view = shown(qtbot, DecodedSampleView(state), 300, 300)
    img = np.random.default_rng(0).random((1, 8, 8), dtype=np.float32)
    state.show_decoded(img, "test")
    np.testing.assert_array_equal(view.current_image, img)
    assert "test" in view.caption.text()
    r = view.image.target_rect()
    assert r.width() == r.height() and r.width() >= 8 * 20  # scaled up, square pixels
    state.set_snapshot(None)
    assert view.current_image is None


@pytest.mark.parametrize("classes", [3, 10])
def test_image_grid_shows_the_loaded_images_before_any_model(qtbot, state, digits, classes):
    """A folder's images are on screen as soon as it is open: a spread over its classes, the
    Original row only, nothing to click through to; training's previews then take over."""
    data = _class_sorted(digits, classes)
    panel = shown(qtbot, ImageGridPanel(state), 760, 300)
    assert panel.visible_rows() == []
    state.set_dataset(data, "sorted")
    assert panel.visible_rows() == ["Original"]
    assert len(set(panel.shown_labels())) == min(8, classes) and "" not in panel.shown_labels()
    np.testing.assert_allclose(panel.originals, data.images[panel.indices].astype(np.float32) / 255)
    assert sum(t.isVisible() for t in panel.tiles["Original"]) == 8
    assert not any(t.isVisible() for t in panel.tiles["Output"])
    assert f"of the {data.n:,} loaded images" in panel.caption.text()
    with qtbot.assertNotEmitted(state.imageSelected):
        qtbot.mouseClick(panel.tiles["Original"][0], Qt.MouseButton.LeftButton)
    assert panel.detail is None or not panel.detail.isVisible()

    x = data.as_float()[:8]
    state.training.preview.emit(Preview(x, None, np.clip(x * 0.5, 0, 1).astype(np.float32), 1, "train"))
    assert panel.visible_rows() == ["Original", "Reconstruction"]
    assert sum(t.isVisible() for t in panel.tiles["Output"]) == 8
    state.set_snapshot(None)  # the model is gone again: back to the loaded images
    assert panel.visible_rows() == ["Original"]
