"""One trained model, one value: `TrainedModel`.

A trained model is more than its weights. To show, evaluate, save or continue it truthfully every
reader needs what it was trained with, not today's settings:

* a copy of the weights (CPU tensors nobody edits),
* the frozen model and training configs (noise included),
* the data set's spec and fingerprint, and the train / validation indices it was trained with,
* its full epoch history, its epoch, which weights were kept when training ended early,
* the optimizer's state (to continue training), the training doctor's findings, and the run it was
  forked from, if any.

`trained_model()` is the one function that builds the value; `from_trainer()` (the training worker
and the CLI, at each epoch end and when training ends) and `open_trained()` (Open run, `aestudio
train --resume`) go through it. `save_trained()` writes it as a run folder, the optimizer state
included (`optimizer.safetensors` with its hyper-parameters in `optimizer.json`; never pickle).

Continue and fork: `resume_trainer()` builds a Trainer that starts from the value's weights,
optimizer state, split and history (new epochs are numbered on). Continuing with changed settings
(`settings_changes()`, anything but the number of epochs and the device) is a fork: its run names
its parent (`parent_record()`) under the key "parent" of config.json.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np
import torch

from .config import ModelConfig, TrainConfig
from .optim import MUON_KEY, keep_matching_state

OPTIMIZER_WEIGHTS = "optimizer.safetensors"
OPTIMIZER_JSON = "optimizer.json"
OPTIMIZER_FORMAT = "aestudio-optimizer"
#: Settings that may change without making a fork: how many more epochs, and where to compute.
CONTINUE_FREE = frozenset({"epochs", "device"})
_ADAM_KEYS = ("exp_avg", "exp_avg_sq", "step")
_STATE_KEYS = (*_ADAM_KEYS, MUON_KEY)  # a parameter's state: Adam's three tensors, or Muon's momentum
_ADAM_HYPER = ("betas", "eps", "weight_decay", "amsgrad", "maximize")


def data_fingerprint(data: Any) -> str:
    """A short hash of an ImageSet's images and labels (cached on the object): the same data set, or not."""
    cached = getattr(data, "_aestudio_fingerprint", None)
    if cached is not None:
        return cached
    h = hashlib.blake2b(digest_size=8)
    cache = getattr(data, "cache_file", "")  # a streamed set: its decode cache names the images (never read it all)
    if cache:
        st = os.stat(cache)
        h.update(f"{os.path.abspath(cache)}|{st.st_size}|{st.st_mtime_ns}|{data.n}|{data.shape}".encode())
    else:
        images = np.ascontiguousarray(data.images)
        h.update(repr(images.shape).encode())
        h.update(memoryview(images).cast("B"))
    if data.labels is not None:
        h.update(np.ascontiguousarray(data.labels, dtype=np.int64).tobytes())
    fp = h.hexdigest()
    try:
        object.__setattr__(data, "_aestudio_fingerprint", fp)
    except (AttributeError, TypeError):  # pragma: no cover - an object without a __dict__
        pass
    return fp


def _frozen_array(a: Any) -> np.ndarray:
    out = np.array(a, dtype=np.int64, copy=True)
    out.flags.writeable = False
    return out


def _cpu_copy(state: Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
    return MappingProxyType({k: v.detach().to("cpu", copy=True).contiguous() for k, v in state.items()})


def copy_optimizer_state(state: dict | None) -> dict | None:
    """A CPU copy of an optimizer's state_dict (tensors cloned, hyper-parameters copied)."""
    if state is None:
        return None
    return {
        "state": {int(i): {k: (v.detach().to("cpu", copy=True) if torch.is_tensor(v) else v) for k, v in s.items()}
                  for i, s in state.get("state", {}).items()},
        "param_groups": [dict(g) for g in state.get("param_groups", [])],
    }


@dataclass(frozen=True, eq=False)
class TrainedModel:
    """A trained model and everything it was trained with. Frozen; build it with `trained_model()`."""

    weights: Mapping[str, torch.Tensor]  # read-only mapping of CPU tensors
    model_config: ModelConfig
    train_config: TrainConfig
    data_spec: str | None
    data_fingerprint: str | None
    split: tuple[np.ndarray, np.ndarray] | None  # (train, validation) indices; None: a separate validation set
    history: tuple[dict, ...]
    epoch: int  # epochs the kept weights have had (0: stopped during the first epoch)
    kept: str = ""  # which weights training ended with, when it ended early ("" when it completed)
    optimizer: dict | None = None  # the optimizer's state_dict (CPU tensors), for Continue training
    diagnoses: tuple[dict, ...] = ()
    parent: Mapping[str, Any] | None = None  # the run this one was forked from (config.json "parent")
    source: str | None = None  # the run folder it was opened from
    background: str | None = None  # how the data set's transparent pixels were filled
    notes: tuple[str, ...] = ()  # things a user should know (e.g. no optimizer state in the folder)

    @property
    def noise(self) -> str:
        """The corruption the model was trained with ("none" for a plain autoencoder)."""
        return self.train_config.noise

    @property
    def train_idx(self) -> np.ndarray | None:
        return None if self.split is None else self.split[0]

    @property
    def val_idx(self) -> np.ndarray | None:
        return None if self.split is None else self.split[1]

    @functools.cached_property
    def fingerprint(self) -> str:
        """A short hash of the weights: names this exact model (a fork's config names its parent by it)."""
        h = hashlib.blake2b(digest_size=8)
        for k in sorted(self.weights):
            t = self.weights[k]
            h.update(k.encode())
            h.update(str(t.dtype).encode() + repr(tuple(t.shape)).encode())
            h.update(t.numpy().tobytes())
        return h.hexdigest()

    def build_model(self, device: str | torch.device = "cpu"):
        """A fresh Autoencoder with these weights, in eval mode (a new module: the value is not touched)."""
        from .models import Autoencoder

        model = Autoencoder(self.model_config)
        model.load_state_dict(dict(self.weights))
        return model.to(device).eval()

    def meta(self) -> dict[str, Any]:
        """The run-level fields of its config.json."""
        c, h, w = (int(v) for v in self.model_config.input_shape)
        out: dict[str, Any] = {"data": self.data_spec, "image_size": h if h == w else None, "channels": c,
                               "background": self.background or "auto", "split_seed": self.train_config.seed}
        if self.data_fingerprint:
            out["data_fingerprint"] = self.data_fingerprint
        if self.parent:
            out["parent"] = dict(self.parent)
        return out


def trained_model(weights: Mapping[str, torch.Tensor] | Any, model_config: ModelConfig,
                  train_config: TrainConfig | None = None, *, data: Any = None, data_spec: str | None = None,
                  fingerprint: str | None = None, split: tuple[Any, Any] | None = None,
                  history: Any = (), epoch: int | None = None, kept: str = "", optimizer: dict | None = None,
                  diagnoses: Any = (), parent: Mapping[str, Any] | None = None, source: str | None = None,
                  background: str | None = None, notes: Any = ()) -> TrainedModel:
    """The one way to make a TrainedModel: copies everything, so later training changes nothing in it.

    `weights` is a state dict or a module; `data` (an ImageSet) gives the fingerprint when
    `fingerprint` is not given; `epoch` defaults to the number of epoch records."""
    if isinstance(weights, torch.nn.Module):
        weights = weights.state_dict()
    records = tuple(dict(r) for r in history)
    if fingerprint is None and data is not None:
        fingerprint = data_fingerprint(data)
    if background is None and data is not None:
        background = getattr(data, "background", None)
    return TrainedModel(
        weights=_cpu_copy(weights), model_config=model_config, train_config=train_config or TrainConfig(),
        data_spec=data_spec, data_fingerprint=fingerprint,
        split=None if split is None else (_frozen_array(split[0]), _frozen_array(split[1])),
        history=records, epoch=len(records) if epoch is None else int(epoch), kept=kept,
        optimizer=copy_optimizer_state(optimizer), diagnoses=tuple(dict(d) for d in diagnoses),
        parent=None if parent is None else MappingProxyType(dict(parent)), source=source, background=background,
        notes=tuple(notes))


def from_trainer(trainer: Any, *, epoch: int | None = None, data_spec: str | None = None, kept: str = "",
                 parent: Mapping[str, Any] | None = None, optimizer: dict | None = None) -> TrainedModel:
    """The trainer's model as it is now (call between epochs, or once training ended)."""
    opt = optimizer if optimizer is not None else (trainer.optimizer.state_dict()
                                                   if getattr(trainer, "optimizer", None) is not None else None)
    separate = getattr(trainer, "val_data", None) is not None
    return trained_model(
        trainer.model, trainer.model_config, trainer.train_config, data=trainer.data, data_spec=data_spec,
        split=None if separate else (trainer.train_idx, trainer.val_idx), history=trainer.history,
        epoch=epoch, kept=kept, optimizer=opt, diagnoses=getattr(trainer, "diagnoses", ()), parent=parent)


# ---- run folders ---------------------------------------------------------------------------------
def optimizer_files(state: dict | None) -> dict[str, bytes]:
    """optimizer.safetensors (the moment tensors) and optimizer.json (the hyper-parameters), as bytes."""
    if not state or not state.get("state"):
        return {}
    from safetensors.torch import save

    tensors: dict[str, torch.Tensor] = {}
    for i, s in state["state"].items():
        for k, v in s.items():
            if k in _STATE_KEYS and torch.is_tensor(v):
                tensors[f"state.{int(i)}.{k}"] = v.detach().to("cpu").float().contiguous().reshape(v.shape)
    groups = state.get("param_groups") or [{}]
    group = groups[0]
    hyper = {"lr": float(group.get("lr", 0.0)), "params": len(group.get("params", []))}
    for k in _ADAM_HYPER:
        v = group.get(k)
        if isinstance(v, (tuple, list)):
            v = [float(x) for x in v]
        elif isinstance(v, (bool, int, float)):
            v = v if isinstance(v, bool) else float(v)
        else:
            continue
        hyper[k] = v
    muon = any(MUON_KEY in s for s in state["state"].values())
    meta = {"format": OPTIMIZER_FORMAT, "format_version": 1, "optimizer": "muon+adam" if muon else "adam",
            "param_group": hyper}
    return {OPTIMIZER_WEIGHTS: save(tensors, metadata={"format": OPTIMIZER_FORMAT}),
            OPTIMIZER_JSON: json.dumps(meta, indent=1).encode("utf-8")}


def read_optimizer(folder: str | Path, model: Any) -> tuple[dict | None, str | None]:
    """The optimizer state saved in a run folder, checked against the model's parameters.

    Returns (state_dict, None), or (None, a note saying why training would continue with a fresh
    optimizer): an old run without the files, or files that do not fit. Never raises for bad files."""
    from safetensors import SafetensorError, safe_open

    from .schema import SchemaError, read_json

    folder = Path(folder)
    w_file, j_file = folder / OPTIMIZER_WEIGHTS, folder / OPTIMIZER_JSON
    if not os.path.lexists(w_file) and not os.path.lexists(j_file):
        return None, "the run folder holds no optimizer state (saved by an older version), so training " \
                     "continues with a fresh optimizer"
    fresh = "; training continues with a fresh optimizer"
    try:
        meta = read_json(j_file)
    except SchemaError as e:
        return None, f"{OPTIMIZER_JSON} was not read ({e}){fresh}"
    group = meta.get("param_group") if isinstance(meta, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != OPTIMIZER_FORMAT or not isinstance(group, dict):
        return None, f"{OPTIMIZER_JSON} is not an aestudio optimizer file{fresh}"
    params = list(model.autoencoder_parameters() if hasattr(model, "autoencoder_parameters") else model.parameters())
    if group.get("params") != len(params):
        return None, f"the optimizer state is for {group.get('params')} parameter tensors, the model has {len(params)}{fresh}"
    hyper: dict[str, Any] = {}
    for k in _ADAM_HYPER:
        v = group.get(k)
        if k == "betas" and isinstance(v, list) and len(v) == 2 and all(isinstance(b, (int, float)) for b in v) \
                and all(0.0 <= b < 1.0 for b in v):
            hyper[k] = (float(v[0]), float(v[1]))
        elif k in ("amsgrad", "maximize") and isinstance(v, bool):
            hyper[k] = v
        elif k in ("eps", "weight_decay") and isinstance(v, (int, float)) and not isinstance(v, bool) \
                and np.isfinite(v) and v >= 0:
            hyper[k] = float(v)
    state: dict[int, dict[str, torch.Tensor]] = {}
    try:
        if not os.path.isfile(w_file) or os.path.islink(w_file):
            return None, f"{OPTIMIZER_WEIGHTS} is missing{fresh}"
        need = sum(p.numel() for p in params) * 4 * 3 + (1 << 20)
        if os.path.getsize(w_file) > need:
            return None, f"{OPTIMIZER_WEIGHTS} is larger than the model's optimizer state could be{fresh}"
        with safe_open(str(w_file), framework="pt") as f:
            for name in f.keys():
                parts = name.split(".")
                if len(parts) != 3 or parts[0] != "state" or not parts[1].isdecimal() or parts[2] not in _STATE_KEYS:
                    return None, f"{OPTIMIZER_WEIGHTS} holds an unexpected tensor {name!r}{fresh}"
                i = int(parts[1])
                if i >= len(params):
                    return None, f"{OPTIMIZER_WEIGHTS} names parameter {i}, the model has {len(params)}{fresh}"
                sl = f.get_slice(name)
                want = [] if parts[2] == "step" else list(params[i].shape)
                if sl.get_dtype() != "F32" or list(sl.get_shape()) != want:
                    return None, f"{OPTIMIZER_WEIGHTS}: {name} does not fit the model{fresh}"
                t = f.get_tensor(name)
                if not bool(torch.isfinite(t).all()) or (parts[2] == "exp_avg_sq" and bool((t < 0).any())):
                    return None, f"{OPTIMIZER_WEIGHTS}: {name} holds invalid values{fresh}"
                state.setdefault(i, {})[parts[2]] = t
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        return None, f"{OPTIMIZER_WEIGHTS} is not a valid safetensors file ({' '.join(str(e).split())[:120]}){fresh}"
    if any(set(s) not in (set(_ADAM_KEYS), {MUON_KEY, "step"}) for s in state.values()):
        return None, f"{OPTIMIZER_WEIGHTS} is incomplete{fresh}"
    return {"state": state, "param_groups": [{**hyper, "params": list(range(len(params)))}]}, None


def load_optimizer_state(opt: torch.optim.Optimizer, state: dict, lr: float) -> None:
    """Load a saved optimizer state into `opt` (the same parameters, in order); the learning rate is
    today's. A parameter saved with Adam's state and now updated by Muon (or the other way round, after
    the optimizer setting changed) starts with a fresh state of its own."""
    current = opt.state_dict()
    groups = []
    for g, saved in zip(current["param_groups"], state.get("param_groups", [])):
        merged = dict(g)
        merged.update({k: v for k, v in saved.items() if k in _ADAM_HYPER})
        merged["lr"] = float(lr)
        groups.append(merged)
    # copies: the optimizer steps its state in place, and `state` may belong to a frozen TrainedModel
    kept = keep_matching_state(opt, {int(i): {k: v.clone() if torch.is_tensor(v) else v for k, v in s.items()}
                                     for i, s in state.get("state", {}).items()})
    opt.load_state_dict({"state": kept,
                         "param_groups": groups or current["param_groups"]})
    for g in opt.param_groups:
        g["lr"] = float(lr)


def save_trained(trained: TrainedModel, path: str | Path, *, overwrite: bool = False, beside: bool = False,
                 lock_timeout: float = 30.0, **meta: Any) -> Path:
    """Write a TrainedModel as a run folder (see checkpoint.save_run; the optimizer state included).
    `meta` adds or overrides run-level fields of config.json (e.g. finished, seconds, classes)."""
    from .checkpoint import save_run

    fields = {k: v for k, v in {**trained.meta(), **meta}.items() if v is not None}
    return save_run(path, trained.model_config, trained.train_config, trained.build_model(),
                    history=list(trained.history), diagnoses=list(trained.diagnoses) if trained.diagnoses else None,
                    overwrite=overwrite, beside=beside, lock_timeout=lock_timeout,
                    extra_files=optimizer_files(trained.optimizer), **fields)


def from_run(run: Any, data: Any = None, data_spec: str | None = None) -> TrainedModel:
    """A loaded run (checkpoint.Run) as a TrainedModel, with the split it was trained with on `data`."""
    from .datasets import split_indices

    meta = run.meta
    notes = list(getattr(run, "warnings", []) or [])
    split = None
    if data is not None and data.n >= 2:
        seed = int(meta.get("split_seed", run.train_config.seed))
        split = split_indices(data.n, run.train_config.val_fraction, seed)
    fingerprint = meta.get("data_fingerprint") if isinstance(meta.get("data_fingerprint"), str) else None
    if fingerprint is None and data is not None:
        fingerprint = data_fingerprint(data)  # an older run: assume it is the data it names
    optimizer, note = (read_optimizer(run.path, run.model) if run.path is not None else (None, None))
    if note:
        notes.append(note)
    parent = meta.get("parent")
    parent = {k: v for k, v in parent.items() if isinstance(v, (str, int, float)) and not isinstance(v, bool)} \
        if isinstance(parent, dict) else None
    return trained_model(run.model, run.model_config, run.train_config, data_spec=data_spec or run.data_spec,
                         fingerprint=fingerprint, split=split, history=run.history, kept="",
                         optimizer=optimizer, diagnoses=run.diagnoses, parent=parent or None,
                         source=str(run.path) if run.path else None,
                         background=meta.get("background") if isinstance(meta.get("background"), str) else None,
                         notes=notes)


def open_trained(path: str | Path, data: Any = None, data_spec: str | None = None,
                 device: str | torch.device = "cpu") -> TrainedModel:
    """Open a run folder as a TrainedModel (checkpoint.load_run checks every file)."""
    from .checkpoint import load_run

    return from_run(load_run(path, device=device), data, data_spec)


# ---- continue and fork ---------------------------------------------------------------------------
def settings_changes(trained: TrainedModel, model_config: ModelConfig, train_config: TrainConfig) -> list[str]:
    """The settings that differ from the ones the model was trained with (epochs and device are free)."""
    out = []
    for section, old, new in (("model", trained.model_config, model_config), ("train", trained.train_config, train_config)):
        for f in dataclasses.fields(old):
            if section == "train" and f.name in CONTINUE_FREE:
                continue
            if getattr(old, f.name) != getattr(new, f.name):
                out.append(f.name)
    return out


def continue_problem(trained: TrainedModel, model_config: ModelConfig, data: Any,
                     check_weights: bool = True) -> str | None:
    """Why this model cannot continue training on `data` with `model_config`, or None.
    `check_weights=False` skips building the changed network to see whether the weights still fit."""
    if data is None:
        return "Load the data set the model was trained on first."
    if tuple(data.shape) != tuple(trained.model_config.input_shape):
        return (f"The model was trained on {'x'.join(map(str, trained.model_config.input_shape))} images, the current "
                f"data set has {'x'.join(map(str, data.shape))}; open its data set to continue.")
    if trained.data_fingerprint and data_fingerprint(data) != trained.data_fingerprint:
        return (f"The current data set is not the one the model was trained on ({trained.data_spec or 'unknown'}); "
                "continuing on other images would mix its training and validation images. Load that data set, "
                "or train from scratch.")
    if trained.split is not None and int(max(trained.split[0].max(initial=-1), trained.split[1].max(initial=-1))) >= data.n:
        return "The model's training split does not fit the current data set; train from scratch."
    if not check_weights or model_config == trained.model_config:
        return None
    try:
        from .models import Autoencoder

        Autoencoder(model_config).load_state_dict(dict(trained.weights))
    except (RuntimeError, ValueError, TypeError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        return (f"The model settings changed the network itself, so its weights do not fit ({first[:120]}). "
                "Undo those changes to continue, or train from scratch.")
    return None


def parent_record(trained: TrainedModel, path: str | None = None) -> dict[str, Any]:
    """How a fork's config.json names its parent run: folder, name, weights fingerprint and epoch."""
    where = path or trained.source
    return {"path": str(where) if where else "", "name": Path(where).name if where else "",
            "fingerprint": trained.fingerprint, "epoch": int(trained.epoch)}


def resume_trainer(trained: TrainedModel, model_config: ModelConfig, train_config: TrainConfig, data: Any,
                   control: Any = None) -> Any:
    """A Trainer that continues `trained`: its weights, optimizer state (when saved), split and history.
    `train_config.epochs` more epochs are trained, numbered on from the model's."""
    from .training import Control, Trainer

    problem = continue_problem(trained, model_config, data)
    if problem:
        from .config import ConfigError

        raise ConfigError(problem)
    from .models import Autoencoder

    model = Autoencoder(model_config)
    model.load_state_dict(dict(trained.weights))
    return Trainer(model_config, train_config, data, control=control or Control(), model=model,
                   split=trained.split, optimizer_state=trained.optimizer, prior_history=list(trained.history))


__all__ = [
    "CONTINUE_FREE", "OPTIMIZER_JSON", "OPTIMIZER_WEIGHTS", "TrainedModel", "continue_problem", "copy_optimizer_state",
    "data_fingerprint",
    "from_run", "from_trainer", "load_optimizer_state", "open_trained", "optimizer_files", "parent_record",
    "read_optimizer", "resume_trainer", "save_trained", "settings_changes", "trained_model",
]
