"""Forms from one field table: the configs' `ui(...)` metadata builds the Model builder and Training
panels (widgets, accessible names, tooltips, ranges, visibility), and a new annotated field shows
up in a form with no UI code."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pytest
from conftest import find_all_by_name, find_by_name
from PySide6.QtWidgets import QCheckBox, QComboBox, QGroupBox, QLineEdit, QSpinBox

from aestudio.core.config import ModelConfig, TrainConfig
from aestudio.core.fields import UiSpec, labelled, rule_holds, ui, ui_fields
from aestudio.ui.builder_panel import BuilderPanel
from aestudio.ui.forms import INT_MAX, ConfigForm, parse_int_list
from aestudio.ui.state import StudioState
from aestudio.ui.style import FloatSpin
from aestudio.ui.training_panel import TrainingPanel

CONTRACT = {"builder": ["Architecture", "Kind", "Code size"],
            "training": ["Epochs", "Batch size", "Learning rate", "Seed", "Validation fraction", "Noise"]}


@pytest.fixture
def panels(qtbot):
    state = StudioState()
    builder, training = BuilderPanel(state), TrainingPanel(state)
    qtbot.addWidget(builder)
    qtbot.addWidget(training)
    return state, builder, training


# ---- the table itself (no Qt) ---------------------------------------------------------------------
SHOWN_MODEL = {"arch", "kind", "latent", "hidden", "activation", "activations", "output", "loss", "init", "dropout",
               "batch_norm", "tied", "stacked", "beta", "sparsity", "sparsity_weight", "sparsity_target",
               "contractive_weight", "weight_decay", "rnn_cell", "free_bits"}
SHOWN_TRAIN = {"epochs", "batch_size", "lr", "noise", "val_fraction", "seed", "device", "pretrain_epochs", "grad_clip",
               "kl_warmup"}


def test_the_table_holds_every_setting_the_panels_show():
    assert SHOWN_MODEL <= {f.name for f in ui_fields(ModelConfig)}
    assert SHOWN_TRAIN <= {f.name for f in ui_fields(TrainConfig)}
    assert "input_shape" not in {f.name for f in ui_fields(ModelConfig)}  # set by the data set, not the user
    order = [f.name for f in dataclasses.fields(ModelConfig)]
    assert [f.name for f in ui_fields(ModelConfig)] == [n for n in order if n in {f.name for f in ui_fields(ModelConfig)}]
    for f in ui_fields(ModelConfig) + ui_fields(TrainConfig):
        assert f.spec.label and len(f.spec.tip) > 20, f.name
        if f.widget == "combo":  # every allowed value of a choice field can be picked
            assert f.default in [v for v, _ in f.spec.choices], f.name


def test_ui_helper_checks_its_input_and_rules_read_plainly():
    assert isinstance(ui("A", "tip")["ui"], UiSpec)
    with pytest.raises(ValueError):
        ui("", "tip")
    with pytest.raises(ValueError):
        ui("A", "tip", lo=2, hi=1)
    assert labelled(("a", "b"), {"a": "Alpha"}) == (("a", "Alpha"), ("b", "b"))  # a new value needs no label
    assert rule_holds({"kind": "vae"}, {"kind": "vae"}) and not rule_holds({"kind": "vae"}, {"kind": "ae"})
    assert rule_holds({"arch": ("dense", "conv")}, {"arch": "conv", "x": 1})
    assert not rule_holds({"kind": "vae", "stacked": True}, {"kind": "vae", "stacked": False})
    assert not rule_holds({"missing": 1}, {}) and rule_holds(None, {})
    assert ui("A", "tip", visible_when={"arch": ["dense"]})["ui"].visible_when == {"arch": ("dense",)}


# ---- every field gets its widget --------------------------------------------------------------------
@pytest.mark.parametrize("which", ["builder", "training"])
def test_every_field_has_its_widget_name_tooltip_and_range(panels, which):
    _, builder, training = panels
    panel, cls = (builder, ModelConfig) if which == "builder" else (training, TrainConfig)
    for f in ui_fields(cls):
        w = panel.widget(f.name)
        assert w.accessibleName() == f.spec.name
        assert find_all_by_name(panel, f.spec.name) == [w], f"{f.spec.name!r} names more than one widget"
        assert w.toolTip().startswith(f.spec.tip), f.name
        if f.widget == "spin":
            assert isinstance(w, QSpinBox)
            assert (w.minimum(), w.maximum()) == (int(f.spec.lo), min(int(f.spec.hi), INT_MAX)), f.name
        elif f.widget in ("float", "log"):
            assert isinstance(w, FloatSpin)
            assert (w.minimum(), w.maximum()) == (f.spec.lo, f.spec.hi), f.name
        elif f.widget == "combo":
            assert isinstance(w, QComboBox)
            assert [w.itemData(i) for i in range(w.count())][:len(f.spec.choices)] == [v for v, _ in f.spec.choices]
            assert [w.itemText(i) for i in range(len(f.spec.choices))] == [t for _, t in f.spec.choices]
        elif f.widget == "check":
            assert isinstance(w, QCheckBox) and w.text() == f.spec.label
        elif f.widget in ("int_list", "name_list", "text"):
            assert isinstance(w, QLineEdit)
    for name in CONTRACT[which]:
        assert len(find_all_by_name(panel, name)) == 1, name


def test_log_fields_step_along_one_two_five(panels):
    _, builder, training = panels
    lr = training.widget("lr")
    lr.set_exact(1e-3)
    lr.stepBy(1)
    assert lr.value() == pytest.approx(2e-3)
    lr.stepBy(2)
    assert lr.value() == pytest.approx(1e-2)
    beta = builder.widget("beta")  # a linear field steps by its step
    beta.set_exact(1.0)
    beta.stepBy(1)
    assert beta.value() == pytest.approx(1.5)


# ---- round trips ----------------------------------------------------------------------------------
MODELS = [
    ModelConfig(arch="dense", kind="ae", latent=2, hidden=[512, 256]),
    ModelConfig(arch="dense", kind="vae", latent=8, beta=4.0, free_bits=0.25, tied=True, activations=["relu", "tanh"],
                hidden=[300, 100], loss="bce", init="xavier", weight_decay=1e-5),
    ModelConfig(arch="dense", kind="sparse", sparsity="kl", sparsity_weight=3e-3, sparsity_target=0.07, stacked=True,
                batch_norm=True, dropout=0.25),
    ModelConfig(arch="conv", kind="contractive", contractive_weight=0.0123, hidden=[16, 32], output="linear",
                activation="leaky_relu"),
    ModelConfig(arch="conv", kind="vae", latent=3, stacked=True, input_shape=(3, 32, 32)),
    ModelConfig(arch="recurrent", rnn_cell="gru", hidden=[96], latent=10, activation="tanh"),
    ModelConfig(arch="dense", kind="aae", hidden=[], latent=32, activation="linear", output="linear"),
]
TRAINS = [
    TrainConfig(),
    TrainConfig(epochs=3, batch_size=17, lr=3e-4, noise="gaussian:0.25", val_fraction=0.1, seed=42, pretrain_epochs=5,
                grad_clip=1.5, kl_warmup=0.5, device="cpu"),
    TrainConfig(noise="saltpepper:0.05"), TrainConfig(noise="mask:0.3", kl_warmup=0.0),
]


@pytest.mark.parametrize("cfg", MODELS, ids=lambda c: f"{c.arch}-{c.kind}")
def test_builder_round_trip(panels, cfg):
    state, builder, _ = panels
    builder.set_config(cfg)
    assert builder.config() == cfg
    assert state.model_config == cfg
    assert builder.config() is not cfg  # a new config each time, never the shown one


@pytest.mark.parametrize("cfg", TRAINS)
def test_training_round_trip(panels, cfg):
    state, _, training = panels
    training.set_config(cfg)
    assert training.config() == cfg and state.train_config == cfg


def test_every_field_away_from_its_default_survives_the_round_trip(panels):
    """One config per field, that field changed: each value reaches its widget and comes back."""
    _, builder, training = panels
    other = {"int": 7, "float": 0.375, "log": 0.002}
    for panel, cls in ((builder, ModelConfig), (training, TrainConfig)):
        for f in ui_fields(cls):
            if f.widget == "combo":
                value = [v for v, _ in f.spec.choices if v != f.default][0]
            elif f.widget == "check":
                value = not f.default
            elif f.widget == "int_list":
                value = (64, 32)
            elif f.widget == "name_list":
                value = ("relu", "tanh")
            elif f.widget == "noise":
                value = "gaussian:0.125"
            elif f.widget == "device":
                value = "cpu"
            elif f.widget == "spin":
                value = max(int(f.spec.lo or 0), 1) + 2
            else:
                value = min(other[f.widget], f.spec.hi)
            cfg = dataclasses.replace(cls(hidden=(64, 32)) if cls is ModelConfig else cls(), **{f.name: value})
            panel.set_config(cfg)
            assert getattr(panel.config(), f.name) == getattr(cfg, f.name), f.name
            assert panel.config() == cfg, f.name


def test_a_user_edit_makes_a_new_config_and_leaves_the_shown_one_alone(panels, qtbot):
    state, builder, training = panels
    shown = ModelConfig(arch="dense", kind="vae", hidden=[64])
    builder.set_config(shown)
    find_by_name(builder, "Code size").setValue(5)
    assert builder.config().latent == 5 and state.model_config.latent == 5 and shown.latent == 16
    find_by_name(builder, "Hidden sizes").setText("none")  # no hidden layer
    assert builder.config().hidden == ()
    builder.set_config(builder.config())
    assert find_by_name(builder, "Hidden sizes").text() == "none"
    with qtbot.waitSignal(state.trainConfigChanged, timeout=10000):
        find_by_name(training, "Seed").setValue(9)
    assert state.train_config.seed == 9
    find_by_name(training, "Noise").setCurrentIndex(find_by_name(training, "Noise").findData("mask"))
    find_by_name(training, "Noise level").set_exact(0.4)
    assert training.config().noise == "mask:0.4"


def test_hidden_sizes_parse():
    assert parse_int_list("512, 256") == [512, 256]
    assert parse_int_list(" ") is None and parse_int_list("None") == []
    with pytest.raises(ValueError):
        parse_int_list("12x")


# ---- visibility --------------------------------------------------------------------------------
def _hidden(panel, name: str) -> bool:
    return find_by_name(panel, name).isHidden()


def test_rows_follow_the_model(panels):
    _, builder, training = panels
    builder.set_config(ModelConfig(arch="conv", kind="ae"))
    assert all(_hidden(builder, n) for n in ("Beta", "Free bits", "Sparsity penalty", "Sparsity weight",
                                             "Sparsity target rho", "Contractive weight", "Recurrent cell"))
    assert _hidden(training, "KL warm-up") and _hidden(training, "Pretraining epochs")
    tied = find_by_name(builder, "Tied weights")
    assert not tied.isEnabled() and "Not available" in tied.toolTip()
    builder.set_config(ModelConfig(arch="dense", kind="vae", stacked=True))
    assert not _hidden(builder, "Beta") and not _hidden(builder, "Free bits")
    assert not _hidden(training, "KL warm-up") and not _hidden(training, "Pretraining epochs")
    assert tied.isEnabled() and "Not available" not in tied.toolTip()
    builder.set_config(ModelConfig(arch="dense", kind="sparse", sparsity="l1"))
    assert not _hidden(builder, "Sparsity weight") and _hidden(builder, "Sparsity target rho")
    find_by_name(builder, "Sparsity penalty").setCurrentIndex(find_by_name(builder, "Sparsity penalty").findData("kl"))
    assert not _hidden(builder, "Sparsity target rho")  # a user edit re-applies the rules at once
    builder.set_config(ModelConfig(arch="recurrent", kind="contractive", tied=True))
    assert not _hidden(builder, "Recurrent cell") and not _hidden(builder, "Contractive weight")
    assert tied.isEnabled()  # ticked where it does not apply: still clickable, so it can be cleared
    builder.set_config(ModelConfig(arch="dense", activations=["relu"], hidden=[32]))
    assert not find_by_name(builder, "Activation").isEnabled()


# ---- a new field needs no UI code -----------------------------------------------------------------
@dataclass(frozen=True)
class Knobs:
    size: int = field(default=4, metadata=ui("Size", "How many things.", lo=1, hi=99))
    mode: str = field(default="a", metadata=ui("Mode", "Which way.", choices=labelled(("a", "b"), {"a": "A way"}),
                                               group="Details"))
    rate: float = field(default=0.5, metadata=ui("Rate", "How fast.", lo=0.0, hi=2.0, step=0.25, group="Details",
                                                 visible_when={"mode": "b"}))
    extra: float = field(default=1e-3, metadata=ui("Extra", "Rarely needed.", widget="log", lo=0.0, hi=1.0,
                                                   advanced=True))
    flag: bool = field(default=False, metadata=ui("Flag", "On or off.", group="Details",
                                                  enabled_when={"outside": True}, unavailable="Needs outside."))
    width: int = field(default=2, metadata=ui("W", "Width.", accessible="Width", lo=0, hi=9, beside="size"))
    note: str = "no widget"


def test_a_plain_dataclass_gets_a_form(qtbot):
    form = ConfigForm(Knobs, title="Knobs")
    qtbot.addWidget(form)
    assert set(form.fields) == {"size", "mode", "rate", "extra", "flag", "width"}
    assert [b.title() for b in form.findChildren(QGroupBox)] == ["Details"]
    assert find_by_name(form, "Width").maximum() == 9 and find_by_name(form, "Mode").itemText(1) == "b"
    assert form.apply(Knobs(size=50, extra=0.5)) == Knobs()  # a new form shows the fields' defaults
    base = Knobs()
    form.set_values(base)
    assert form.apply(base) == base
    seen = []
    form.changed.connect(seen.append)
    assert _hidden(form, "Rate") and _hidden(form, "Extra")
    find_by_name(form, "Mode").setCurrentIndex(1)
    assert seen == ["mode"] and not _hidden(form, "Rate")
    form.more.setChecked(True)
    assert not _hidden(form, "Extra")
    assert not find_by_name(form, "Flag").isEnabled() and "Needs outside." in find_by_name(form, "Flag").toolTip()
    form.set_context({"outside": True})
    assert find_by_name(form, "Flag").isEnabled()
    form.set_values({"size": 12, "width": 3})
    assert seen == ["mode"]  # showing values is not an edit
    assert form.apply(base) == Knobs(size=12, mode="b", width=3) and base == Knobs()


def test_a_field_added_to_the_model_config_appears_in_the_builder_form(qtbot):
    @dataclass(frozen=True)
    class Extended(ModelConfig):
        warmth: float = field(default=0.5, metadata=ui("Warmth", "A made-up VAE knob.", lo=0.0, hi=1.0,
                                                       group="Bottleneck", visible_when={"kind": "vae"}))

    form = ConfigForm(Extended)
    qtbot.addWidget(form)
    form.set_values(Extended(kind="vae"))
    warmth = find_by_name(form, "Warmth")
    assert warmth.toolTip() == "A made-up VAE knob." and not warmth.isHidden()
    assert warmth.parentWidget().title() == "Bottleneck"
    warmth.set_exact(0.75)
    assert form.apply(Extended()).warmth == 0.75
    form.set_values({"kind": "ae"})
    assert warmth.isHidden()


def test_labs_build_their_settings_from_a_table(qtbot):
    from aestudio.core.labs.few_labels import FewLabelsSettings
    from aestudio.core.labs.health import HealthSettings
    from aestudio.ui.labs.few_labels_lab import FewLabelsLab
    from aestudio.ui.labs.health_lab import LatentHealthLab

    state = StudioState()
    for lab_cls, settings in ((LatentHealthLab, HealthSettings), (FewLabelsLab, FewLabelsSettings)):
        lab = lab_cls(state)
        qtbot.addWidget(lab)
        for f in ui_fields(settings):
            w = find_by_name(lab, f.spec.name)
            assert w is lab.settings.widget(f.name) and w.toolTip() == f.spec.tip
        assert lab.settings.apply(settings()) == settings()  # the lab starts at the settings' defaults
    health = LatentHealthLab(state)
    qtbot.addWidget(health)
    health.threshold.set_exact(0.02)
    assert health.settings.apply(HealthSettings()).kl_threshold == 0.02
    assert find_by_name(health, "Inactive threshold").text() == "0.020 nats"
    few = FewLabelsLab(state)
    qtbot.addWidget(few)
    assert not few.finetune_epochs.isEnabled()
    few.finetune.setChecked(True)
    assert few.finetune_epochs.isEnabled()
