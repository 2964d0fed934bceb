"""One window holding the six exploration labs as tabs, opened from the main window's Labs menu."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMainWindow, QTabWidget, QWidget

from .labs import LABS
from .labs.base import LabPanel
from .state import StudioState


class LabsWindow(QMainWindow):
    def __init__(self, state: StudioState, parent: QWidget | None = None):
        super().__init__(parent, Qt.WindowType.Window)
        self.setWindowTitle("aestudio — Labs")
        self.setAccessibleName("Labs")
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.labs: dict[str, LabPanel] = {}
        for cls, description in LABS:
            lab = cls(state)
            self.labs[cls.title] = lab
            i = self.tabs.addTab(lab, cls.title)
            self.tabs.setTabToolTip(i, description)
        self.setCentralWidget(self.tabs)
        self.resize(1150, 800)

    def show_lab(self, title: str) -> LabPanel:
        lab = self.labs[title]
        self.tabs.setCurrentWidget(lab)
        self.show()
        self.raise_()
        self.activateWindow()
        return lab

    def shutdown(self, timeout_s: float = 2.0) -> None:
        """Let running lab computations finish (they are short or stop on their Control)."""
        for lab in self.labs.values():
            lab.wait_until_idle(timeout_s)
