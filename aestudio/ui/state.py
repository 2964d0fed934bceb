"""The studio's shared state: one QObject that panels read and subscribe to.

Panels never hold references to each other. They change the state (`set_dataset`,
`set_model_config`, ...) and redraw on its signals. Training itself is run by the
`TrainingController` the state owns.
"""
from __future__ import annotations

from PySide6.QtCore import QObject, Signal, Slot

from ..core.checkpoint import Run
from ..core.config import ModelConfig, TrainConfig
from ..core.datasets import ImageSet
from ..workers.training import ModelSnapshot, TrainingController


class StudioState(QObject):
    datasetChanged = Signal(object)  # ImageSet
    modelConfigChanged = Signal(object)  # ModelConfig
    trainConfigChanged = Signal(object)  # TrainConfig
    snapshotChanged = Signal(object)  # ModelSnapshot | None: a trained model to decode with
    historyReset = Signal(object)  # list[dict]: epoch records to show (a loaded run's, or [] for a new run)
    decoded = Signal(object, str)  # image (C, H, W) float32 in [0, 1], where it came from ("latent map (x, y)")
    imageSelected = Signal(object)  # validation image index the user picked (image grid click)
    statusMessage = Signal(str)
    errorMessage = Signal(str)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.dataset: ImageSet | None = None
        self.data_spec: str | None = None
        self.model_config = ModelConfig()
        self.train_config = TrainConfig()
        self.snapshot: ModelSnapshot | None = None
        self.run_path: str | None = None
        self.training = TrainingController(self)
        self.training.snapshot.connect(self._on_snapshot)
        self.training.errored.connect(self.errorMessage)

    # ---- data ----
    def set_dataset(self, data: ImageSet, spec: str) -> None:
        self.dataset, self.data_spec = data, spec
        shape = tuple(data.shape)
        if tuple(self.model_config.input_shape) != shape:
            self.model_config.input_shape = shape
            self.modelConfigChanged.emit(self.model_config)
        self.set_snapshot(None)
        self.datasetChanged.emit(data)
        self.statusMessage.emit(data.summary())

    # ---- configs ----
    def set_model_config(self, config: ModelConfig) -> None:
        if self.dataset is not None:
            config.input_shape = tuple(self.dataset.shape)
        self.model_config = config
        self.modelConfigChanged.emit(config)

    def set_train_config(self, config: TrainConfig) -> None:
        self.train_config = config
        self.trainConfigChanged.emit(config)

    # ---- training ----
    def start_training(self) -> None:
        if self.dataset is None:
            self.errorMessage.emit("Load a data set first.")
            return
        problems = self.model_config.problems() + self.train_config.problems()
        if problems:
            self.errorMessage.emit("Cannot train: " + "; ".join(problems))
            return
        self.historyReset.emit([])
        self.run_path = None
        self.training.start(self.model_config, self.train_config, self.dataset)

    @Slot(object)
    def _on_snapshot(self, snapshot: ModelSnapshot) -> None:
        self.set_snapshot(snapshot)

    def set_snapshot(self, snapshot: ModelSnapshot | None) -> None:
        self.snapshot = snapshot
        self.snapshotChanged.emit(snapshot)

    def show_decoded(self, image, origin: str) -> None:
        """Publish a freshly decoded sample for the "Decoded sample" view."""
        self.decoded.emit(image, origin)

    # ---- runs ----
    def apply_run(self, run: Run, snapshot: ModelSnapshot) -> None:
        """Show a loaded run: its configs, its history and its model (data already set by the caller)."""
        self.model_config = run.model_config
        self.train_config = run.train_config
        self.run_path = str(run.path) if run.path else None
        self.modelConfigChanged.emit(self.model_config)
        self.trainConfigChanged.emit(self.train_config)
        self.historyReset.emit(list(run.history))
        self.set_snapshot(snapshot)
