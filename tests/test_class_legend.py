"""The latent map's class legend wraps (superqt's QFlowLayout) instead of eliding long class names."""
from __future__ import annotations

from PySide6.QtGui import QColor
from PySide6.QtWidgets import QVBoxLayout, QWidget

from aestudio.ui.latent_map import _ClassChips

NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def _legend(qtbot, width: int) -> tuple[QWidget, _ClassChips]:
    outer = QWidget()
    chips = _ClassChips(outer)
    chips.set_classes(NAMES, [QColor.fromHsv(36 * k, 200, 200) for k in range(len(NAMES))])
    QVBoxLayout(outer).addWidget(chips)
    qtbot.addWidget(outer)
    outer.resize(width, 300)
    outer.show()
    qtbot.waitExposed(outer)
    return outer, chips  # the caller keeps `outer`: qtbot holds widgets weakly


def test_every_class_name_shows_in_full_and_the_rows_wrap_inside_the_panel(qtbot):
    _outer, chips = _legend(qtbot, 360)
    buttons = chips.buttons
    assert len({b.y() for b in buttons}) >= 2  # ten long names do not fit on one 360 px row
    for b in buttons:
        assert b.width() >= b.sizeHint().width()  # never squeezed, so never elided
        assert b.x() >= 0 and b.x() + b.width() <= chips.width()  # and never past the edge
    # reading order: left to right, then down; no two chips overlap
    order = sorted(buttons, key=lambda b: (b.y(), b.x()))
    assert [b.text() for b in order] == NAMES
    for a, b in zip(order, order[1:]):
        assert b.y() > a.y() or b.x() >= a.x() + a.width()
    assert chips.height() >= max(b.y() + b.height() for b in buttons)  # room for every row


def test_a_wide_panel_uses_fewer_rows(qtbot):
    keep1, narrow = _legend(qtbot, 300)
    keep2, wide = _legend(qtbot, 1400)
    assert len({b.y() for b in wide.buttons}) == 1 < len({b.y() for b in narrow.buttons})
