"""The "Model builder" panel: every `ModelConfig` field as a widget, with live feedback.

The fields come from the config's field table (`ui(...)` metadata in `aestudio.core.config`,
built by `aestudio.ui.forms.ConfigForm`): labels, tooltips, ranges, groups and which rows show for
which kind. Two-way: `config()` reads the widgets into a new `ModelConfig`, `set_config(cfg)` shows
one; the round trip is lossless (exact floats, unknown choices kept, fields without a widget kept).
Each edit makes the config the state's at once (so Train always uses what is on screen) and
announces it with `state.set_model_config` debounced by ~150 ms. The parameter count and layer
table come from `summarize()` on a background Task (a large dense model can take a while to
build), discarding stale results.
"""
from __future__ import annotations

import dataclasses

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..core.config import ModelConfig, default_dense, default_hidden
from ..core.models import summarize
from ..core.resources import available_bytes, check_model_fits, estimate, fmt_bytes
from ..workers.tasks import Task, start
from . import style
from .forms import ConfigForm, fmt_list
from .state import StudioState

DEBOUNCE_MS = 150
_IN_FLIGHT: list[Task] = []  # summary tasks still running (their signals must outlive a closed panel)

TIPS = {
    "halve": "Fill in sizes that start from the first one and halve each layer until close to the code size.",
    "completeness": ("Undercomplete: the code is smaller than the input, so the network must compress. "
                     "Overcomplete: the code is at least as large as the input; without a regulariser "
                     "(sparsity, noise, contraction) it can learn the identity and tell you nothing."),
    "params": "Trainable weights and biases of encoder and decoder together (tied decoder weights are counted once).",
    "table": ("Each layer's output shape (per image) and its number of trainable parameters, from one dummy "
              "forward pass of the model."),
}


def halving(first: int, latent: int, arch: str) -> list[int]:
    """first, first/2, ... while staying above twice the code size (at most 4 layers)."""
    if arch == "conv":  # conv channels grow instead of shrink
        return [first, first * 2]
    sizes = [first]
    while sizes[-1] // 2 > 2 * latent and len(sizes) < 4:
        sizes.append(sizes[-1] // 2)
    return sizes


def _label(text: str, name: str, tip: str, css: str = "", hidden: bool = False) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setAccessibleName(name)
    label.setToolTip(tip)
    if css:
        label.setStyleSheet(css)
    if hidden:
        label.hide()
    return label


class BuilderPanel(QWidget):
    """Edit the model; publishes to `state.model_config`."""

    configEdited = Signal(object)  # ModelConfig, after each user edit (already the state's config)
    summaryUpdated = Signal(object)  # ModelSummary | None

    def __init__(self, state: StudioState, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self.setAccessibleName("Model builder")
        self.setToolTip("Design the autoencoder: architecture, bottleneck, layers, output and loss.")
        self._base = state.model_config  # what the widgets do not show (the input shape) comes from here
        self._summary_gen = 0
        self.summary = None
        self.param_count: int | None = None

        self.form = ConfigForm(ModelConfig, title="Model")
        self.input_label = _label("", "Input shape", "The shape of one image (channels × height × width), set by "
                                  "the data set.", style.muted_css(self))
        self.halve = QToolButton(text="Halve", toolTip=TIPS["halve"], accessibleName="Halve each layer")
        self.form.add_beside("hidden", self.halve)
        self.loss_warning = _label("Binary cross-entropy needs a sigmoid output: choose Sigmoid or use MSE.",
                                   "Loss warning", "The chosen loss and output do not fit together.",
                                   style.problems_css(), hidden=True)
        self.form.add_row_after("loss", self.loss_warning)
        self.table, self.table_group = self._layer_table()
        self.badge = _label("", "Completeness", TIPS["completeness"])
        self.badge.setWordWrap(False)
        self.params_label = _label("… parameters", "Parameter count", TIPS["params"])
        self.params_label.setWordWrap(False)
        self.problems_label = _label("", "Model problems", "What must change before this model can be trained.",
                                     style.problems_css(), hidden=True)
        self.problems_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.warnings_label = _label("", "Model warnings", "This model can be trained, but it may not learn what "
                                     "you expect.", style.muted_css(self), hidden=True)
        self._lay_out()

        self._push_timer = self._timer(self._push)
        self._summary_timer = self._timer(self._start_summary)
        self._show(state.model_config)
        self._refresh()
        self._start_summary()
        self.form.changed.connect(self._edited)
        self.halve.clicked.connect(self._fill_halving)
        state.modelConfigChanged.connect(self._on_state_config)

    # ---- construction -------------------------------------------------------------------
    def _lay_out(self) -> None:
        """A scrolling body (input, the field groups, the layer table) over a fixed footer (badge,
        parameter count, problems)."""
        body = QWidget()
        lay = style.tune_layout(QVBoxLayout(body), style.MARGIN, 8)
        from .presets_menu import PresetsButton  # named starting points (core/presets.py)

        self.presets = PresetsButton(self.state, body)
        top = QHBoxLayout()
        top.addWidget(self.input_label, 1)
        top.addWidget(self.presets)
        lay.addLayout(top)
        lay.addWidget(self.form)
        lay.addWidget(self.table_group)
        lay.addStretch(1)
        ConfigForm.align_labels(body)
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(body)
        # the body scrolls, so on a short screen it may shrink to two rows and leave the height to the
        # Training panel below (whose fields and notes must show in full)
        scroll.setMinimumHeight(2 * self.fontMetrics().lineSpacing() + 16)
        footer = QWidget(self)
        fl = style.tune_layout(QVBoxLayout(footer), style.MARGIN, 4)
        top = QHBoxLayout()
        top.setSpacing(8)
        top.addWidget(self.badge)
        top.addStretch(1)
        top.addWidget(self.params_label)
        fl.addLayout(top)
        fl.addWidget(self.problems_label)
        fl.addWidget(self.warnings_label)
        line = QFrame(self)
        line.setFrameShape(QFrame.Shape.HLine)
        line.setFrameShadow(QFrame.Shadow.Sunken)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(0)
        outer.addWidget(scroll, 1)
        outer.addWidget(line)
        outer.addWidget(footer)

    def _layer_table(self) -> tuple[QTableWidget, QGroupBox]:
        table = QTableWidget(0, 3)
        table.setHorizontalHeaderLabels(["Layer", "Output", "Params"])
        table.verticalHeader().hide()
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        table.setAlternatingRowColors(True)
        table.setShowGrid(False)
        table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        hh = table.horizontalHeader()
        hh.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        hh.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        hh.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)
        table.setAccessibleName("Layer summary")
        table.setToolTip(TIPS["table"])
        table.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        group = QGroupBox("Layers summary")
        QVBoxLayout(group).addWidget(table)
        return table, group

    def _timer(self, slot) -> QTimer:
        timer = QTimer(self)
        timer.setSingleShot(True)
        timer.setInterval(DEBOUNCE_MS)
        timer.timeout.connect(slot)
        return timer

    def widget(self, name: str) -> QWidget:
        """The widget of a `ModelConfig` field (e.g. "latent")."""
        return self.form.widget(name)

    # ---- public API ---------------------------------------------------------------------
    def config(self) -> ModelConfig:
        """The model the widgets describe (a new config; the shown one is never changed)."""
        return self.form.apply(self._base)

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
        return self.form.errors() + self.config().problems()

    # ---- widgets <-> config ---------------------------------------------------------------
    def _show(self, cfg: ModelConfig) -> None:
        self._base = cfg
        self.form.set_values(cfg)

    @Slot()
    def _fill_halving(self) -> None:
        cfg = self.config()
        first = (cfg.hidden or cfg.hidden_sizes or [256])[0]
        self.widget("hidden").setText(fmt_list(halving(int(first), cfg.latent, cfg.arch)))

    @Slot()
    def _edited(self, *_) -> None:
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
        """What the field table cannot say: the default layer sizes, the loss warning, the input and
        completeness line, the problems. (Rows and their availability follow the form's rules.)"""
        cfg = self.config()
        shape = tuple(cfg.input_shape)
        default = default_hidden(cfg.arch, shape, max(1, cfg.latent)) if len(shape) == 3 else []
        hidden, spec = self.widget("hidden"), self.form.fields["hidden"].spec
        hidden.setPlaceholderText(f"default: {fmt_list(default)}" if default else "default")
        unit = {"dense": "units", "conv": "channels", "recurrent": "units"}.get(cfg.arch, "sizes")
        hidden.setToolTip(spec.tip + f"\n\nFor this architecture the numbers are {unit}.")
        try:  # the conv model's default dense layers follow its conv layers and the image size
            dense = default_dense(cfg.arch, shape, cfg.hidden_sizes) if len(shape) == 3 else []
        except (TypeError, ValueError):  # sizes typed but not valid yet
            dense = []
        self.widget("dense_layers").setPlaceholderText(f"default: {fmt_list(dense) if dense else 'none'}")
        self.loss_warning.setVisible(cfg.loss == "bce" and cfg.output != "sigmoid")
        # input + completeness badge
        c, h, w = (shape + (0, 0, 0))[:3]
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
        warnings = [] if problems else cfg.warnings()
        self.warnings_label.setText("\n".join(f"⚠ {w[0].upper() + w[1:]}" for w in warnings))
        self.warnings_label.setVisible(bool(warnings))
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
        self.param_count = None  # pending: the count shown must belong to the config now in the panel
        self.params_label.setText("… parameters")
        _IN_FLIGHT[:] = [t for t in _IN_FLIGHT if not t.finished_event.is_set()]
        task = Task(_summarize_safe, gen, cfg)
        task.signals.done.connect(self._apply_summary)
        _IN_FLIGHT.append(task)  # alive until it has run, even if this panel is deleted first
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
            self.params_label.setToolTip(TIPS["params"] + "\n\n" + self.memory_tip())
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
