"""One schema for every value we read from a file or take from a user.

Each field of a config (and of the small JSON files of a run folder) has a `Field`: its type,
its allowed range and whether it may be None. `field_problem(label, value, spec)` gives one
sentence naming the field, or None when the value is fine. Types are strict: a bool is not a
number, "8" is not a number, 8.0 is not a whole number, and NaN / infinity are never accepted.

`read_json(path, what, max_bytes, max_depth)` reads a JSON file defensively: regular files
only (a FIFO would block), a size limit checked before reading, and a nesting-depth limit
checked before parsing (so a JSON "bomb" of a million brackets costs one linear scan, not a
RecursionError deep in the parser).
"""
from __future__ import annotations

import json
import math
import os
import re
import stat
from dataclasses import dataclass
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np

#: Largest config.json / history.json / diagnoses.json we read.
MAX_JSON_BYTES = 10 * 1024 * 1024
#: Deepest nesting of lists and objects we accept in those files (ours need 3).
MAX_JSON_DEPTH = 16
#: Largest seed: what numpy's and torch's generators both take (and seed + 1 still fits).
MAX_SEED = 2**32 - 2
#: Absolute limits on sizes, before any memory estimate: no real autoencoder comes near them.
MAX_LATENT = 65536
MAX_WIDTH = 65536
MAX_LAYERS = 32
MAX_SIDE = 4096
MAX_EPOCHS = 1_000_000
MAX_BATCH = 1_048_576


class SchemaError(ValueError):
    """A value that breaks the schema. The message names the field."""


@dataclass(frozen=True)
class Field:
    kind: str  # "int" | "float" | "bool" | "str" | "int_list" | "str_list" | "shape"
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False  # lo itself is not allowed
    hi_open: bool = False
    optional: bool = False  # None allowed
    max_len: int = 4096  # lists: most items; strings: most characters


def _show(value: Any) -> str:
    """A value as the user wrote it in JSON, cut short."""
    try:
        text = json.dumps(value, allow_nan=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_int(v: Any) -> bool:
    return isinstance(v, Integral) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, Real) and not isinstance(v, bool)


def _range_text(spec: Field) -> str:
    lo, hi = spec.lo, spec.hi
    fmt = (lambda x: f"{int(x):,}".replace(",", "") if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}")
    if lo is not None and hi is not None:
        if spec.kind == "int" or (not spec.lo_open and not spec.hi_open):
            return f"from {fmt(lo)} to {fmt(hi)}"
        return f"in {'(' if spec.lo_open else '['}{fmt(lo)}, {fmt(hi)}{')' if spec.hi_open else ']'}"
    if lo is not None:
        return f"{'above' if spec.lo_open else 'at least'} {fmt(lo)}"
    if hi is not None:
        return f"{'below' if spec.hi_open else 'at most'} {fmt(hi)}"
    return ""


def _number_problem(label: str, v: Any, spec: Field, whole: bool) -> str | None:
    rng = _range_text(spec)
    noun = "a whole number" if whole else "a number"
    want = f"{label} must be {noun}" + (f" {rng}" if rng else "")
    if whole and not _is_int(v):
        return f"{want}, got {_show(v)}"
    if not whole and not _is_real(v):
        return f"{want}, got {_show(v)}"
    if not whole and not math.isfinite(float(v)):
        return f"{want}, got {_show(float(v))}"
    x = int(v) if whole else float(v)
    both_open = spec.lo_open and spec.hi_open
    if spec.lo is not None and (x < spec.lo or (spec.lo_open and x == spec.lo)):
        if both_open:
            return f"{want}, got {_show(x)}"
        bound = Field(spec.kind, spec.lo, None, spec.lo_open)
        return f"{label} must be {_range_text(bound)}, got {_show(x)}"
    if spec.hi is not None and (x > spec.hi or (spec.hi_open and x == spec.hi)):
        if both_open:
            return f"{want}, got {_show(x)}"
        bound = Field(spec.kind, None, spec.hi, hi_open=spec.hi_open)
        return f"{label} must be {_range_text(bound)}, got {_show(x)}"
    return None


def field_problem(label: str, value: Any, spec: Field) -> str | None:
    """One sentence about what is wrong with `value`, or None when it fits `spec`."""
    if value is None:
        return None if spec.optional else f"{label} must be given, got null"
    k = spec.kind
    if k == "int":
        return _number_problem(label, value, spec, whole=True)
    if k == "float":
        return _number_problem(label, value, spec, whole=False)
    if k == "bool":
        return None if isinstance(value, bool) else f"{label} must be true or false, got {_show(value)}"
    if k == "str":
        if not isinstance(value, str):
            return f"{label} must be text, got {_show(value)}"
        if len(value) > spec.max_len:
            return f"{label} is too long ({len(value):,} characters; at most {spec.max_len:,})"
        return None
    if k in ("int_list", "str_list", "shape"):
        if not isinstance(value, (list, tuple)):
            what = "a list of whole numbers" if k != "str_list" else "a list of names"
            return f"{label} must be {what}, got {_show(value)}"
        if k == "shape" and len(value) != 3:
            return f"{label} must be [channels, height, width], got {_show(value)}"
        if len(value) > spec.max_len:
            return f"{label} has too many items ({len(value):,}; at most {spec.max_len:,})"
        if k != "shape" and not spec.optional and len(value) == 0:
            return f"{label} must not be empty"
        item = Field("str", max_len=1000) if k == "str_list" else Field("int", spec.lo, spec.hi)
        for i, v in enumerate(value):
            p = field_problem(f"{label}[{i}]", v, item)
            if p:
                return p
        return None
    raise ValueError(f"unknown field kind {k!r}")  # pragma: no cover - a bug in a schema table


def check_fields(obj: Any, fields: dict[str, Field], prefix: str = "") -> list[str]:
    """Problems of every field of a dataclass instance (or a dict) against `fields`."""
    out = []
    for name, spec in fields.items():
        value = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
        p = field_problem(f"{prefix}{name}", value, spec)
        if p:
            out.append(p)
    return out


# ---- the config fields --------------------------------------------------------------------------
MODEL_FIELDS: dict[str, Field] = {
    "arch": Field("str", max_len=100),
    "kind": Field("str", max_len=100),
    "input_shape": Field("shape", 1, MAX_SIDE),
    "latent": Field("int", 1, MAX_LATENT),
    "hidden": Field("int_list", 1, MAX_WIDTH, optional=True, max_len=MAX_LAYERS),
    "dense_layers": Field("int_list", 1, MAX_WIDTH, optional=True, max_len=MAX_LAYERS),
    "activation": Field("str", max_len=100),
    "activations": Field("str_list", optional=True, max_len=MAX_LAYERS),
    "output": Field("str", max_len=100),
    "loss": Field("str", max_len=100),
    "init": Field("str", max_len=100),
    "dropout": Field("float", 0.0, 1.0, hi_open=True),
    "batch_norm": Field("bool"),
    "tied": Field("bool"),
    "stacked": Field("bool"),
    "beta": Field("float", 0.0, 1e6),
    "sparsity": Field("str", max_len=100),
    "sparsity_weight": Field("float", 0.0, 1e6),
    "sparsity_target": Field("float"),
    "contractive_weight": Field("float", 0.0, 1e6),
    "weight_decay": Field("float", 0.0, 1e6),
    "rnn_cell": Field("str", max_len=100),
    "free_bits": Field("float", 0.0, 1e3),
}

TRAIN_FIELDS: dict[str, Field] = {
    "epochs": Field("int", 1, MAX_EPOCHS),
    "batch_size": Field("int", 1, MAX_BATCH),
    "lr": Field("float", 0.0, 1e6, lo_open=True),
    "noise": Field("str", max_len=200),
    "augment": Field("str", max_len=20),
    "val_fraction": Field("float", 0.0, 1.0, lo_open=True, hi_open=True),
    "seed": Field("int", 0, MAX_SEED),
    "device": Field("str", max_len=100),
    "pretrain_epochs": Field("int", 0, MAX_EPOCHS),
    "grad_clip": Field("float", 0.0, 1e12),
    "kl_warmup": Field("float", 0.0, 1.0),
    "lr_decay": Field("float", 0.0, 1.0),
    "optimizer": Field("str", max_len=20),
    "amp": Field("bool"),
    "channels_last": Field("bool"),
}

#: The run-level fields of config.json besides "model" and "train" (others are kept, unchecked).
META_FIELDS: dict[str, Field] = {
    "data": Field("str", optional=True, max_len=4096),
    "classes": Field("str_list", optional=True, max_len=100_000),
    "image_size": Field("int", 2, MAX_SIDE, optional=True),
    "channels": Field("int", 1, 3, optional=True),
    "split_seed": Field("int", 0, MAX_SEED, optional=True),
    "finished": Field("str", optional=True, max_len=100),
    "seconds": Field("float", 0.0, optional=True),
    "data_fingerprint": Field("str", optional=True, max_len=64),
}

DIAGNOSIS_FIELDS: dict[str, Field] = {
    "code": Field("str", max_len=200),
    "epoch": Field("int", 0, MAX_EPOCHS, optional=True),
    "message": Field("str", max_len=10_000),
    "remedy": Field("str", optional=True, max_len=10_000),
}

MAX_HISTORY = 1_000_000
#: History keys whose value is a list of numbers (a VAE's kl_per_dim: one value per latent dimension).
HISTORY_LIST_KEYS = frozenset({"kl_per_dim"})


def check_history(records: Any, label: str = "history") -> str | None:
    """history.json: a list of flat objects of numbers, text, true/false or null."""
    if not isinstance(records, list):
        return f"{label} must be a list of records, got {_show(records)}"
    if len(records) > MAX_HISTORY:
        return f"{label} has too many records ({len(records):,})"
    for i, r in enumerate(records):
        if not isinstance(r, dict):
            return f"{label}[{i}] must be an object, got {_show(r)}"
        for k, v in r.items():
            if isinstance(v, list) and k in HISTORY_LIST_KEYS:
                if len(v) > MAX_LATENT or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
                    return f"{label}[{i}].{k} must be a list of at most {MAX_LATENT} numbers, got {_show(v)}"
            elif not (v is None or isinstance(v, (str, bool, int, float))):
                return f"{label}[{i}].{k} must be a number or text, got {_show(v)}"
    return None


def check_diagnoses(items: Any, label: str = "diagnoses") -> str | None:
    """diagnoses.json: a list of {code, epoch, message, remedy}."""
    if not isinstance(items, list):
        return f"{label} must be a list, got {_show(items)}"
    for i, d in enumerate(items):
        if not isinstance(d, dict):
            return f"{label}[{i}] must be an object with code, epoch, message and remedy, got {_show(d)}"
        problems = check_fields(d, DIAGNOSIS_FIELDS, f"{label}[{i}].")
        if problems:
            return problems[0]
    return None


# ---- reading JSON files ---------------------------------------------------------------------------
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


def json_depth(raw: bytes) -> int:
    """Deepest nesting of [ and { in JSON text (brackets inside strings do not count)."""
    stripped = _STRINGS.sub(b'""', raw)
    b = np.frombuffer(stripped, dtype=np.uint8)
    if b.size == 0:
        return 0
    step = ((b == ord("[")) | (b == ord("{"))).astype(np.int64) - ((b == ord("]")) | (b == ord("}"))).astype(np.int64)
    return int(np.cumsum(step).max(initial=0))


def read_json(path: str | Path, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse a JSON file; raises SchemaError with a message (without the file name) when it cannot."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as e:
        raise SchemaError(e.strerror or str(e)) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SchemaError("it is not a regular file")
        if st.st_size > max_bytes:
            raise SchemaError(f"the file is too large ({st.st_size:,} bytes; at most {max_bytes:,})")
        with os.fdopen(fd, "rb", closefd=False) as f:
            raw = f.read(max_bytes + 1)
    except OSError as e:
        raise SchemaError(e.strerror or str(e)) from None
    finally:
        os.close(fd)
    if len(raw) > max_bytes:
        raise SchemaError(f"the file is too large (more than {max_bytes:,} bytes)")
    depth = json_depth(raw)
    if depth > max_depth:
        raise SchemaError(f"it is nested {depth:,} levels deep (at most {max_depth})")
    try:
        text = raw.decode("utf-8")
        return json.loads(text)
    except UnicodeDecodeError:
        raise SchemaError("it is not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise SchemaError(f"it is not valid JSON ({e})") from None
    except RecursionError:  # pragma: no cover - the depth check comes first
        raise SchemaError("it is nested too deeply") from None
