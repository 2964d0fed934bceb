"""The wrapping layout of the latent map's class legend (aestudio/ui/flow.py)."""
from __future__ import annotations

from PySide6.QtWidgets import QPushButton, QVBoxLayout, QWidget

from aestudio.ui.flow import FlowLayout

NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def _legend(qtbot, width: int) -> tuple[QWidget, QWidget, list[QPushButton]]:
    outer = QWidget()
    chips = QWidget(outer)
    flow = FlowLayout(chips, h_spacing=2, v_spacing=0)
    buttons = [QPushButton(name, chips) for name in NAMES]
    for b in buttons:
        flow.addWidget(b)
    QVBoxLayout(outer).addWidget(chips)
    qtbot.addWidget(outer)
    outer.resize(width, 300)
    outer.show()
    qtbot.waitExposed(outer)
    return outer, chips, buttons  # the caller keeps `outer`: qtbot holds widgets weakly


def test_every_name_keeps_its_full_width_and_the_rows_wrap_inside_the_panel(qtbot):
    _outer, chips, buttons = _legend(qtbot, 360)
    rows = sorted({b.y() for b in buttons})
    assert len(rows) >= 2  # ten long names do not fit on one 360 px row
    for b in buttons:
        assert b.width() == b.sizeHint().width()  # never squeezed, so never elided
        assert b.x() >= 0 and b.x() + b.width() <= chips.width()  # and never past the edge
    # reading order: left to right, then down; no two buttons overlap
    order = sorted(buttons, key=lambda b: (b.y(), b.x()))
    assert [b.text() for b in order] == NAMES
    for a, b in zip(order, order[1:]):
        assert b.y() > a.y() or b.x() >= a.x() + a.width()
    # the widget asks for exactly the height its rows need
    assert chips.height() >= max(b.y() + b.height() for b in buttons)


def test_a_wide_panel_uses_fewer_rows(qtbot):
    keep1, _, narrow = _legend(qtbot, 300)
    keep2, _, wide = _legend(qtbot, 1400)
    assert len({b.y() for b in wide}) == 1 < len({b.y() for b in narrow})
