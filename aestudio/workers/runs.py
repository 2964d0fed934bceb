"""Opening a run folder for the studio, off the GUI thread (run it in a `tasks.Task`).

`load_run_bundle` reads the run (every file checked by core.checkpoint), loads the data set it
names (or reuses the one on show), builds its `TrainedModel` (core.trained: weights, configs, split,
history, optimizer state) and a `ModelSnapshot` with the codes of its validation images.
"""
from __future__ import annotations

import traceback
from dataclasses import dataclass

from ..core.checkpoint import RunError, UntrustedDataError, load_run, resolve_data_spec
from ..core.config import ConfigError
from ..core.datasets import DatasetError, ImageSet, load_dataset
from ..core.trained import TrainedModel, data_fingerprint, from_run
from .training import ModelSnapshot, snapshot_of


@dataclass
class RunBundle:
    """What Open run shows: the trained model, its data set and a snapshot to explore it with."""

    trained: TrainedModel
    spec: str | None
    data: ImageSet
    snapshot: ModelSnapshot
    note: str  # what the user should know ("" when nothing): files skipped, other data, no optimizer state

    def __iter__(self):  # (trained, spec, data, snapshot, note), as `a, b, c, d, e = bundle`
        return iter((self.trained, self.spec, self.data, self.snapshot, self.note))


def load_run_bundle(path: str, current_spec: str | None = None, current_data: ImageSet | None = None,
                    trust_data: bool = False) -> RunBundle:
    """Every problem raises RunError with one line (never a raw exception text): a hostile or damaged
    run folder is refused, not half-opened."""
    try:
        return _load_run_bundle(path, current_spec, current_data, trust_data)
    except (RunError, DatasetError, ConfigError):
        raise
    except (TypeError, AttributeError, KeyError, IndexError, ValueError, RuntimeError) as e:
        traceback.print_exc()
        raise RunError(f"the run folder {path} is damaged: its files do not fit together "
                       f"({type(e).__name__})") from None


def _join(note: str, more: str) -> str:
    return f"{note}; {more}" if note else more


def _load_run_bundle(path: str, current_spec: str | None, current_data: ImageSet | None,
                     trust_data: bool) -> RunBundle:
    run = load_run(path)
    shape = tuple(run.model_config.input_shape)
    note = ""
    data = None
    try:  # the run's data spec is untrusted (see aestudio.core.checkpoint)
        spec = resolve_data_spec(run.data_spec, run.path, trust=trust_data)
    except UntrustedDataError as e:
        spec = None
        note = f"{e}, so it was not loaded"
    if spec and spec == current_spec and current_data is not None and tuple(current_data.shape) == shape:
        data = current_data
    elif spec:
        try:
            data = load_dataset(spec, image_size=shape[1], channels=shape[0], allow_download=False,
                                background=run.meta.get("background", "auto"))
        except DatasetError as e:
            note = _join(note, f"the run's data set could not be loaded ({e})")
    if data is None:
        if current_data is not None and tuple(current_data.shape) == shape:
            data, spec = current_data, current_spec
            note = _join(note, "showing it on the current data set instead")
        else:
            raise RunError(f"Cannot show the run: {note or 'it does not name its data set'}, and the current data "
                           f"set has a different image shape (the model expects {'x'.join(map(str, shape))}).")
    if tuple(data.shape) != shape:
        raise RunError(f"The run's model expects images of shape {'x'.join(map(str, shape))} but its data set "
                       f"{spec} has {'x'.join(map(str, data.shape))}.")
    trained = from_run(run, data, spec)
    for n in trained.notes:
        note = _join(note, n)
    if trained.data_fingerprint and data_fingerprint(data) != trained.data_fingerprint:
        note = _join(note, "these images are not the ones it was trained on, so it cannot continue training here")
    return RunBundle(trained, spec, data, snapshot_of(trained, data), note)

