"""The model builder: lossless round trips, inline problems that disable Train, live parameter count."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import find_by_name

from aestudio.core.config import ModelConfig, TrainConfig
from aestudio.core.datasets import ImageSet
from aestudio.core.models import summarize
from aestudio.ui.builder_panel import BuilderPanel
from aestudio.ui.state import StudioState
from aestudio.ui.training_panel import TrainingPanel

ROUND_TRIP = [
    ModelConfig(),
    ModelConfig(arch="dense", kind="ae", latent=2, hidden=[512, 256, 128]),
    ModelConfig(arch="dense", kind="vae", latent=8, beta=4.0, hidden=[300, 100], activations=["relu", "tanh"],
                loss="bce", output="sigmoid", tied=True, weight_decay=1e-5, init="xavier"),
    ModelConfig(arch="dense", kind="sparse", sparsity="kl", sparsity_weight=3e-3, sparsity_target=0.07, latent=64,
                dropout=0.25, batch_norm=True, stacked=True),
    ModelConfig(arch="dense", kind="sparse", sparsity="l1", sparsity_weight=1e-4, latent=900, activation="elu"),
    ModelConfig(arch="conv", kind="contractive", contractive_weight=0.0123, hidden=[16, 32], activation="leaky_relu",
                output="linear", loss="mse"),
    ModelConfig(arch="conv", kind="vae", beta=0.5, latent=3, batch_norm=True, dropout=0.1, stacked=True),
    ModelConfig(arch="recurrent", rnn_cell="gru", latent=10, hidden=[96], activation="tanh"),
    ModelConfig(arch="recurrent", rnn_cell="lstm", kind="vae", beta=1.7, latent=2),
    ModelConfig(arch="conv", tied=True, loss="bce", output="linear"),  # invalid, but nothing may be lost
    ModelConfig(arch="dense", hidden=[64, 32], activations=["relu", "bogus"]),
]


@pytest.fixture
def builder(qtbot):
    state = StudioState()
    panel = BuilderPanel(state)
    qtbot.addWidget(panel)
    return panel


@pytest.mark.parametrize("cfg", ROUND_TRIP, ids=lambda c: f"{c.arch}-{c.kind}-{c.latent}")
def test_round_trip_is_lossless(builder, cfg):
    builder.set_config(cfg)
    assert builder.config() == cfg
    assert builder.state.model_config == cfg  # set_config publishes at once
    again = BuilderPanel(StudioState())
    again.set_config(builder.config())
    assert again.config() == cfg
    again.deleteLater()


def test_state_changes_update_the_builder_without_echo(builder, qtbot):
    cfg = ModelConfig(arch="dense", kind="vae", latent=5, beta=2.5)
    seen = []
    builder.state.modelConfigChanged.connect(seen.append)
    builder.state.set_model_config(cfg)
    assert builder.config() == cfg
    qtbot.wait(250)  # longer than the debounce: nothing is echoed back
    assert len(seen) == 1


def test_user_edit_reaches_state_immediately_and_is_announced_debounced(builder, qtbot):
    latent = find_by_name(builder, "Code size")
    with qtbot.waitSignal(builder.state.modelConfigChanged, timeout=10000):
        latent.setValue(7)
        assert builder.state.model_config.latent == 7  # Train would use it already
    assert builder.config().latent == 7


def _state_with_data() -> StudioState:
    state = StudioState()
    rng = np.random.default_rng(0)
    data = ImageSet("tiny", rng.integers(0, 255, (40, 1, 8, 8), dtype=np.uint8), None, [])
    state.set_dataset(data, "tiny")
    return state


@pytest.mark.parametrize("cfg, words", [
    (ModelConfig(arch="conv", tied=True), "tied"),
    (ModelConfig(arch="dense", loss="bce", output="linear"), "sigmoid"),
    (ModelConfig(arch="recurrent", stacked=True), "stacked"),
    (ModelConfig(arch="conv", hidden=[8, 8, 8, 8, 8]), "at least 32x32 pixels"),
    (ModelConfig(arch="dense", hidden=[32, 16], activations=["relu"]), "one activation per hidden layer"),
])
def test_invalid_combos_show_problems_and_disable_train(qtbot, cfg, words):
    state = _state_with_data()
    builder, training = BuilderPanel(state), TrainingPanel(state)
    qtbot.addWidget(builder)
    qtbot.addWidget(training)
    train = find_by_name(training, "Train")
    builder.set_config(ModelConfig(arch="dense", latent=2))
    assert train.isEnabled()
    builder.set_config(cfg)
    problems = find_by_name(builder, "Model problems")
    assert not problems.isHidden() and words in problems.text().lower()
    assert not train.isEnabled()
    status = find_by_name(training, "Training status")
    assert "cannot train" in status.text().lower() and words in status.text().lower()
    builder.set_config(ModelConfig(arch="dense", latent=2))
    assert train.isEnabled() and problems.isHidden()


def test_bce_with_linear_output_shows_inline_warning(builder):
    builder.set_config(ModelConfig(arch="dense", loss="bce", output="linear"))
    assert not find_by_name(builder, "Loss warning").isHidden()
    builder.set_config(ModelConfig(arch="dense", loss="bce", output="sigmoid"))
    assert find_by_name(builder, "Loss warning").isHidden()


def test_irrelevant_widgets_hidden_or_disabled(builder):
    builder.set_config(ModelConfig(arch="conv", kind="ae"))
    assert find_by_name(builder, "Beta").isHidden()
    assert not find_by_name(builder, "Tied weights").isEnabled()
    assert "dense" in find_by_name(builder, "Tied weights").toolTip()
    builder.set_config(ModelConfig(arch="dense", kind="vae"))
    assert not find_by_name(builder, "Beta").isHidden()
    assert find_by_name(builder, "Tied weights").isEnabled()


@pytest.mark.parametrize("cfg", [ModelConfig(), ModelConfig(arch="dense", latent=2, hidden=[64, 32], tied=True),
                                 ModelConfig(arch="recurrent", rnn_cell="gru", latent=4)])
def test_parameter_count_matches_summarize(builder, qtbot, cfg):
    builder.set_config(cfg)
    expected = summarize(cfg).params
    qtbot.waitUntil(lambda: builder.param_count == expected, timeout=15000)
    assert f"{expected:,}" in find_by_name(builder, "Parameter count").text()
    assert builder.table.rowCount() == len(summarize(cfg).rows)


def test_parameter_count_is_pending_while_a_new_count_computes(builder, qtbot):
    """A count never outlives the request that replaced it: the label and param_count agree at every moment."""
    expected = summarize(builder.config()).params
    qtbot.waitUntil(lambda: builder.param_count == expected, timeout=15000)
    builder._summary_timer.stop()
    builder._start_summary()  # what the debounce timer does after an edit
    assert builder.param_count is None
    assert find_by_name(builder, "Parameter count").text() == "… parameters"
    qtbot.waitUntil(lambda: builder.param_count == expected, timeout=15000)
    assert f"{expected:,}" in find_by_name(builder, "Parameter count").text()


def test_hidden_sizes_text_and_completeness_badge(builder, qtbot):
    builder.set_config(ModelConfig(arch="dense", latent=16))
    hidden = find_by_name(builder, "Hidden sizes")
    assert "512, 256" in hidden.placeholderText()
    hidden.setText("128, 64")
    assert builder.config().hidden == (128, 64)
    hidden.setText("12x, 4")
    assert not find_by_name(builder, "Hidden sizes error").isHidden()
    assert builder.config().hidden == (128, 64)  # the last valid sizes stay in use
    hidden.setText("")
    assert builder.config().hidden is None
    badge = find_by_name(builder, "Completeness")
    assert badge.text().startswith("undercomplete") and badge.toolTip()
    find_by_name(builder, "Code size").setValue(1000)
    assert badge.text().startswith("overcomplete")


def test_every_control_has_a_tooltip_and_name(qtbot):
    from PySide6.QtWidgets import (
        QAbstractButton,
        QAbstractSpinBox,
        QComboBox,
        QLineEdit,
    )

    state = _state_with_data()
    for panel in (BuilderPanel(state), TrainingPanel(state)):
        qtbot.addWidget(panel)
        controls = [w for cls in (QAbstractButton, QAbstractSpinBox, QComboBox, QLineEdit) for w in panel.findChildren(cls)]
        for w in controls:
            if isinstance(w.parent(), (QAbstractSpinBox, QComboBox)) or w.objectName().startswith("qt_"):
                continue  # Qt's own parts: the line edit inside a spin box, a table's corner button
            assert w.toolTip(), f"{type(w).__name__} {w.accessibleName()!r} has no tooltip"
            assert w.accessibleName(), f"{type(w).__name__} {w.toolTip()[:40]!r} has no accessible name"


def test_training_panel_round_trip(qtbot):
    state = StudioState()
    panel = TrainingPanel(state)
    qtbot.addWidget(panel)
    for cfg in (TrainConfig(), TrainConfig(epochs=3, batch_size=17, lr=3e-4, noise="gaussian:0.25", val_fraction=0.1,
                                           seed=42, pretrain_epochs=5, grad_clip=1.5),
                TrainConfig(noise="mask:0.3"), TrainConfig(noise="saltpepper:0.05", device="cpu")):
        panel.set_config(cfg)
        assert panel.config() == cfg
        assert state.train_config == cfg


def test_dense_layers_field_shows_its_default_and_is_for_conv_only(builder, qtbot):
    builder.set_config(ModelConfig(arch="conv", input_shape=(1, 28, 28)))
    dense = find_by_name(builder, "Dense layers")
    assert dense.isEnabled() and dense.placeholderText() == "default: 256"
    dense.setText("none")
    assert builder.config().dense_layers == () and builder.config().dense_sizes == []
    dense.setText("128, 32")
    assert builder.config().dense_sizes == [128, 32]
    qtbot.waitUntil(lambda: builder.param_count == summarize(builder.config()).params, timeout=15000)
    dense.setText("")
    builder.set_config(ModelConfig(arch="conv", input_shape=(1, 6, 6)))
    assert find_by_name(builder, "Dense layers").placeholderText() == "default: none"  # too few conv features
    builder.set_config(ModelConfig(arch="dense"))
    assert not find_by_name(builder, "Dense layers").isEnabled()


def test_studio_epochs_follow_the_step_budget_of_the_image_size(qtbot):
    """As the CLI: 1,600 training images of 28x28 gray get 4,000 steps of 32 (80 epochs), RGB ones
    of the same size 5,300 (106 epochs); the Training panel shows it until the user sets epochs."""
    state = StudioState()
    training = TrainingPanel(state)
    qtbot.addWidget(training)
    rng = np.random.default_rng(0)
    state.set_dataset(ImageSet("gray", rng.integers(0, 255, (2000, 1, 28, 28), dtype=np.uint8), None, []), "gray")
    assert state.train_config.epochs == 80 and state.epochs_auto
    state.set_dataset(ImageSet("rgb", rng.integers(0, 255, (2000, 3, 28, 28), dtype=np.uint8), None, []), "rgb")
    assert state.train_config.epochs == 106 and state.epochs_auto
    assert find_by_name(training, "Epochs").value() == 106
