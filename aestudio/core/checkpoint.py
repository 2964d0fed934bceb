"""Run folders: JSON config + safetensors weights + JSON history. Never pickle.

    run/
      config.json        {"format": "aestudio-run", "format_version": 1, "model": {...}, "train": {...},
                          "data": "fashion-10k", "split_seed": 0, ...}
      weights.safetensors
      history.json       one record per epoch
      diagnoses.json     the training doctor's findings: [{"code", "epoch", "message", "remedy"}, ...]
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .config import ConfigError, ModelConfig, TrainConfig, dumps, loads
from .models import Autoencoder

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "weights.safetensors"
HISTORY_NAME = "history.json"
DIAGNOSES_NAME = "diagnoses.json"


class RunError(Exception):
    """A run folder that cannot be read or written. The message is meant for users."""


@dataclass
class Run:
    model_config: ModelConfig
    train_config: TrainConfig
    model: Autoencoder
    history: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)  # data spec, split seed, notes
    path: Path | None = None

    @property
    def data_spec(self) -> str | None:
        return self.meta.get("data")


def save_run(path: str | Path, model_config: ModelConfig, train_config: TrainConfig, model: Autoencoder,
             history: list[dict[str, Any]] | None = None, diagnoses: list[dict[str, Any]] | None = None,
             **meta: Any) -> Path:
    """Write a run folder atomically enough: each file goes to a temporary name first."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    meta.setdefault("split_seed", train_config.seed)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    _atomic(path / WEIGHTS_NAME, lambda tmp: save_file(tensors, str(tmp), metadata={"format": "aestudio-run"}))
    _atomic(path / CONFIG_NAME, lambda tmp: tmp.write_text(dumps(model_config, train_config, **meta)))
    _atomic(path / HISTORY_NAME, lambda tmp: tmp.write_text(json.dumps(history or [], indent=1)))
    _atomic(path / DIAGNOSES_NAME, lambda tmp: tmp.write_text(json.dumps(diagnoses or [], indent=1)))
    return path


def load_run(path: str | Path, device: str | torch.device = "cpu") -> Run:
    """Open a run folder (or its config.json / weights.safetensors). Refuses anything else."""
    path = Path(path)
    if path.is_file():
        if path.name not in (CONFIG_NAME, WEIGHTS_NAME):
            raise RunError(
                f"{path.name} is not an aestudio run: open a run folder holding {CONFIG_NAME} and {WEIGHTS_NAME} "
                "(pickled files such as .pt, .pth or .pkl are refused because opening them can run code)"
            )
        path = path.parent
    if not path.is_dir():
        raise RunError(f"no run folder at {path}")
    cfg_file, w_file = path / CONFIG_NAME, path / WEIGHTS_NAME
    if not cfg_file.is_file() or not w_file.is_file():
        raise RunError(f"{path} is not an aestudio run: it needs {CONFIG_NAME} and {WEIGHTS_NAME}")
    try:
        model_config, train_config, meta = loads(cfg_file.read_text())
        model_config.input_shape = tuple(model_config.input_shape)
        model = Autoencoder(model_config)
    except (ConfigError, TypeError, ValueError) as e:
        raise RunError(f"cannot read {cfg_file}: {e}") from None
    try:
        state = load_file(str(w_file))
    except (SafetensorError, OSError, ValueError) as e:
        raise RunError(f"cannot read {w_file}: not a valid safetensors file ({e})") from None
    if "output_bias" not in state:  # runs saved before the model had a per-pixel output offset
        state["output_bias"] = torch.zeros_like(model.output_bias)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise RunError(f"the weights in {w_file} do not fit the model in {CONFIG_NAME}: {first}") from None
    model.to(device).eval()
    history: list[dict[str, Any]] = []
    h_file = path / HISTORY_NAME
    if h_file.is_file():
        try:
            history = json.loads(h_file.read_text())
        except json.JSONDecodeError:
            history = []
    return Run(model_config, train_config, model, history, meta, path)


def _atomic(target: Path, write) -> None:
    tmp = target.with_name(target.name + ".tmp")
    write(tmp)
    os.replace(tmp, target)
