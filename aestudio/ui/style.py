"""Theme helpers: spacing, colours and small stylesheet snippets.

The studio follows the system palette (light or dark); nothing here forces colours on the
whole application. The snippets only tint a few elements (badges, warnings, the message bar)
with colours picked to read well on both light and dark backgrounds.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QIcon, QPalette
from PySide6.QtWidgets import QApplication, QFormLayout, QLabel, QLayout, QWidget

SPACING = 6  # between widgets in a layout
MARGIN = 8  # around a panel's content
FORM_H_SPACING = 10
FORM_V_SPACING = 5

# Accent colours that stay legible on light and dark windows.
OK = "#2e9d57"
WARN = "#c98a00"
ERROR = "#d64545"
INFO = "#3a7bd5"


def is_dark(palette: QPalette | None = None) -> bool:
    if palette is None:
        app = QApplication.instance()
        palette = app.palette() if app is not None else QPalette()
    return palette.color(QPalette.ColorRole.Window).lightness() < 128


def error_color() -> str:
    return "#ff6b6b" if is_dark() else "#c62828"


def muted_color(widget: QWidget | None = None) -> str:
    palette = widget.palette() if widget is not None else QApplication.palette()
    c = palette.color(QPalette.ColorRole.WindowText)
    bg = palette.color(QPalette.ColorRole.Window)
    mixed = QColor((c.red() * 3 + bg.red() * 2) // 5, (c.green() * 3 + bg.green() * 2) // 5,
                   (c.blue() * 3 + bg.blue() * 2) // 5)
    return mixed.name()


def text_color(widget: QWidget | None = None) -> QColor:
    palette = widget.palette() if widget is not None else QApplication.palette()
    return palette.color(QPalette.ColorRole.WindowText)


def badge_css(color: str) -> str:
    """A rounded pill: tinted background, coloured border and text."""
    c = QColor(color)
    bg = f"rgba({c.red()}, {c.green()}, {c.blue()}, 40)"
    return (f"QLabel {{ color: {color}; background: {bg}; border: 1px solid {color};"
            f" border-radius: 9px; padding: 1px 8px; font-weight: 600; }}")


def banner_css(color: str) -> str:
    c = QColor(color)
    bg = f"rgba({c.red()}, {c.green()}, {c.blue()}, 38)"
    return f"#MessageBar {{ background: {bg}; border: 1px solid {color}; border-radius: 4px; }}"


def problems_css() -> str:
    return f"QLabel {{ color: {error_color()}; }}"


def muted_css(widget: QWidget | None = None) -> str:
    return f"QLabel {{ color: {muted_color(widget)}; }}"


def heading(text: str) -> QLabel:
    label = QLabel(text)
    font = label.font()
    font.setBold(True)
    label.setFont(font)
    return label


def tune_form(form: QFormLayout) -> QFormLayout:
    form.setContentsMargins(0, 0, 0, 0)
    form.setHorizontalSpacing(FORM_H_SPACING)
    form.setVerticalSpacing(FORM_V_SPACING)
    form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
    form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    return form


def tune_layout(layout: QLayout, margin: int = MARGIN, spacing: int = SPACING) -> QLayout:
    layout.setContentsMargins(margin, margin, margin, margin)
    layout.setSpacing(spacing)
    return layout


def icon(name: str, widget: QWidget | None = None, color: str | None = None) -> QIcon:
    """A qtawesome icon coloured like the text (so it follows light/dark); empty if unavailable."""
    try:
        import qtawesome as qta

        col = color or text_color(widget).name()
        return qta.icon(name, color=col, color_disabled=muted_color(widget))
    except Exception:  # a missing icon font must never break the UI
        return QIcon()


def app_icon_path() -> Path | None:
    try:
        p = resources.files("aestudio") / "resources" / "aestudio.svg"
        if p.is_file():
            return Path(str(p))
    except (ModuleNotFoundError, FileNotFoundError, TypeError):
        pass
    here = Path(__file__).resolve().parents[2] / "resources" / "aestudio.svg"
    return here if here.is_file() else None


def app_icon() -> QIcon:
    p = app_icon_path()
    return QIcon(str(p)) if p is not None else QIcon()


# Application-wide touches that respect the palette: only geometry, and palette() references.
APP_STYLESHEET = """
QDockWidget { titlebar-close-icon: none; }
QDockWidget::title {
    padding: 5px 8px;
    background: palette(midlight);
    border-bottom: 1px solid palette(mid);
}
QGroupBox {
    font-weight: 600;
    border: 1px solid palette(mid);
    border-radius: 5px;
    margin-top: 10px;
    padding: 8px 6px 6px 6px;
}
QGroupBox::title {
    subcontrol-origin: margin;
    subcontrol-position: top left;
    left: 8px;
    padding: 0 4px;
}
QToolBar#MessageBarHost { border: none; spacing: 0; padding: 2px 6px; }
"""


def apply_app_style(app: QApplication) -> None:
    """Add the studio's light-touch stylesheet on top of whatever is already set."""
    if "QDockWidget::title" not in (app.styleSheet() or ""):
        app.setStyleSheet((app.styleSheet() or "") + APP_STYLESHEET)


def fmt_duration(seconds: float) -> str:
    """mm:ss (or h:mm:ss for long runs)."""
    import math

    if not math.isfinite(seconds) or seconds < 0:
        return "--:--"
    s = round(seconds)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


# ---- a float spin box that keeps exact values ---------------------------------------------
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import QDoubleSpinBox

_LADDER = (1.0, 2.0, 5.0)


class FloatSpin(QDoubleSpinBox):
    """A QDoubleSpinBox for hyper-parameters.

    * accepts scientific notation ("1e-3") and shows compact text ("0.001", "1e-05");
    * remembers the exact float it was given (`exact()`), so config -> widget -> config is lossless;
    * `log=True` steps along 1-2-5 per decade (learning rates, penalty weights).
    """

    def __init__(self, minimum: float = 0.0, maximum: float = 1e6, step: float = 0.1, log: bool = False,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.setDecimals(12)
        self.setRange(minimum, maximum)
        self.setSingleStep(step)
        self.setKeyboardTracking(False)
        self._log = log
        self._exact = self.value()
        self.valueChanged.connect(self._track)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # the wheel changes it only once focused

    def wheelEvent(self, event) -> None:  # noqa: N802 (Qt)
        if not wheel_unfocused(self, event):
            super().wheelEvent(event)

    def _track(self, v: float) -> None:
        self._exact = float(v)

    def exact(self) -> float:
        return self._exact

    def set_exact(self, v: float) -> None:
        self.setValue(float(v))
        self._exact = float(v)

    def textFromValue(self, v: float) -> str:
        return f"{v:.10g}"

    def valueFromText(self, text: str) -> float:
        try:
            return float(text.strip().replace(",", "."))
        except ValueError:
            return self.value()

    def validate(self, text: str, pos: int):
        t = text.strip().replace(",", ".")
        if t in ("", "-", "+", ".", "-.", "+."):
            return QValidator.State.Intermediate, text, pos
        try:
            v = float(t)
        except ValueError:
            if t[-1:].lower() in ("e", "-", "+"):
                return QValidator.State.Intermediate, text, pos
            return QValidator.State.Invalid, text, pos
        if not (self.minimum() <= v <= self.maximum()):
            return QValidator.State.Intermediate, text, pos
        return QValidator.State.Acceptable, text, pos

    def fixup(self, text: str) -> str:
        return self.textFromValue(self.value())

    def stepBy(self, steps: int) -> None:
        if not self._log:
            super().stepBy(steps)
            return
        import math

        v = self.value()
        if v <= 0:
            v = max(self.minimum(), 1e-6) if steps > 0 else 0.0
            self.setValue(v)
            return
        exp = math.floor(math.log10(v) + 1e-9)
        mant = v / 10 ** exp
        idx = min(range(3), key=lambda i: abs(_LADDER[i] - mant))
        pos = exp * 3 + idx + steps
        e, i = divmod(pos, 3)
        self.setValue(max(self.minimum(), min(self.maximum(), float(f"{_LADDER[i] * 10.0 ** e:.6g}"))))


# ---- the mouse wheel on form fields ------------------------------------------------------------------------
from PySide6.QtWidgets import QAbstractScrollArea, QComboBox, QSpinBox  # noqa: E402


def wheel_unfocused(widget: QWidget, event) -> bool:
    """For a field's wheelEvent: a spin box or combo box without keyboard focus ignores the wheel, which
    scrolls whatever holds it (the Model builder's scroll area) instead of changing a value the pointer
    merely passed over. True when it was handled that way; click (or tab) into the field to wheel it."""
    if widget.hasFocus():
        return False
    area = widget.parentWidget()
    while area is not None and not isinstance(area, QAbstractScrollArea):
        area = area.parentWidget()
    if area is None:
        event.ignore()  # Qt hands an ignored wheel on to the parent widgets
        return True
    bar = area.verticalScrollBar() if event.angleDelta().y() != 0 else area.horizontalScrollBar()
    QApplication.sendEvent(bar, event)
    return True


class _FocusWheel:
    """Mixin: the widget takes the wheel only when it has focus (see `wheel_unfocused`)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

    def wheelEvent(self, event) -> None:  # noqa: N802 (Qt)
        if not wheel_unfocused(self, event):
            super().wheelEvent(event)


class NoWheelComboBox(_FocusWheel, QComboBox):
    """A combo box that takes the wheel only when it has focus."""


class NoWheelSpinBox(_FocusWheel, QSpinBox):
    """A spin box that takes the wheel only when it has focus."""


class WrappedLabel(QLabel):
    """A word-wrapped label whose minimum height is what its text needs at its current width.

    A dock sizes its panel from the layout's minimum, which counts a word-wrapped label as one line;
    when the text then wraps to three, the layout took the room from its neighbours and squeezed the
    Training panel's fields below their height (measured: its form 134 px of the 176 it needs under a
    three-line note). With the true minimum the dock grows instead, and a scroll area elsewhere gives.
    """

    def __init__(self, text: str = "", parent: QWidget | None = None):
        super().__init__(text, parent)
        self.setWordWrap(True)

    def setText(self, text: str) -> None:  # noqa: N802 (Qt's name)
        super().setText(text)
        self._fit()

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        need = self.heightForWidth(self.width()) if self.text() and self.width() > 0 else 0
        if need > 0 and need != self.minimumHeight():
            self.setMinimumHeight(need)
