"""The Model builder's Presets menu: named, explained starting points (core/presets.py).

Choosing one replaces the model configuration (kept at the current data set's image shape) and
sets the training noise the preset needs, through the studio state's setters; the status bar
says what the preset is for.
"""
from __future__ import annotations

from dataclasses import replace
from functools import partial

from PySide6.QtWidgets import QMenu, QToolButton, QWidget

from ..core.presets import PRESETS, Preset, get_preset
from .state import StudioState


class PresetsButton(QToolButton):
    """A "Presets" button whose menu holds one action per preset (tooltip: its explanation)."""

    def __init__(self, state: StudioState, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self.setText("Presets")
        self.setAccessibleName("Presets")
        self.setToolTip("Start from a named model: each preset sets up the builder (and the training noise) "
                        "for one idea from the course.")
        self.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self)
        menu.setToolTipsVisible(True)
        self.actions_by_key = {}
        for p in PRESETS:
            a = menu.addAction(p.title)
            a.setToolTip(p.explanation)
            a.setStatusTip(p.explanation)
            a.triggered.connect(partial(self.apply, p.key))
            self.actions_by_key[p.key] = a
        self.setMenu(menu)

    def apply(self, key: str, *_args) -> Preset:
        """Put preset `key` into the builder and its noise into the training settings."""
        p = get_preset(key)
        shape = tuple(self.state.dataset.shape) if self.state.dataset is not None else tuple(self.state.model_config.input_shape)
        model_config, train_config = p.apply(shape, self.state.train_config)
        self.state.set_model_config(model_config)
        if train_config.noise != self.state.train_config.noise:
            self.state.set_train_config(replace(self.state.train_config, noise=train_config.noise))
        self.state.statusMessage.emit(f"Preset: {p.title}. {p.explanation}")
        return p


__all__ = ["PresetsButton"]
