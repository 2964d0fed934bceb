"""One window holding the six exploration labs as tabs, opened from the main window's Labs menu."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QFrame, QMainWindow, QScrollArea, QTabWidget, QWidget


from .labs import LABS
from .labs.base import LabPanel
from .state import StudioState


class LabsWindow(QMainWindow):
    def __init__(self, state: StudioState, parent: QWidget | None = None):
        super().__init__(parent, Qt.WindowType.Window)
        self.setWindowTitle("Labs — aestudio")  # ends with the display name: Qt adds nothing
        self.setAccessibleName("Labs")
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.labs: dict[str, LabPanel] = {}
        for cls, description in LABS:
            lab = cls(state)
            self.labs[cls.title] = lab
            i = self.tabs.addTab(lab, cls.title)
            self.tabs.setTabToolTip(i, description)
        # the tabs sit in a scroll area, so the window can be as small as the screen it opens on
        self.scroll = QScrollArea(self)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setWidget(self.tabs)
        self.setCentralWidget(self.scroll)
        self.resize(1150, 800)
        self._fitted = False

    def show_lab(self, title: str) -> LabPanel:
        lab = self.labs[title]
        self.tabs.setCurrentWidget(lab)
        if not self._fitted:
            self.fit_screen()
        self.show()
        self.raise_()
        self.activateWindow()
        return lab

    def fit_screen(self) -> None:
        """At most the available area of the screen it opens on (its parent's), and inside it."""
        parent = self.parentWidget()
        screen = (parent.screen() if parent is not None else None) or self.screen() or QGuiApplication.primaryScreen()
        if screen is None:
            return
        self._fitted = True
        avail = screen.availableGeometry()
        frame_w = max(0, self.frameGeometry().width() - self.width())
        frame_h = max(0, self.frameGeometry().height() - self.height())
        w = max(200, min(self.width(), avail.width() - frame_w))
        h = max(200, min(self.height(), avail.height() - frame_h))
        self.setMinimumSize(min(self.minimumWidth(), w), min(self.minimumHeight(), h))
        self.resize(w, h)
        x = min(max(avail.left(), self.x()), avail.right() - w - frame_w)
        y = min(max(avail.top(), self.y()), avail.bottom() - h - frame_h)
        self.move(max(avail.left(), x), max(avail.top(), y))

    def shutdown(self, timeout_s: float = 2.0) -> None:
        """Let running lab computations finish (they are short or stop on their Control)."""
        for lab in self.labs.values():
            lab.wait_until_idle(timeout_s)
