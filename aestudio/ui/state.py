"""The studio's shared state: one QObject that panels read and subscribe to.

Panels never hold references to each other. They change the state (`set_dataset`,
`set_model_config`, ...) and redraw on its signals. Training itself is run by the
`TrainingController` the state owns.
"""
from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import QObject, Signal, Slot

from ..core.config import ModelConfig, TrainConfig
from ..core.datasets import ImageSet
from ..core.trained import TrainedModel, continue_problem, parent_record, settings_changes
from ..core.training import default_epochs
from ..workers.training import ModelSnapshot, TrainingController


class StudioState(QObject):
    datasetChanged = Signal(object)  # ImageSet
    modelConfigChanged = Signal(object)  # ModelConfig
    trainConfigChanged = Signal(object)  # TrainConfig
    snapshotChanged = Signal(object)  # ModelSnapshot | None: a trained model to decode with
    historyReset = Signal(object)  # list[dict]: epoch records to show (a loaded run's, or [] for a new run)
    decoded = Signal(object, str)  # image (C, H, W) float32 in [0, 1], where it came from ("latent map (x, y)")
    imageSelected = Signal(object)  # validation image index the user picked (image grid click)
    # a latent code (latent,) float32 a panel chose: who chose it ("map", "sliders") and how to say where it
    # came from. The map marks slider codes; the sliders take the map's clicked codes.
    codeChosen = Signal(object, str, str)
    statusMessage = Signal(str)
    errorMessage = Signal(str)

    continuedChanged = Signal(object)  # list[str] | None: the settings a continued run changed (a fork), or None

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.dataset: ImageSet | None = None
        self.data_spec: str | None = None
        self.model_config = ModelConfig()
        # The command line's settings (batch 32, Adam 2e-3); epochs follow the data set's size (an
        # optimizer-step budget, see core.training.default_epochs) until the user sets them.
        self.train_config = TrainConfig(batch_size=32, lr=2e-3)
        self.epochs_auto = True
        self.snapshot: ModelSnapshot | None = None
        self.run_path: str | None = None  # the run folder holding the current model (opened or saved), if any
        # a running or finished continuation: the settings it changed ([] = the same run continued), else None
        self.continued: list[str] | None = None
        self.training = TrainingController(self)
        self.training.snapshot.connect(self._on_snapshot)
        self.training.errored.connect(self.errorMessage)

    # ---- data ----
    def set_dataset(self, data: ImageSet, spec: str) -> None:
        self.dataset, self.data_spec = data, spec
        shape = tuple(data.shape)
        if tuple(self.model_config.input_shape) != shape:
            self.model_config = replace(self.model_config, input_shape=shape)
            self.modelConfigChanged.emit(self.model_config)
        self.set_snapshot(None)
        if self.epochs_auto:
            self.train_config = replace(self.train_config, epochs=self.suggested_epochs())
            self.trainConfigChanged.emit(self.train_config)
        self.datasetChanged.emit(data)
        self.statusMessage.emit(data.summary())

    # ---- configs ----
    def set_model_config(self, config: ModelConfig) -> None:
        if self.dataset is not None and tuple(config.input_shape) != tuple(self.dataset.shape):
            config = replace(config, input_shape=tuple(self.dataset.shape))
        self.model_config = config
        self.modelConfigChanged.emit(config)

    def suggested_epochs(self, batch_size: int | None = None) -> int:
        """Epochs giving the default optimizer-step budget on the current data's training split."""
        cfg = self.train_config
        n = self.dataset.n if self.dataset is not None else 0
        return default_epochs(n, self.model_config.input_shape, batch_size or cfg.batch_size, cfg.val_fraction).epochs

    def set_train_config(self, config: TrainConfig) -> None:
        # epochs stay automatic while they equal the suggestion; setting any other value takes over
        if self.dataset is None:  # before any data (restored settings): an explicit change takes over
            self.epochs_auto = self.epochs_auto and config.epochs == self.train_config.epochs
        else:
            self.epochs_auto = config.epochs == self.suggested_epochs(config.batch_size)
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
        self._set_continued(None)
        self.training.start(self.model_config, self.train_config, self.dataset, data_spec=self.data_spec)

    @property
    def trained(self) -> TrainedModel | None:
        """The current trained model (the value every panel shows), or None."""
        return None if self.snapshot is None else self.snapshot.trained

    def continue_problem(self, check_weights: bool = True) -> str | None:
        """Why Continue training cannot start now, or None (`check_weights=False`: without building the
        changed network to see whether the weights still fit it, for a quick look)."""
        if self.training.running:
            return "Training is already running."
        if self.trained is None:
            return "Open a run or train a model first: there is nothing to continue."
        problems = self.model_config.problems() + self.train_config.problems()
        if problems:
            return "Cannot train: " + "; ".join(problems)
        return continue_problem(self.trained, self.model_config, self.dataset, check_weights)

    def continue_training(self) -> bool:
        """Train the current model further: same weights, optimizer state, split and history (epochs are
        numbered on). Changed settings (anything but the epochs and the device) make a fork, a new run
        that names this one as its parent. False (with a message) when it cannot start."""
        problem = self.continue_problem()
        if problem:
            self.errorMessage.emit(problem)
            return False
        trained = self.trained
        changes = settings_changes(trained, self.model_config, self.train_config)
        parent = parent_record(trained, self.run_path) if changes else None
        self.historyReset.emit(list(trained.history))
        self.run_path = None
        self._set_continued(changes)
        self.training.start(self.model_config, self.train_config, self.dataset, resume=trained, parent=parent,
                            data_spec=trained.data_spec or self.data_spec)
        name = f" of {parent['name']}" if parent and parent.get("name") else ""
        self.statusMessage.emit(
            f"Forking{name} from epoch {trained.epoch} with changed {', '.join(changes)}: a new run" if changes
            else f"Continuing from epoch {trained.epoch}")
        return True

    def _set_continued(self, changes: list[str] | None) -> None:
        self.continued = None if changes is None else list(changes)
        self.continuedChanged.emit(self.continued)

    @Slot(object)
    def _on_snapshot(self, snapshot: ModelSnapshot) -> None:
        self.set_snapshot(snapshot)

    def set_snapshot(self, snapshot: ModelSnapshot | None) -> None:
        self.snapshot = snapshot
        self.snapshotChanged.emit(snapshot)

    def show_decoded(self, image, origin: str) -> None:
        """Publish a freshly decoded sample for the "Decoded sample" view."""
        self.decoded.emit(image, origin)

    def choose_code(self, code, origin: str, description: str = "") -> None:
        """Publish the code a panel is showing (plain numpy), for the other latent views to follow."""
        self.codeChosen.emit(code, origin, description)

    # ---- runs ----
    def apply_run(self, _bundle, snapshot: ModelSnapshot) -> None:
        """Show an opened run: its configs, its history and its model, all read from the snapshot's
        TrainedModel (data already set by the caller). The first argument is unused (older callers)."""
        trained = snapshot.trained
        self.model_config = trained.model_config
        self.train_config = trained.train_config
        self.run_path = trained.source
        self._set_continued(None)
        self.modelConfigChanged.emit(self.model_config)
        self.trainConfigChanged.emit(self.train_config)
        self.historyReset.emit(list(trained.history))
        self.set_snapshot(snapshot)
