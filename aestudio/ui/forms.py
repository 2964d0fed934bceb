"""Forms built from a config dataclass's field table (`aestudio.core.fields`).

`ConfigForm(cls)` makes one widget per field marked with `ui(...)`: its label, accessible name,
tooltip and range come from the metadata. Fields of one `group` share a titled box; a field with
`beside=` shares the row of another; `advanced` fields sit behind a "More settings" switch. The form
reads and writes plain values (`values()`, `set_values()`), announces edits with `changed`, and
shows, hides, enables and disables rows by the fields' `visible_when` / `enabled_when` rules,
looked up in its own values and in a `context` (e.g. the model config for the Training panel).

A new field with `ui(...)` metadata therefore appears in the studio with no UI code. Widgets that a
plain kind cannot express (the noise setting, the device list) are registered with
`register_widget(kind, factory)`.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable, Mapping

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLayout,
    QLineEdit,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..core.fields import UiField, UiSpec, rule_holds, ui_fields
from . import style

INT_MAX = 2**31 - 1  # a QSpinBox holds 32-bit ints


# ---- one field ---------------------------------------------------------------------------------
class FieldWidget(QObject):
    """Adapter between one config value and its widget(s).

    `widget` is the field itself (named, with the tooltip); `row` is what the form lays out (the
    widget, or a small container around it). `edited` fires on every user edit."""

    edited = Signal()

    def __init__(self, spec: UiSpec, widget: QWidget, row: QWidget | QLayout | None = None):
        super().__init__(widget)
        self.spec = spec
        self.widget = widget
        self.row = row if row is not None else widget
        widget.setToolTip(spec.tip)
        widget.setAccessibleName(spec.name)

    def get(self) -> Any:  # pragma: no cover - every kind overrides it
        raise NotImplementedError

    def set(self, value: Any) -> None:  # pragma: no cover
        raise NotImplementedError

    def error(self) -> str:
        """Why the text typed in the field is not used ("" when it is)."""
        return ""

    def keep_enabled(self) -> bool:
        """True when the field must stay usable even where its rule disables it (a ticked box, so
        the user can clear a setting that no longer applies)."""
        return False

    def set_tip(self, text: str) -> None:
        self.widget.setToolTip(text)

    def row_shown(self) -> None:
        """Called after the form showed the row (which shows every widget in it): hide again what
        should stay hidden."""


class SpinField(FieldWidget):
    def __init__(self, spec: UiSpec):
        w = style.NoWheelSpinBox()
        lo = int(spec.lo) if spec.lo is not None else 0
        hi = int(min(spec.hi, INT_MAX)) if spec.hi is not None else INT_MAX
        w.setRange(lo, hi)
        if spec.step:
            w.setSingleStep(int(spec.step))
        w.setKeyboardTracking(False)
        w.setGroupSeparatorShown(False)
        w.setPrefix(spec.prefix)
        w.setSuffix(spec.suffix)
        super().__init__(spec, w)
        w.valueChanged.connect(self.edited)

    def get(self) -> int:
        return int(self.widget.value())

    def set(self, value: Any) -> None:
        self.widget.setValue(int(value))


class FloatField(FieldWidget):
    def __init__(self, spec: UiSpec, log: bool):
        lo = float(spec.lo) if spec.lo is not None else 0.0
        hi = float(spec.hi) if spec.hi is not None else 1e6
        step = float(spec.step) if spec.step else (0.1 if not log else 1.0)
        w = _AffixFloatSpin(lo, hi, step, log=log, decimals=spec.decimals)
        w.setPrefix(spec.prefix)
        w.setSuffix(spec.suffix)
        super().__init__(spec, w)
        w.valueChanged.connect(self.edited)

    def get(self) -> float:
        return self.widget.exact()

    def set(self, value: Any) -> None:
        self.widget.set_exact(float(value))


class _AffixFloatSpin(style.FloatSpin):
    """A FloatSpin that may show a prefix or suffix (" nats") and a fixed number of decimals."""

    def __init__(self, lo: float, hi: float, step: float, log: bool, decimals: int | None):
        self._fixed = decimals  # before the base class asks for text
        super().__init__(lo, hi, step, log=log)

    def _bare(self, text: str) -> str:
        t = text
        if self.prefix() and t.startswith(self.prefix()):
            t = t[len(self.prefix()):]
        if self.suffix() and t.endswith(self.suffix()):
            t = t[:-len(self.suffix())]
        return t.strip()

    def textFromValue(self, v: float) -> str:  # noqa: N802 (Qt)
        return super().textFromValue(v) if self._fixed is None else f"{v:.{self._fixed}f}"

    def valueFromText(self, text: str) -> float:  # noqa: N802 (Qt)
        return super().valueFromText(self._bare(text))

    def validate(self, text: str, pos: int):
        state = super().validate(self._bare(text), pos)[0]
        return state, text, pos


class ComboField(FieldWidget):
    def __init__(self, spec: UiSpec, choices=None):
        w = style.NoWheelComboBox()
        for value, label in (choices if choices is not None else spec.choices or ()):
            w.addItem(label, value)
        w.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        w.setMinimumContentsLength(10)
        super().__init__(spec, w)
        w.currentIndexChanged.connect(self.edited)

    def get(self) -> Any:
        return self.widget.currentData()

    def set(self, value: Any) -> None:
        """Select `value`; an unknown value is added (marked) so nothing is lost on the way back."""
        i = self.widget.findData(value)
        if i < 0:
            self.widget.addItem(f"{value} (unknown)", value)
            i = self.widget.count() - 1
        self.widget.setCurrentIndex(i)


class CheckField(FieldWidget):
    def __init__(self, spec: UiSpec):
        w = QCheckBox(spec.label)
        super().__init__(spec, w)
        w.toggled.connect(self.edited)

    def get(self) -> bool:
        return self.widget.isChecked()

    def set(self, value: Any) -> None:
        self.widget.setChecked(bool(value))

    def keep_enabled(self) -> bool:
        return self.widget.isChecked()


class TextField(FieldWidget):
    def __init__(self, spec: UiSpec):
        w = QLineEdit()
        w.setPlaceholderText(spec.placeholder)
        super().__init__(spec, w)
        w.textChanged.connect(self.edited)

    def get(self) -> str:
        return self.widget.text()

    def set(self, value: Any) -> None:
        self.widget.setText("" if value is None else str(value))


def parse_int_list(text: str) -> list[int] | None:
    """"512, 256" -> [512, 256]; "" -> None (the default sizes); "none" -> [] (no hidden layer);
    raises ValueError for anything else."""
    if text.strip().lower() == "none":
        return []
    parts = [p for p in re.split(r"[,\s;]+", text.strip()) if p]
    if not parts:
        return None
    return [int(p) for p in parts]


def parse_name_list(text: str) -> list[str] | None:
    """"ReLU, leaky relu" -> ["relu", "leaky_relu"]; "" -> None."""
    parts = [p.strip().lower().replace(" ", "_").replace("-", "_") for p in re.split(r"[,;]+", text) if p.strip()]
    return parts or None


def fmt_list(values) -> str:
    return ", ".join(str(v) for v in values)


class IntListField(FieldWidget):
    """Whole numbers separated by commas. Text that does not parse shows an error under the field
    and the last valid list stays in use."""

    def __init__(self, spec: UiSpec):
        edit = QLineEdit()
        edit.setPlaceholderText(spec.placeholder)
        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet(style.problems_css())
        self.error_label.setAccessibleName(f"{spec.name} error")
        self.error_label.hide()
        self.line = QHBoxLayout()
        self.line.setSpacing(4)
        self.line.addWidget(edit, 1)
        box = QVBoxLayout()
        box.setSpacing(2)
        box.addLayout(self.line)
        box.addWidget(self.error_label)
        super().__init__(spec, edit, box)
        self._value: list[int] | None = None
        self._error = ""
        self._loading = False
        edit.textChanged.connect(self._typed)

    def _typed(self, text: str) -> None:
        if self._loading:
            return
        try:
            self._value = parse_int_list(text)
            self._error = ""
        except ValueError:
            self._error = (f"{self.spec.name.lower()} must be whole numbers separated by commas, e.g. \"512, 256\" "
                           "(still using the last valid sizes)")
        self._show_error()
        self.edited.emit()

    def _show_error(self) -> None:
        self.error_label.setText(self._error)
        self.error_label.setVisible(bool(self._error))

    def get(self) -> list[int] | None:
        return None if self._value is None else list(self._value)

    def set(self, value: Any) -> None:
        self._value = None if value is None else [int(v) for v in value]
        self._error = ""
        self._loading = True
        try:
            self.widget.setText("" if value is None else ("none" if not self._value else fmt_list(self._value)))
        finally:
            self._loading = False
        self._show_error()

    def error(self) -> str:
        return self._error

    def row_shown(self) -> None:
        self._show_error()


class NameListField(TextField):
    def get(self) -> list[str] | None:
        return parse_name_list(self.widget.text())

    def set(self, value: Any) -> None:
        self.widget.setText("" if value is None else fmt_list(value))


# ---- kinds the UI adds -------------------------------------------------------------------------
_FACTORIES: dict[str, Callable[[UiSpec], FieldWidget]] = {
    "spin": SpinField,
    "float": lambda spec: FloatField(spec, log=False),
    "log": lambda spec: FloatField(spec, log=True),
    "combo": ComboField,
    "check": CheckField,
    "text": TextField,
    "int_list": IntListField,
    "name_list": NameListField,
}


def register_widget(kind: str, factory: Callable[[UiSpec], FieldWidget]) -> None:
    """Make `widget=kind` in field metadata build its widget with `factory(spec)`."""
    _FACTORIES[kind] = factory


def make_field(field: UiField) -> FieldWidget:
    factory = _FACTORIES.get(field.widget)
    if factory is None:
        raise ValueError(f"field {field.name!r}: no widget of kind {field.widget!r} (known: {', '.join(_FACTORIES)})")
    return factory(field.spec)


class NoiseField(FieldWidget):
    """A training noise setting ("none", "gaussian:0.3", ...): a kind and a level side by side."""

    def __init__(self, spec: UiSpec):
        from ..core.noise import NoiseError, parse_noise

        self._parse, self._error_type = parse_noise, NoiseError
        kind = style.NoWheelComboBox()
        for value, label in spec.choices or (("none", "None"),):
            kind.addItem(label, value)
        self.level = style.FloatSpin(0.0, 10.0, 0.05)
        self.level.setAccessibleName(f"{spec.name} level")
        self.level.setToolTip("Gaussian: standard deviation of the added noise (pixels are in [0, 1]). Salt and "
                              "pepper / masking: fraction of pixels set to black or white / to zero.")
        self.level.set_exact(0.3)
        row = QHBoxLayout()
        row.setSpacing(4)
        row.addWidget(kind, 3)
        row.addWidget(self.level, 2)
        super().__init__(spec, kind, row)
        kind.currentIndexChanged.connect(self._kind_changed)
        self.level.valueChanged.connect(self.edited)
        self._kind_changed()

    def _kind_changed(self, *_) -> None:
        self.level.setEnabled(self.widget.currentData() != "none")
        self.edited.emit()

    def get(self) -> str:
        kind = self.widget.currentData()
        if kind == "none":
            return "none"
        if isinstance(kind, str) and kind.startswith("raw:"):
            return kind[4:]
        return f"{kind}:{self.level.exact()!r}"  # repr: the shortest text that reads back as the same float

    def set(self, value: Any) -> None:
        try:
            n = self._parse(value)
            self.widget.setCurrentIndex(max(self.widget.findData(n.kind), 0))
            if n.kind != "none":
                self.level.set_exact(n.level)
        except self._error_type:  # keep it as typed; the config's problems() report it
            self.widget.addItem(f"{value} (invalid)", f"raw:{value}")
            self.widget.setCurrentIndex(self.widget.count() - 1)
        self.level.setEnabled(self.widget.currentData() != "none")


class DeviceField(ComboField):
    """The devices this machine has; one it lacks (a run from another computer) shows as the first
    choice (auto), so the config the form gives back can train here."""

    def __init__(self, spec: UiSpec):
        from ..core.training import available_devices

        present = {"auto", *available_devices()}
        known = dict(spec.choices or ())
        names = [v for v, _ in spec.choices or ()] + [d for d in available_devices() if d not in known]
        super().__init__(spec, [(v, known.get(v, v)) for v in names if v in present])

    def set(self, value: Any) -> None:
        self.widget.setCurrentIndex(max(self.widget.findData(value), 0))


register_widget("noise", NoiseField)
register_widget("device", DeviceField)


# ---- the form -----------------------------------------------------------------------------------
class ConfigForm(QWidget):
    """Every `ui(...)` field of a config dataclass as a labelled widget.

    `only` / `exclude` pick fields by name. Groups become titled boxes (in the order of their
    first field); ungrouped fields form a plain form above them."""

    changed = Signal(str)  # the field name, after a user edit

    def __init__(self, cls: type, parent: QWidget | None = None, *, only=None, exclude=(), title: str = "",
                 into: QFormLayout | None = None, label_suffix: str = "", compact: bool = False):
        """`into`: put every row into this existing form layout (e.g. a lab's controls) instead of
        this widget, which then stays hidden; `label_suffix` is added to each row label (":");
        `compact`: fields keep their natural width, left-aligned, instead of filling the row."""
        super().__init__(parent)
        self._compact = compact
        self.cls = cls
        self._into = into
        self._label_suffix = label_suffix
        self.table = [f for f in ui_fields(cls) if (only is None or f.name in only) and f.name not in exclude]
        self.fields: dict[str, FieldWidget] = {}
        self._forms: dict[str, QFormLayout] = {}  # field name -> the form layout holding its row
        self._row_item: dict[str, QWidget | QLayout] = {}  # field name -> its row's field item
        self._pairs: dict[str, QHBoxLayout] = {}  # host field -> the row that `beside` fields join
        self._inline: dict[str, QLabel] = {}  # a `beside` field's inline label
        self._group_forms: dict[str, QFormLayout] = {}
        self._boxes: list[QGroupBox] = []
        self._context: dict[str, Any] = {}
        self._shown: dict[str, bool] = {}
        self._loading = False
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(8)
        hosts = {f.spec.beside for f in self.table if f.spec.beside}
        advanced = [f for f in self.table if f.spec.advanced]
        for f in self.table:
            if not f.spec.advanced:
                self._add(f, f.spec.group or "", f.name in hosts)
        self.more: QToolButton | None = None
        if advanced:
            self.more = QToolButton()
            self.more.setText("More settings")
            self.more.setCheckable(True)
            self.more.setAutoRaise(True)
            self.more.setAccessibleName(f"{title} more settings".strip().capitalize())
            self.more.setToolTip("Show the settings that rarely need changing.")
            self.more.toggled.connect(self.refresh)
            if into is not None:
                into.addRow("", self.more)
            else:
                self._layout.addWidget(self.more)
            for f in advanced:
                self._add(f, (f.spec.group or "") + "\x00advanced", f.name in hosts)
        if compact:
            for pair in self._pairs.values():
                pair.addStretch(1)
        if into is not None:
            self.hide()
        self.set_values({f.name: f.default for f in self.table})  # starts at the fields' defaults

    # ---- building -------------------------------------------------------------------------
    def _form_for(self, group: str) -> QFormLayout:
        if self._into is not None:
            return self._into
        if group not in self._group_forms:
            title = group.split("\x00")[0]
            if title:
                box = QGroupBox(title.replace("&", "&&"))
                form = style.tune_form(QFormLayout(box))
                form.setContentsMargins(4, 6, 4, 4)
                self._boxes.append(box)
                self._layout.addWidget(box)
            else:
                form = style.tune_form(QFormLayout())
                self._layout.addLayout(form)
            self._group_forms[group] = form
        return self._group_forms[group]

    def _add(self, f: UiField, group: str, host: bool) -> None:
        fw = make_field(f)
        self.fields[f.name] = fw
        fw.edited.connect(lambda name=f.name: self._edited(name))
        if f.spec.beside in self._pairs:  # join the row of an earlier field, with an inline label
            pair = self._pairs[f.spec.beside]
            inline = QLabel(f.spec.label)
            inline.setToolTip(f.spec.tip)
            inline.setBuddy(fw.widget)
            if self._compact:
                inline.setContentsMargins(8, 0, 0, 0)
            pair.addWidget(inline)
            _add_to(pair, fw.row, 0 if self._compact else 1)
            self._inline[f.name] = inline
            self._forms[f.name] = self._forms[f.spec.beside]
            return
        form = self._form_for(group)
        item = fw.row
        if host or self._compact:
            item = QHBoxLayout()
            item.setSpacing(6)
            _add_to(item, fw.row, 0 if self._compact else 1)
            self._pairs[f.name] = item
        self._forms[f.name] = form
        self._row_item[f.name] = item
        if isinstance(fw, CheckField):
            form.addRow("", item)
        else:
            label = QLabel(f.spec.label.replace("&", "&&") + self._label_suffix)
            label.setToolTip(f.spec.tip)
            label.setBuddy(fw.widget)
            form.addRow(label, item)

    @staticmethod
    def align_labels(root: QWidget) -> None:
        """One label column width for every form under `root`, so fields line up across groups."""
        labels = []
        for form in root.findChildren(QFormLayout):
            for i in range(form.rowCount()):
                item = form.itemAt(i, QFormLayout.ItemRole.LabelRole)
                if item is not None and item.widget() is not None:
                    labels.append(item.widget())
        width = max((lab.sizeHint().width() for lab in labels), default=0)
        for lab in labels:
            lab.setMinimumWidth(width)

    # ---- extras from the panel ---------------------------------------------------------------
    def widget(self, name: str) -> QWidget:
        """The named field's widget (the one with its accessible name)."""
        return self.fields[name].widget

    def add_beside(self, name: str, widget: QWidget) -> None:
        """Put `widget` (e.g. a helper button) right of the named list field's text."""
        line = getattr(self.fields[name], "line", None)
        if line is None:
            raise ValueError(f"{name}: only list fields take a widget beside them")
        line.addWidget(widget)

    def add_row_after(self, name: str, widget: QWidget, label: str = "") -> None:
        """Insert a row (e.g. a warning) under the named field's row."""
        form = self._forms[name]
        item = self._row_item[name]
        row = next(i for i in range(form.rowCount())
                   if (it := form.itemAt(i, QFormLayout.ItemRole.FieldRole)) is not None
                   and (it.widget() is item or it.layout() is item))
        form.insertRow(row + 1, label, widget)

    # ---- values ------------------------------------------------------------------------------
    def values(self) -> dict[str, Any]:
        return {name: fw.get() for name, fw in self.fields.items()}

    def set_values(self, values: Mapping[str, Any] | Any) -> None:
        """Show these values (a mapping, or a config instance); fields it lacks keep theirs. No
        `changed` signal is emitted."""
        values = _as_mapping(values)
        self._loading = True
        try:
            for name, fw in self.fields.items():
                if name in values:
                    fw.set(values[name])
        finally:
            self._loading = False
        self.refresh()

    def apply(self, base: Any) -> Any:
        """A new config: `base` with the form's values (`base` itself is never changed)."""
        return dataclasses.replace(base, **self.values())

    def errors(self) -> list[str]:
        """Text typed into fields that could not be read (the last valid value stays in use)."""
        return [e for fw in self.fields.values() if (e := fw.error())]

    def set_context(self, context: Mapping[str, Any] | Any) -> None:
        """Values from outside the form that rules may name (a mapping or a config instance)."""
        self._context = dict(_as_mapping(context))
        self.refresh()

    def _edited(self, name: str) -> None:
        if self._loading:
            return
        self.refresh()
        self.changed.emit(name)

    # ---- rules -------------------------------------------------------------------------------
    def is_shown(self, name: str, values: Mapping[str, Any] | None = None) -> bool:
        """Whether the named field's rule (and the More settings switch) lets it show."""
        spec = self.fields[name].spec
        if spec.advanced and not (self.more is not None and self.more.isChecked()):
            return False
        return rule_holds(spec.visible_when, values if values is not None else {**self._context, **self.values()})

    def refresh(self, *_) -> None:
        """Apply every field's visibility and availability rule to the widgets."""
        values = {**self._context, **self.values()}
        shown_forms: set[int] = set()
        for name, fw in self.fields.items():
            spec = fw.spec
            show = self.is_shown(name, values)
            if self._shown.get(name) != show:
                self._shown[name] = show
                if name in self._inline:
                    self._inline[name].setVisible(show)
                    _set_visible(fw.row, show)
                else:
                    self._forms[name].setRowVisible(self._row_item[name], show)
                if show:
                    fw.row_shown()
            if show:
                shown_forms.add(id(self._forms[name]))
            if spec.enabled_when is not None:
                ok = rule_holds(spec.enabled_when, values)
                fw.widget.setEnabled(ok or fw.keep_enabled())
                fw.set_tip(spec.tip if ok or not spec.unavailable else f"{spec.tip}\n\n{spec.unavailable}")
        for box in self._boxes:  # a group with nothing to show disappears
            box.setVisible(id(box.layout()) in shown_forms)


def _as_mapping(values: Mapping[str, Any] | Any) -> Mapping[str, Any]:
    if dataclasses.is_dataclass(values) and not isinstance(values, type):
        return {f.name: getattr(values, f.name) for f in dataclasses.fields(values)}
    return values


def _add_to(layout: QHBoxLayout, item: QWidget | QLayout, stretch: int = 0) -> None:
    if isinstance(item, QLayout):
        layout.addLayout(item, stretch)
    else:
        layout.addWidget(item, stretch)


def _set_visible(item: QWidget | QLayout, show: bool) -> None:
    if isinstance(item, QWidget):
        item.setVisible(show)
        return
    for i in range(item.count()):
        sub = item.itemAt(i)
        if sub.widget() is not None:
            sub.widget().setVisible(show)
        elif sub.layout() is not None:
            _set_visible(sub.layout(), show)


__all__ = ["ConfigForm", "FieldWidget", "fmt_list", "make_field", "parse_int_list", "parse_name_list", "register_widget"]
