"""The "Model builder" panel: every `ModelConfig` field as a widget, with live feedback.

Two-way: `config()` reads the widgets into a `ModelConfig`, `set_config(cfg)` shows one; the round
trip is lossless (exact floats, unknown choices kept). Each edit writes the config to the state
at once (so Train always uses what is on screen) and announces it with `state.set_model_config`
debounced by ~150 ms. The parameter count and layer table come from `summarize()` on a
background Task (a large dense model can take a while to build), discarding stale results.
"""
from __future__ import annotations

import dataclasses
import re

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..core.config import ModelConfig, default_hidden
from ..core.models import summarize
from ..core.resources import available_bytes, check_model_fits, estimate, fmt_bytes
from ..workers.tasks import Task, start
from . import style
from .state import StudioState

DEBOUNCE_MS = 150

ARCH_ITEMS = [
    ("dense", "Dense (fully connected)"),
    ("conv", "Convolutional"),
    ("recurrent", "Recurrent (rows as a sequence)"),
]
KIND_ITEMS = [
    ("ae", "Plain autoencoder"),
    ("vae", "Variational (VAE)"),
    ("sparse", "Sparse"),
    ("contractive", "Contractive"),
]
CELL_ITEMS = [("lstm", "LSTM"), ("gru", "GRU")]
ACT_ITEMS = [("relu", "ReLU"), ("leaky_relu", "Leaky ReLU"), ("elu", "ELU"), ("tanh", "tanh"), ("sigmoid", "sigmoid")]
INIT_ITEMS = [("he", "He (Kaiming)"), ("xavier", "Xavier (Glorot)")]
OUTPUT_ITEMS = [("sigmoid", "Sigmoid: pixels in [0, 1]"), ("linear", "Linear: unbounded")]
LOSS_ITEMS = [("mse", "Mean squared error"), ("bce", "Binary cross-entropy")]
SPARSITY_ITEMS = [("kl", "KL to a target rate ρ"), ("l1", "L1 on the code")]

TIPS = {
    "arch": ("How encoder and decoder are built. Dense layers see every pixel at once; convolutional layers "
             "share small filters across the image (fewer parameters, built-in translation structure); "
             "recurrent layers read the image one row at a time as a sequence."),
    "rnn_cell": ("The recurrent unit. LSTM keeps a separate memory cell with gates; GRU is a lighter variant with "
                 "fewer parameters that often trains just as well."),
    "kind": ("What the bottleneck does. Plain: a deterministic code. VAE: the encoder outputs a mean and a "
             "variance and samples the code with the reparameterisation trick, with a KL term pulling codes "
             "towards N(0, I) so you can sample new images. Sparse: only a few code units may be active. "
             "Contractive: the code is made insensitive to small input changes."),
    "latent": ("Number of code units. Smaller than the input (undercomplete) forces the network to compress and "
               "keep only what matters; larger (overcomplete) needs a regulariser (sparsity, noise, contraction) "
               "or it can just copy the input."),
    "beta": ("β weights the KL term of the VAE. β > 1 pushes codes towards the prior: smoother, more "
             "disentangled latent space but blurrier reconstructions; β < 1 favours sharp reconstructions "
             "over a well-organised latent space."),
    "sparsity": ("How sparsity is measured. KL: the average activation of each code unit is pulled towards the "
                 "target rate ρ. L1: the absolute values of the code are penalised, driving most to zero."),
    "sparsity_weight": ("Weight of the sparsity penalty. Larger: fewer active code units per image, at some cost "
                        "in reconstruction quality."),
    "sparsity_target": ("ρ, the desired average activation of each code unit (e.g. 0.05 means each unit fires for "
                        "about 5% of the images)."),
    "contractive_weight": ("Weight of the contractive penalty ‖∂z/∂x‖²: how strongly the code is made insensitive to "
                           "tiny input changes, so it follows the data manifold instead of every pixel wiggle."),
    "hidden": ("Layer sizes from the input towards the code, mirrored in the decoder: units for dense layers, "
               "channels for conv layers (each halves the image side), units for the recurrent layer. Leave "
               "empty for the default: halve each layer."),
    "halve": "Fill in sizes that start from the first one and halve each layer until close to the code size.",
    "activation": ("The non-linearity after each hidden layer. Without one, a stack of layers is a single linear "
                   "map and the autoencoder can do no better than PCA."),
    "activations": ("Optional: one activation per hidden layer, separated by commas (e.g. \"relu, tanh\"). "
                    "Empty: the activation above for every layer."),
    "batch_norm": ("Normalise each layer's outputs over the batch: usually faster, more stable training; "
                   "slightly different behaviour in training and evaluation."),
    "dropout": ("Fraction of hidden units randomly switched off during training, a regulariser against "
                "memorising the training images."),
    "init": ("How weights start. He suits ReLU-like activations, Xavier suits tanh and sigmoid; a bad start "
             "can make deep networks train slowly or not at all."),
    "output": ("The last activation of the decoder. Sigmoid keeps pixels in [0, 1] like the images (and is "
               "needed for binary cross-entropy); linear outputs any value, which suits MSE on unbounded data."),
    "loss": ("How reconstructions are scored. MSE: squared pixel differences. BCE: treats each pixel as a "
             "probability, sharper on near-black-and-white images; needs a sigmoid output."),
    "weight_decay": "L2 penalty on all weights, reported as its own loss term: a simple guard against overfitting.",
    "tied": ("Dense only: the decoder reuses the encoder's weight matrices, transposed. Halves the weights and "
             "acts as a regulariser (a linear tied autoencoder learns the PCA subspace)."),
    "stacked": ("Greedy layer-wise pretraining: first train each encoder/decoder pair on its own, from the "
                "outside in, then fine-tune the whole network end to end (the classic way deep autoencoders "
                "were first trained)."),
    "completeness": ("Undercomplete: the code is smaller than the input, so the network must compress. "
                     "Overcomplete: the code is at least as large as the input; without a regulariser "
                     "(sparsity, noise, contraction) it can learn the identity and tell you nothing."),
}


def _combo(items: list[tuple[str, str]], tip: str, name: str) -> QComboBox:
    c = style.NoWheelComboBox()
    for value, label in items:
        c.addItem(label, value)
    c.setToolTip(tip)
    c.setAccessibleName(name)
    c.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    c.setMinimumContentsLength(10)
    return c


def _set_combo(c: QComboBox, value) -> None:
    """Select `value`; an unknown value is added (marked) so nothing is lost on the way back."""
    i = c.findData(value)
    if i < 0:
        c.addItem(f"{value} (unknown)", value)
        i = c.count() - 1
    c.setCurrentIndex(i)


def _fmt_list(values) -> str:
    return ", ".join(str(v) for v in values)


def parse_int_list(text: str) -> list[int] | None:
    """"512, 256" -> [512, 256]; "" -> None; raises ValueError for anything else."""
    parts = [p for p in re.split(r"[,\s;]+", text.strip()) if p]
    if not parts:
        return None
    return [int(p) for p in parts]


def parse_name_list(text: str) -> list[str] | None:
    parts = [p.strip().lower().replace(" ", "_").replace("-", "_") for p in re.split(r"[,;]+", text) if p.strip()]
    return parts or None


def halving(first: int, latent: int, arch: str) -> list[int]:
    """first, first/2, ... while staying above twice the code size (at most 4 layers)."""
    if arch == "conv":  # conv channels grow instead of shrink
        return [first, first * 2]
    sizes = [first]
    while sizes[-1] // 2 > 2 * latent and len(sizes) < 4:
        sizes.append(sizes[-1] // 2)
    return sizes


class BuilderPanel(QWidget):
    """Edit the model; publishes to `state.model_config`."""

    configEdited = Signal(object)  # ModelConfig, after each user edit (already written to the state)
    summaryUpdated = Signal(object)  # ModelSummary | None

    def __init__(self, state: StudioState, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self.setAccessibleName("Model builder")
        self.setToolTip("Design the autoencoder: architecture, bottleneck, layers, output and loss.")
        self._loading = False
        self._input_shape = tuple(state.model_config.input_shape)
        self._hidden: list[int] | None = None
        self._hidden_error = ""
        self._summary_gen = 0
        self._tasks: list[Task] = []
        self.summary = None
        self.param_count: int | None = None

        self._build()
        self._push_timer = QTimer(self)
        self._push_timer.setSingleShot(True)
        self._push_timer.setInterval(DEBOUNCE_MS)
        self._push_timer.timeout.connect(self._push)
        self._summary_timer = QTimer(self)
        self._summary_timer.setSingleShot(True)
        self._summary_timer.setInterval(DEBOUNCE_MS)
        self._summary_timer.timeout.connect(self._start_summary)

        self._show(state.model_config)
        self._refresh()
        self._start_summary()
        state.modelConfigChanged.connect(self._on_state_config)

    # ---- construction -------------------------------------------------------------------
    def _build(self) -> None:
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(0)

        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        body = QWidget()
        lay = QVBoxLayout(body)
        style.tune_layout(lay, style.MARGIN, 8)
        scroll.setWidget(body)
        outer.addWidget(scroll, 1)

        self.input_label = QLabel()
        self.input_label.setAccessibleName("Input shape")
        self.input_label.setToolTip("The shape of one image (channels × height × width), set by the data set.")
        self.input_label.setStyleSheet(style.muted_css(self))
        self.input_label.setWordWrap(True)
        lay.addWidget(self.input_label)

        # Architecture
        self.arch = _combo(ARCH_ITEMS, TIPS["arch"], "Architecture")
        self.rnn_cell = _combo(CELL_ITEMS, TIPS["rnn_cell"], "Recurrent cell")
        g, f = self._group("Architecture")
        f.addRow("Type", self.arch)
        f.addRow("Cell", self.rnn_cell)
        self.arch_form = f
        lay.addWidget(g)

        # Bottleneck
        self.kind = _combo(KIND_ITEMS, TIPS["kind"], "Kind")
        self.latent = style.NoWheelSpinBox()
        self.latent.setRange(1, 65536)
        self.latent.setKeyboardTracking(False)
        self.latent.setToolTip(TIPS["latent"])
        self.latent.setAccessibleName("Code size")
        self.beta = style.FloatSpin(0.0, 1000.0, 0.5)
        self.beta.setToolTip(TIPS["beta"])
        self.beta.setAccessibleName("Beta")
        self.sparsity = _combo(SPARSITY_ITEMS, TIPS["sparsity"], "Sparsity penalty")
        self.sparsity_weight = style.FloatSpin(0.0, 1000.0, log=True)
        self.sparsity_weight.setToolTip(TIPS["sparsity_weight"])
        self.sparsity_weight.setAccessibleName("Sparsity weight")
        self.sparsity_target = style.FloatSpin(0.0, 1.0, 0.01)
        self.sparsity_target.setToolTip(TIPS["sparsity_target"])
        self.sparsity_target.setAccessibleName("Sparsity target rho")
        self.contractive_weight = style.FloatSpin(0.0, 1000.0, log=True)
        self.contractive_weight.setToolTip(TIPS["contractive_weight"])
        self.contractive_weight.setAccessibleName("Contractive weight")
        g, f = self._group("Bottleneck")
        f.addRow("Kind", self.kind)
        f.addRow("Code size", self.latent)
        f.addRow("β (KL weight)", self.beta)
        f.addRow("Penalty", self.sparsity)
        f.addRow("Weight", self.sparsity_weight)
        f.addRow("Target ρ", self.sparsity_target)
        f.addRow("Weight", self.contractive_weight)
        self.bottleneck_form = f
        lay.addWidget(g)

        # Layers
        self.hidden = QLineEdit()
        self.hidden.setToolTip(TIPS["hidden"])
        self.hidden.setAccessibleName("Hidden sizes")
        self.halve = QToolButton()
        self.halve.setText("Halve")
        self.halve.setToolTip(TIPS["halve"])
        self.halve.setAccessibleName("Halve each layer")
        row = QHBoxLayout()
        row.setSpacing(4)
        row.addWidget(self.hidden, 1)
        row.addWidget(self.halve)
        self.hidden_error = QLabel()
        self.hidden_error.setWordWrap(True)
        self.hidden_error.setStyleSheet(style.problems_css())
        self.hidden_error.setAccessibleName("Hidden sizes error")
        self.hidden_error.hide()
        hid_box = QVBoxLayout()
        hid_box.setSpacing(2)
        hid_box.addLayout(row)
        hid_box.addWidget(self.hidden_error)
        self.activation = _combo(ACT_ITEMS, TIPS["activation"], "Activation")
        self.activations = QLineEdit()
        self.activations.setPlaceholderText("same for every layer")
        self.activations.setToolTip(TIPS["activations"])
        self.activations.setAccessibleName("Per-layer activations")
        self.batch_norm = QCheckBox("Batch normalisation")
        self.batch_norm.setToolTip(TIPS["batch_norm"])
        self.batch_norm.setAccessibleName("Batch normalisation")
        self.dropout = style.FloatSpin(0.0, 0.95, 0.05)
        self.dropout.setToolTip(TIPS["dropout"])
        self.dropout.setAccessibleName("Dropout")
        self.init = _combo(INIT_ITEMS, TIPS["init"], "Initialisation")
        g, f = self._group("Layers")
        f.addRow("Hidden sizes", hid_box)
        f.addRow("Activation", self.activation)
        f.addRow("Per layer", self.activations)
        f.addRow("Dropout", self.dropout)
        f.addRow("Init", self.init)
        f.addRow("", self.batch_norm)
        lay.addWidget(g)

        # Output & loss
        self.output = _combo(OUTPUT_ITEMS, TIPS["output"], "Output activation")
        self.loss = _combo(LOSS_ITEMS, TIPS["loss"], "Loss")
        self.loss_warning = QLabel("Binary cross-entropy needs a sigmoid output: choose Sigmoid or use MSE.")
        self.loss_warning.setWordWrap(True)
        self.loss_warning.setStyleSheet(style.problems_css())
        self.loss_warning.setAccessibleName("Loss warning")
        self.loss_warning.hide()
        self.weight_decay = style.FloatSpin(0.0, 10.0, log=True)
        self.weight_decay.setToolTip(TIPS["weight_decay"])
        self.weight_decay.setAccessibleName("Weight decay")
        g, f = self._group("Output && loss")
        f.addRow("Output", self.output)
        f.addRow("Loss", self.loss)
        f.addRow("", self.loss_warning)
        f.addRow("Weight decay", self.weight_decay)
        self.output_form = f
        lay.addWidget(g)

        # Options
        self.tied = QCheckBox("Tied weights")
        self.tied.setToolTip(TIPS["tied"])
        self.tied.setAccessibleName("Tied weights")
        self.stacked = QCheckBox("Stacked pretraining")
        self.stacked.setToolTip(TIPS["stacked"])
        self.stacked.setAccessibleName("Stacked pretraining")
        g = QGroupBox("Options")
        gl = QVBoxLayout(g)
        gl.setSpacing(4)
        gl.addWidget(self.tied)
        gl.addWidget(self.stacked)
        lay.addWidget(g)

        # Layer table
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["Layer", "Output", "Params"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        self.table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        hh = self.table.horizontalHeader()
        hh.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        hh.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        hh.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)
        self.table.setAccessibleName("Layer summary")
        self.table.setToolTip("Each layer's output shape (per image) and its number of trainable parameters, "
                              "from one dummy forward pass of the model.")
        self.table.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        g = QGroupBox("Layers summary")
        gl = QVBoxLayout(g)
        gl.addWidget(self.table)
        self.table_group = g
        lay.addWidget(g)
        lay.addStretch(1)
        self._align_labels(body)

        # Fixed footer: badge, parameter count, problems.
        footer = QWidget(self)
        fl = QVBoxLayout(footer)
        style.tune_layout(fl, style.MARGIN, 4)
        top = QHBoxLayout()
        top.setSpacing(8)
        self.badge = QLabel()
        self.badge.setAccessibleName("Completeness")
        self.badge.setToolTip(TIPS["completeness"])
        self.params_label = QLabel("… parameters")
        self.params_label.setAccessibleName("Parameter count")
        self.params_label.setToolTip("Trainable weights and biases of encoder and decoder together "
                                     "(tied decoder weights are counted once).")
        top.addWidget(self.badge)
        top.addStretch(1)
        top.addWidget(self.params_label)
        fl.addLayout(top)
        self.problems_label = QLabel()
        self.problems_label.setWordWrap(True)
        self.problems_label.setStyleSheet(style.problems_css())
        self.problems_label.setAccessibleName("Model problems")
        self.problems_label.setToolTip("What must change before this model can be trained.")
        self.problems_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.problems_label.hide()
        fl.addWidget(self.problems_label)
        line = QFrame(self)
        line.setFrameShape(QFrame.Shape.HLine)
        line.setFrameShadow(QFrame.Shadow.Sunken)
        outer.addWidget(line)
        outer.addWidget(footer)

        # Wiring: every edit goes through _edited.
        for c in (self.arch, self.rnn_cell, self.kind, self.sparsity, self.activation, self.init, self.output,
                  self.loss):
            c.currentIndexChanged.connect(self._edited)
        for s in (self.latent, self.beta, self.sparsity_weight, self.sparsity_target, self.contractive_weight,
                  self.dropout, self.weight_decay):
            s.valueChanged.connect(self._edited)
        for b in (self.batch_norm, self.tied, self.stacked):
            b.toggled.connect(self._edited)
        self.hidden.textChanged.connect(self._hidden_edited)
        self.activations.textChanged.connect(self._edited)
        self.halve.clicked.connect(self._fill_halving)

    @staticmethod
    def _align_labels(body: QWidget) -> None:
        """One label column width for every group, so the fields line up down the panel."""
        labels = []
        for form in body.findChildren(QFormLayout):
            for i in range(form.rowCount()):
                item = form.itemAt(i, QFormLayout.ItemRole.LabelRole)
                if item is not None and item.widget() is not None:
                    labels.append(item.widget())
        width = max((lab.sizeHint().width() for lab in labels), default=0)
        for lab in labels:
            lab.setMinimumWidth(width)

    def _group(self, title: str) -> tuple[QGroupBox, QFormLayout]:
        g = QGroupBox(title)
        f = style.tune_form(QFormLayout(g))
        f.setContentsMargins(4, 6, 4, 4)
        return g, f

    # ---- public API ---------------------------------------------------------------------
    def config(self) -> ModelConfig:
        """The model the widgets describe."""
        return ModelConfig(
            arch=self.arch.currentData(),
            kind=self.kind.currentData(),
            input_shape=tuple(self._input_shape),
            latent=int(self.latent.value()),
            hidden=None if self._hidden is None else list(self._hidden),
            activation=self.activation.currentData(),
            activations=parse_name_list(self.activations.text()),
            output=self.output.currentData(),
            loss=self.loss.currentData(),
            init=self.init.currentData(),
            dropout=self.dropout.exact(),
            batch_norm=self.batch_norm.isChecked(),
            tied=self.tied.isChecked(),
            stacked=self.stacked.isChecked(),
            beta=self.beta.exact(),
            sparsity=self.sparsity.currentData(),
            sparsity_weight=self.sparsity_weight.exact(),
            sparsity_target=self.sparsity_target.exact(),
            contractive_weight=self.contractive_weight.exact(),
            weight_decay=self.weight_decay.exact(),
            rnn_cell=self.rnn_cell.currentData(),
        )

    def set_config(self, cfg: ModelConfig) -> None:
        """Show `cfg` and make it the state's model config right away."""
        self._show(cfg)
        self._refresh()
        self._push_timer.stop()
        self._push()

    def flush(self) -> None:
        """Announce pending edits now instead of after the debounce."""
        if self._push_timer.isActive():
            self._push_timer.stop()
            self._push()

    def problems(self) -> list[str]:
        p = self.config().problems()
        if self._hidden_error:
            p.insert(0, self._hidden_error)
        return p

    # ---- widgets <-> config ---------------------------------------------------------------
    def _show(self, cfg: ModelConfig) -> None:
        self._loading = True
        try:
            self._input_shape = tuple(cfg.input_shape)
            _set_combo(self.arch, cfg.arch)
            _set_combo(self.rnn_cell, cfg.rnn_cell)
            _set_combo(self.kind, cfg.kind)
            self.latent.setValue(int(cfg.latent))
            self.beta.set_exact(cfg.beta)
            _set_combo(self.sparsity, cfg.sparsity)
            self.sparsity_weight.set_exact(cfg.sparsity_weight)
            self.sparsity_target.set_exact(cfg.sparsity_target)
            self.contractive_weight.set_exact(cfg.contractive_weight)
            self._hidden = None if cfg.hidden is None else list(cfg.hidden)
            self._hidden_error = ""
            self.hidden.setText("" if cfg.hidden is None else _fmt_list(cfg.hidden))
            _set_combo(self.activation, cfg.activation)
            self.activations.setText("" if cfg.activations is None else _fmt_list(cfg.activations))
            self.batch_norm.setChecked(bool(cfg.batch_norm))
            self.dropout.set_exact(cfg.dropout)
            _set_combo(self.init, cfg.init)
            _set_combo(self.output, cfg.output)
            _set_combo(self.loss, cfg.loss)
            self.weight_decay.set_exact(cfg.weight_decay)
            self.tied.setChecked(bool(cfg.tied))
            self.stacked.setChecked(bool(cfg.stacked))
        finally:
            self._loading = False

    @Slot()
    def _hidden_edited(self) -> None:
        if self._loading:
            return
        try:
            self._hidden = parse_int_list(self.hidden.text())
            self._hidden_error = ""
        except ValueError:
            self._hidden_error = ("hidden sizes must be whole numbers separated by commas, e.g. \"512, 256\" "
                                  "(still using the last valid sizes)")
        self._edited()

    @Slot()
    def _fill_halving(self) -> None:
        cfg = self.config()
        first = (self._hidden or cfg.hidden_sizes or [256])[0]
        self.hidden.setText(_fmt_list(halving(int(first), cfg.latent, cfg.arch)))

    @Slot()
    def _edited(self, *_) -> None:
        if self._loading:
            return
        cfg = self.config()
        self.state.model_config = self._state_copy(cfg)  # Train uses what is on screen, even mid-debounce
        self._refresh()
        self._push_timer.start()
        self.configEdited.emit(cfg)

    def _state_copy(self, cfg: ModelConfig) -> ModelConfig:
        if self.state.dataset is not None:
            return dataclasses.replace(cfg, input_shape=tuple(self.state.dataset.shape))
        return cfg

    @Slot()
    def _push(self) -> None:
        self.state.set_model_config(self._state_copy(self.config()))

    @Slot(object)
    def _on_state_config(self, cfg: ModelConfig) -> None:
        if cfg != self.config():
            self._push_timer.stop()
            self._show(cfg)
        self._refresh()

    # ---- derived display ------------------------------------------------------------------
    def _refresh(self) -> None:
        cfg = self.config()
        arch, kind = cfg.arch, cfg.kind
        # relevant rows only
        self.arch_form.setRowVisible(self.rnn_cell, arch == "recurrent")
        bf = self.bottleneck_form
        bf.setRowVisible(self.beta, kind == "vae")
        bf.setRowVisible(self.sparsity, kind == "sparse")
        bf.setRowVisible(self.sparsity_weight, kind == "sparse")
        bf.setRowVisible(self.sparsity_target, kind == "sparse" and cfg.sparsity == "kl")
        bf.setRowVisible(self.contractive_weight, kind == "contractive")
        self.tied.setEnabled(arch == "dense" or self.tied.isChecked())
        self.tied.setToolTip(TIPS["tied"] if arch == "dense" else
                             TIPS["tied"] + "\n\nNot available: tied weights need the dense architecture "
                             "(a transposed conv or recurrent layer is not the inverse of its encoder layer).")
        self.stacked.setEnabled(arch != "recurrent" or self.stacked.isChecked())
        self.stacked.setToolTip(TIPS["stacked"] if arch != "recurrent" else
                                TIPS["stacked"] + "\n\nNot available for the recurrent architecture, which has a "
                                "single encoder/decoder pair.")
        per_layer = bool(self.activations.text().strip())
        self.activation.setEnabled(not per_layer)
        self.activation.setToolTip(TIPS["activation"] + ("\n\nOverridden by the per-layer list below." if per_layer else ""))
        # hidden sizes: placeholder shows what the default means
        default = default_hidden(arch, tuple(self._input_shape), max(1, cfg.latent)) if len(self._input_shape) == 3 else []
        self.hidden.setPlaceholderText(f"default: {_fmt_list(default)}" if default else "default")
        unit = {"dense": "units", "conv": "channels", "recurrent": "units"}.get(arch, "sizes")
        self.hidden.setToolTip(TIPS["hidden"] + f"\n\nFor this architecture the numbers are {unit}.")
        self.hidden_error.setText(self._hidden_error)
        self.hidden_error.setVisible(bool(self._hidden_error))
        self.loss_warning.setVisible(cfg.loss == "bce" and cfg.output != "sigmoid")
        # input + completeness badge
        c, h, w = (tuple(self._input_shape) + (0, 0, 0))[:3]
        self.input_label.setText(f"Input: {c} × {h} × {w} = {cfg.input_dim:,} values (from the data set)")
        if cfg.latent < cfg.input_dim:
            ratio = cfg.input_dim / max(cfg.latent, 1)
            self.badge.setText(f"undercomplete · {ratio:.0f}×" if ratio >= 10 else f"undercomplete · {ratio:.1f}×")
            self.badge.setStyleSheet(style.badge_css(style.OK))
        else:
            self.badge.setText("overcomplete")
            self.badge.setStyleSheet(style.badge_css(style.WARN))
        self.badge.setToolTip(TIPS["completeness"] + f"\n\nCode {cfg.latent} vs input {cfg.input_dim}: "
                              f"{cfg.input_dim / max(cfg.latent, 1):.1f}× compression.")
        # problems
        problems = self.problems()
        if problems:
            self.problems_label.setText("\n".join(f"• {p[0].upper() + p[1:]}" for p in problems))
        self.problems_label.setVisible(bool(problems))
        self._summary_timer.start()

    def memory_estimate(self):
        """The memory estimate (aestudio.core.resources) of training the current config, or None."""
        cfg = self.config()
        if self.problems():
            return None
        train = self.state.train_config
        batch = train.batch_size if isinstance(train.batch_size, int) and train.batch_size > 0 else 128
        n = self.state.dataset.n if self.state.dataset is not None else 0
        try:
            return estimate(cfg, batch, n)
        except (TypeError, ValueError):
            return None

    def memory_text(self) -> str:
        est = self.memory_estimate()
        return "" if est is None else f"≈ {fmt_bytes(est.train_bytes)} to train"

    def memory_tip(self) -> str:
        est = self.memory_estimate()
        if est is None:
            return ""
        free = available_bytes("cpu")
        tip = (f"Training needs about {fmt_bytes(est.train_bytes)}: parameters and optimizer state "
               f"{fmt_bytes(est.train_state_bytes)}, activations for a batch of {est.batch_size:,} "
               f"{fmt_bytes(est.activation_bytes)}, data {fmt_bytes(est.data_bytes)}.")
        if free is not None:
            tip += f" This machine has {fmt_bytes(free)} free."
        return tip

    @Slot()
    def _start_summary(self) -> None:
        self._summary_gen += 1
        gen = self._summary_gen
        cfg = self.config()
        if self.problems():
            self._apply_summary((gen, None, ""))
            return
        self.params_label.setText("… parameters")
        self._tasks = [t for t in self._tasks if not t.finished_event.is_set()]
        task = Task(_summarize_safe, gen, cfg)
        task.signals.done.connect(self._apply_summary)
        self._tasks.append(task)  # keep a reference until it has run
        start(task)

    @Slot(object)
    def _apply_summary(self, result) -> None:
        gen, summary, error = result
        if gen != self._summary_gen:
            return  # an older request finished after a newer one started
        self.summary = summary
        self.param_count = None if summary is None else summary.params
        if summary is None:
            self.params_label.setText("– parameters" if not error else "? parameters")
            self.params_label.setToolTip(f"Could not build this model: {error}" if error else
                                         "Fix the problems below to see the parameter count.")
            self.table.setRowCount(0)
            self.table_group.hide()
        else:
            self.table_group.show()
            self.params_label.setText(f"<b>{summary.params:,}</b> parameters · {self.memory_text()}")
            self.params_label.setToolTip("Trainable weights and biases of encoder and decoder together "
                                         "(tied decoder weights are counted once).\n\n" + self.memory_tip())
            self.table.setRowCount(len(summary.rows))
            for i, r in enumerate(summary.rows):
                items = [QTableWidgetItem(r.name), QTableWidgetItem(" × ".join(map(str, r.output_shape))),
                         QTableWidgetItem(f"{r.params:,}" if r.params else "–")]
                items[1].setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                items[2].setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                for j, it in enumerate(items):
                    self.table.setItem(i, j, it)
        rows = self.table.rowCount()
        self.table.setFixedHeight(self.table.horizontalHeader().sizeHint().height() + 4 +
                                  rows * self.table.verticalHeader().defaultSectionSize())
        self.summaryUpdated.emit(summary)


def _summarize_safe(gen: int, cfg: ModelConfig):
    """Runs on a pool thread; never raises (the generation tells stale results apart)."""
    try:
        check_model_fits(cfg)  # the summary builds the model: refuse one that cannot fit first
        return gen, summarize(cfg), ""
    except Exception as e:  # noqa: BLE001 - shown next to the parameter count
        return gen, None, f"{type(e).__name__}: {e}"
