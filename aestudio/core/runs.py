"""Many runs at once: which run folders the studio knows, what each holds, and how they compare.

    registry = RunRegistry.load()                # recent runs + folders the user added (JSON)
    infos = [read_run_info(p) for p in registry.discover()]
    table = compare(infos)                       # rows of settings and metrics, best of each marked
    diff = config_diff(infos)                    # the settings that differ

Nothing here imports Qt, and nothing loads weights except `evaluate_folder` (on demand).

The registry is `runs.json` in the user config folder (platformdirs), or in
`$AESTUDIO_SETTINGS_DIR` when that is set (tests). It keeps two lists: recent runs (the studio and
`aestudio train` add to it) and folders the user added. A folder that is itself a run is listed as
such; a folder holding run folders is scanned one level deep.

Every run folder is untrusted. `read_run_info` never raises for a bad folder: it returns a
`RunInfo` with `status == "broken"` and one line in `error`. A run is "writing" while a save is
building it (a hidden `.NAME.*.tmp` folder beside it, see checkpoint.save_run), or while its
config says `"finished": "running"` (a training process saves it live, see core/follow.py) and its
files changed in the last `WRITING_WINDOW_S` seconds; marked running but unchanged for longer, it
is "quiet" (that process may have died). Otherwise it is "done".
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from .checkpoint import (CONFIG_NAME, HISTORY_NAME, WEIGHTS_NAME, RunError, _display, _hidden_siblings,
                         holds_run, read_config)
from .config import ModelConfig
from .schema import SchemaError, check_history, read_json

REGISTRY_NAME = "runs.json"
REGISTRY_FORMAT = "aestudio-runs"
EVALUATION_NAME = "evaluation.json"
SETTINGS_ENV = "AESTUDIO_SETTINGS_DIR"
MAX_RECENT = 30
MAX_FOLDERS = 50
MAX_SCAN = 500  # run folders listed from one added folder
#: A run marked as running whose files changed this recently is still being written (else "quiet").
WRITING_WINDOW_S = 120.0
#: A hidden build folder older than this is a leftover of a killed save, not a save in progress.
STALE_BUILD_S = 600.0


# ---- the registry ----------------------------------------------------------------------------------
def registry_path() -> Path:
    folder = os.environ.get(SETTINGS_ENV)
    if folder:
        return Path(folder) / REGISTRY_NAME
    import platformdirs

    return Path(platformdirs.user_config_dir("aestudio")) / REGISTRY_NAME


def _atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` through a fresh temporary file and one rename (never half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _clean_paths(items: Any, most: int) -> list[str]:
    if not isinstance(items, list):
        return []
    out: list[str] = []
    for p in items:
        if isinstance(p, str) and p and "\x00" not in p and p not in out:
            out.append(p)
    return out[:most]


@dataclass
class RunRegistry:
    """The run folders the studio knows: recent runs and folders the user added."""

    recent: list[str] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)
    path: Path | None = None
    warning: str | None = None  # why the stored list could not be read (it is then empty)

    @classmethod
    def load(cls, path: str | Path | None = None) -> "RunRegistry":
        p = Path(path) if path is not None else registry_path()
        reg = cls(path=p)
        if not os.path.lexists(p):
            return reg
        try:
            d = read_json(p, max_bytes=1 << 20)
        except SchemaError as e:
            reg.warning = f"the list of runs in {_display(p)} was not read: {e}"
            return reg
        if not isinstance(d, dict) or d.get("format") != REGISTRY_FORMAT:
            reg.warning = f"the list of runs in {_display(p)} was not read: it is not an aestudio runs list"
            return reg
        reg.recent = _clean_paths(d.get("recent"), MAX_RECENT)
        reg.folders = _clean_paths(d.get("folders"), MAX_FOLDERS)
        return reg

    def save(self) -> None:
        """Store the lists (atomically). Raises OSError when the config folder is not writable."""
        p = self.path or registry_path()
        text = json.dumps({"format": REGISTRY_FORMAT, "format_version": 1, "recent": self.recent,
                           "folders": self.folders}, indent=1)
        _atomic_write_text(p, text)

    def add_recent(self, path: str | Path) -> None:
        p = os.path.abspath(str(path))
        self.recent = [p, *[r for r in self.recent if r != p]][:MAX_RECENT]

    def add_folder(self, path: str | Path) -> None:
        p = os.path.abspath(str(path))
        if p not in self.folders:
            self.folders = [*self.folders, p][-MAX_FOLDERS:]

    def remove(self, path: str | Path) -> None:
        p = os.path.abspath(str(path))
        self.recent = [r for r in self.recent if r != p]
        self.folders = [r for r in self.folders if r != p]

    def discover(self) -> list[Path]:
        """Run folders to list: every added folder (a run, or the runs one level inside it), then the
        recent runs that still exist; each once."""
        seen: set[str] = set()
        out: list[Path] = []

        def add(p: Path) -> None:
            key = os.path.abspath(str(p))
            if key not in seen:
                seen.add(key)
                out.append(Path(key))

        for folder in self.folders:
            for p in scan_folder(folder):
                add(p)
        for r in self.recent:
            if holds_run(r):
                add(Path(r))
        return out


def remember_run(path: str | Path) -> None:
    """Add a run folder to the recent runs (best effort: a read-only config folder is ignored)."""
    with contextlib.suppress(OSError):
        reg = RunRegistry.load()
        reg.add_recent(path)
        reg.save()


def scan_folder(folder: str | Path) -> list[Path]:
    """`folder` itself when it is a run, else the run folders directly inside it (sorted by name).
    Hidden entries (a save's build folders) and symbolic links are skipped."""
    p = Path(folder)
    if holds_run(p):
        return [p]
    if p.is_symlink() or not p.is_dir():
        return []
    try:
        names = sorted(os.listdir(p))
    except OSError:
        return []
    out = []
    for n in names:
        if n.startswith("."):
            continue
        child = p / n
        if holds_run(child):
            out.append(child)
            if len(out) >= MAX_SCAN:
                break
    return out


# ---- one run ---------------------------------------------------------------------------------------
FINAL_STAGES = ("train", "fine-tune")


@dataclass
class RunInfo:
    """What the runs table shows about one run folder, read without loading its weights."""

    path: Path
    status: str = "done"  # "done" | "writing" | "quiet" | "broken"
    error: str | None = None  # one line, when the folder cannot be read as a run
    model: dict[str, Any] = field(default_factory=dict)  # ModelConfig.to_dict()
    train: dict[str, Any] = field(default_factory=dict)  # TrainConfig.to_dict()
    meta: dict[str, Any] = field(default_factory=dict)  # data, classes, image_size, finished, ...
    history: list[dict[str, Any]] = field(default_factory=list)
    params: int | None = None
    evaluation: dict[str, float] | None = None  # evaluate metrics stored beside the run, if current
    warnings: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def epochs(self) -> int:
        return len(self.history)

    def final(self) -> dict[str, float]:
        """The last epoch record's losses ("train_total", "val_recon", ...) of the final stage."""
        last = next((r for r in reversed(self.history) if r.get("stage", "train") in FINAL_STAGES), None)
        if last is None and self.history:
            last = self.history[-1]
        if not last:
            return {}
        return {k: float(v) for k, v in last.items()
                if (k.startswith("train_") or k.startswith("val_")) and _finite(v)}

    def curve(self, key: str = "val_total") -> tuple[list[float], list[float]]:
        """(epochs, values) of one history key over the whole run (every stage, in order)."""
        xs, ys = [], []
        for i, r in enumerate(self.history, start=1):
            v = r.get(key)
            if _finite(v):
                xs.append(float(i))
                ys.append(float(v))
        return xs, ys

    def describe(self) -> str:
        """"dense sparse, code 16" style summary of the model."""
        if not self.model:
            return ""
        return f"{self.model.get('arch')} {self.model.get('kind')}, code {self.model.get('latent')}"


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _newest_mtime(path: Path) -> float:
    newest = 0.0
    for n in (CONFIG_NAME, WEIGHTS_NAME, HISTORY_NAME):
        with contextlib.suppress(OSError):
            newest = max(newest, os.lstat(path / n).st_mtime)
    return newest


def save_in_progress(path: str | Path, now: float | None = None) -> bool:
    """Whether a save is building this run folder right now: a recent hidden build folder beside it
    (checkpoint.save_run) or a Windows lock file."""
    p = Path(os.path.abspath(path))
    now = time.time() if now is None else now
    for build in _hidden_siblings(p, ".tmp"):
        with contextlib.suppress(OSError):
            if now - os.lstat(build).st_mtime < STALE_BUILD_S:
                return True
    return os.path.lexists(p.parent / f".{p.name}.aestudio-lock")


def run_status(path: str | Path, meta: dict[str, Any] | None, now: float | None = None,
               window_s: float = WRITING_WINDOW_S) -> str:
    """"writing", "quiet" or "done" (see the module documentation)."""
    now = time.time() if now is None else now
    if save_in_progress(path, now):
        return "writing"
    if (meta or {}).get("finished") == "running":
        newest = _newest_mtime(Path(path))
        return "writing" if newest > 0 and now - newest < window_s else "quiet"
    return "done"


def weights_stamp(path: Path) -> list[int] | None:
    """(size, mtime in ns) of a run's weights: an evaluation stored for other weights is stale."""
    try:
        st = os.stat(path / WEIGHTS_NAME)
    except OSError:
        return None
    return [int(st.st_size), int(st.st_mtime_ns)]


def read_evaluation(path: str | Path) -> tuple[dict[str, float] | None, str | None]:
    """(metrics, problem) of a run's evaluation.json. Metrics are None when there is none, it is
    broken (problem says why) or it was computed for other weights."""
    p = Path(path) / EVALUATION_NAME
    if not os.path.lexists(p):
        return None, None
    try:
        d = read_json(p, max_bytes=1 << 20)
    except SchemaError as e:
        return None, f"{EVALUATION_NAME} was not read: {e}"
    metrics = d.get("metrics") if isinstance(d, dict) else None
    if not isinstance(metrics, dict):
        return None, f"{EVALUATION_NAME} was not read: it has no metrics object"
    stamp = d.get("weights")
    if stamp is not None and stamp != weights_stamp(Path(path)):
        return None, None  # stale: the weights changed since
    return {str(k): float(v) for k, v in metrics.items() if _finite(v)}, None


def read_run_info(path: str | Path, now: float | None = None, window_s: float = WRITING_WINDOW_S) -> RunInfo:
    """Everything the runs table needs about one folder. Never raises for a bad folder: the returned
    info has status "broken" and a one-line `error` instead."""
    p = Path(os.path.abspath(str(path)))
    info = RunInfo(path=p)
    try:
        _read_into(info, now, window_s)
    except RunError as e:
        info.error, info.status = " ".join(str(e).split()), "broken"
    except (OSError, ValueError, TypeError, KeyError, AttributeError, RecursionError) as e:
        info.error = f"{_display(p)} could not be read as a run ({type(e).__name__})"
        info.status = "broken"
    return info


def _read_into(info: RunInfo, now: float | None, window_s: float) -> None:
    from .checkpoint import check_path_text

    p = info.path
    check_path_text(p)
    if p.is_symlink():
        raise RunError(f"{_display(p)} is a symbolic link, not a run folder")
    if not p.is_dir():
        raise RunError(f"no run folder at {_display(p)}")
    cfg, w = p / CONFIG_NAME, p / WEIGHTS_NAME
    if not cfg.is_file() or not w.is_file():
        missing = " and ".join(n for n, f in ((CONFIG_NAME, cfg), (WEIGHTS_NAME, w)) if not f.is_file())
        if save_in_progress(p, now):
            info.status = "writing"
            info.error = f"{_display(p)} is still being written (no {missing} yet)"
            return
        raise RunError(f"{_display(p)} is not a complete aestudio run: {missing} is missing")
    model_config, train_config, meta = read_config(cfg)
    info.model, info.train, info.meta = model_config.to_dict(), train_config.to_dict(), dict(meta)
    from .resources import count_params

    with contextlib.suppress(Exception):
        info.params = int(count_params(model_config)[0])
    hist = p / HISTORY_NAME
    if os.path.lexists(hist):
        try:
            records = read_json(hist)
            problem = check_history(records, HISTORY_NAME)
        except SchemaError as e:
            records, problem = [], f"{HISTORY_NAME} was not read: {e}"
        if problem:
            info.warnings.append(problem if problem.startswith(HISTORY_NAME + " was") else
                                 f"{HISTORY_NAME} was not read: {problem}")
        else:
            info.history = records
    info.evaluation, problem = read_evaluation(p)
    if problem:
        info.warnings.append(problem)
    info.status = run_status(p, info.meta, now, window_s)


# ---- evaluation on demand ----------------------------------------------------------------------
def evaluate_folder(path: str | Path, *, trust_data: bool = False, allow_download: bool = False,
                    labels_per_class: int = 10, seed: int = 0, store: bool = True,
                    progress: Callable[[str], None] | None = None) -> dict[str, float]:
    """`aestudio evaluate RUN` in a function: load the run and its own data, measure it on its
    validation split (baselines and probes fitted on its training split), and store the result as
    evaluation.json beside the run when `store` (silently skipped where the folder is read-only).

    Raises RunError / DatasetError / ConfigError with one line (the run, its data, a shape mismatch)."""
    import torch

    from .checkpoint import DOWNLOADABLE_SPECS, UntrustedDataError, load_run, resolve_data_spec
    from .datasets import DatasetError, load_dataset, split_indices
    from .evaluation import evaluate_run

    say = progress or (lambda message: None)
    say("loading the run")
    run = load_run(path)
    c, h, w = (int(v) for v in run.model_config.input_shape)
    if not run.data_spec:
        raise RunError(f"{_display(path)} does not record its data set, so it cannot be evaluated here")
    try:
        spec = resolve_data_spec(run.data_spec, run.path, trust=trust_data)
    except UntrustedDataError as e:
        raise RunError(f"{e}; it was not read") from None
    say(f"loading {spec}")
    try:
        data = load_dataset(spec, image_size=int(run.meta.get("image_size") or h), channels=int(run.meta.get("channels") or c),
                            allow_download=allow_download, background=run.meta.get("background", "auto"))
    except DatasetError as e:
        if spec in DOWNLOADABLE_SPECS and not allow_download:
            raise RunError(f"the run's data set {spec} is not on this computer ({' '.join(str(e).split())})") from None
        raise
    if run.meta.get("classes"):
        data = data.filter_classes(list(run.meta["classes"]))
    if tuple(data.shape) != (c, h, w):
        raise RunError(f"the run's model expects images of shape {c}x{h}x{w} but its data set {spec} has "
                       f"{'x'.join(map(str, data.shape))}")
    split_seed = int(run.meta.get("split_seed", run.train_config.seed))
    train_idx, val_idx = split_indices(data.n, run.train_config.val_fraction, split_seed)
    with torch.no_grad():
        metrics = evaluate_run(run, None, None, data.subset(val_idx), train_data=data.subset(train_idx),
                               labels_per_class=labels_per_class, seed=seed, progress=say)
    if store:
        record = {"format": "aestudio-evaluation", "format_version": 1, "metrics": metrics,
                  "data": run.data_spec, "split": "validation", "labels_per_class": labels_per_class, "seed": seed,
                  "weights": weights_stamp(Path(run.path))}
        with contextlib.suppress(OSError):
            _atomic_write_text(Path(run.path) / EVALUATION_NAME, json.dumps(record, indent=1))
    return metrics


# ---- comparing -----------------------------------------------------------------------------------
#: Evaluate metrics that depend on the model, and which way is better. Baselines that depend only on
#: the data (pca_mse, mean_image_mse, psnr_noisy, probes on PCA or pixels) are shown but not ranked.
METRIC_DIRECTION = {
    "recon_mse": "lower", "psnr_denoised": "higher", "elbo_nats": "lower", "probe_accuracy": "higher",
    "knn_accuracy": "higher", "silhouette": "higher", "anomaly_auroc": "higher",
}
METRIC_LABELS = {
    "recon_mse": "reconstruction MSE", "pca_mse": "PCA MSE (same code size)", "mean_image_mse": "mean-image MSE",
    "psnr_noisy": "PSNR noisy (dB)", "psnr_denoised": "PSNR denoised (dB)", "elbo_nats": "-ELBO (nats)",
    "probe_accuracy": "probe accuracy (codes)", "probe_accuracy_pca": "probe accuracy (PCA)",
    "probe_accuracy_raw": "probe accuracy (pixels)", "knn_accuracy": "k-NN accuracy", "silhouette": "silhouette",
    "anomaly_auroc": "anomaly AUROC",
}
METRIC_ORDER = ("recon_mse", "pca_mse", "mean_image_mse", "psnr_noisy", "psnr_denoised", "elbo_nats",
                "probe_accuracy", "probe_accuracy_pca", "probe_accuracy_raw", "knn_accuracy", "silhouette",
                "anomaly_auroc")
LOSS_ROWS = (("train_total", "final train loss"), ("val_total", "final validation loss"),
             ("val_recon", "final validation reconstruction"))


@dataclass
class Row:
    """One row of the comparison table: a value per run (None where a run has none)."""

    key: str
    label: str
    values: list[Any]
    section: str  # "settings" | "losses" | "evaluation"
    better: str | None = None  # "lower" | "higher" | None (not ranked)
    best: list[int] = field(default_factory=list)  # indices of the runs with the best value
    note: str = ""  # why a row is not ranked

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "label": self.label, "section": self.section, "values": self.values,
                "better": self.better, "best": self.best, "note": self.note}


@dataclass
class Comparison:
    runs: list[RunInfo]
    rows: list[Row]
    diff: list[tuple[str, list[Any]]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "runs": [{"name": r.name, "path": str(r.path), "status": r.status, "error": r.error,
                      "epochs": r.epochs, "final": r.final(), "evaluation": r.evaluation or {},
                      "warnings": list(r.warnings)} for r in self.runs],
            "rows": [row.to_dict() for row in self.rows],
            "config_diff": [{"key": k, "values": v} for k, v in self.diff],
        }


def best_indices(values: Sequence[Any], better: str, rel_tol: float = 1e-9) -> list[int]:
    """Indices of the best finite values (lower or higher is better); ties share the mark. No mark
    when fewer than two runs have a value (nothing to compare)."""
    finite = [(i, float(v)) for i, v in enumerate(values) if _finite(v)]
    if len(finite) < 2:
        return []
    target = min(v for _, v in finite) if better == "lower" else max(v for _, v in finite)
    return [i for i, v in finite if math.isclose(v, target, rel_tol=rel_tol, abs_tol=1e-12)]


def _loss_family(r: RunInfo) -> tuple:
    m = r.model
    return (m.get("loss"), m.get("output"), tuple(m.get("input_shape") or ()))


def compare(runs: Sequence[RunInfo]) -> Comparison:
    """The comparison table of `runs` (broken runs keep their column, with empty values)."""
    runs = list(runs)
    good = [r for r in runs if r.ok and r.model]
    rows: list[Row] = []

    def setting(key: str, label: str, fn) -> None:
        rows.append(Row(key, label, [fn(r) if r.ok and r.model else None for r in runs], "settings"))

    setting("arch", "architecture", lambda r: r.model.get("arch"))
    setting("kind", "kind", lambda r: r.model.get("kind"))
    setting("latent", "code size", lambda r: r.model.get("latent"))
    setting("hidden", "hidden sizes", lambda r: _sizes(r.model, "hidden"))
    if any(_sizes(r.model, "dense_layers") for r in good):  # only where a run has them (conv models)
        setting("dense_layers", "dense layers", lambda r: _sizes(r.model, "dense_layers"))
    setting("params", "parameters", lambda r: r.params)
    setting("data", "data", lambda r: r.meta.get("data"))
    setting("epochs", "epochs", lambda r: r.epochs)

    families = {_loss_family(r) for r in good}
    kinds = {r.model.get("kind") for r in good}
    for key, label in LOSS_ROWS:
        values = [r.final().get(key) if r.ok else None for r in runs]
        row = Row(key, label, values, "losses", better="lower")
        comparable = len(families) <= 1 and (key.endswith("_recon") or len(kinds) <= 1)
        if comparable:
            row.best = best_indices(values, "lower")
        else:
            row.better = None
            row.note = ("not ranked: the runs use different losses or image sizes" if len(families) > 1 else
                        "not ranked: the totals of different kinds add different penalties")
        rows.append(row)

    keys = [k for k in METRIC_ORDER if any(k in (r.evaluation or {}) for r in runs)]
    keys += sorted({k for r in runs for k in (r.evaluation or {}) if k not in METRIC_ORDER})
    datas = {r.meta.get("data") for r in good if r.evaluation}
    for key in keys:
        values = [(r.evaluation or {}).get(key) for r in runs]
        better = METRIC_DIRECTION.get(key)
        row = Row(key, METRIC_LABELS.get(key, key.replace("_", " ")), values, "evaluation", better=better)
        if better and len(datas) <= 1:
            row.best = best_indices(values, better)
        elif better:
            row.note = "not ranked: the runs were evaluated on different data"
        rows.append(row)
    return Comparison(runs, rows, config_diff(runs))


def _sizes(model: dict[str, Any], key: str) -> list[int] | None:
    """The layer sizes `key` ("hidden" or "dense_layers") as the model was built (defaults spelled out)."""
    try:
        cfg = ModelConfig.from_dict(model)
        return [int(v) for v in (cfg.hidden_sizes if key == "hidden" else cfg.dense_sizes)]
    except Exception:  # noqa: BLE001 - a value for display only
        return model.get(key)


def flat_settings(r: RunInfo) -> dict[str, Any]:
    """A run's settings as one flat dict ("model.latent", "train.lr", "data", ...), with defaults
    spelled out (hidden and dense layer sizes and per-layer activations as the model was built)."""
    out: dict[str, Any] = {}
    model = dict(r.model)
    if model:
        model["hidden"] = _sizes(r.model, "hidden")
        if "dense_layers" in model:
            model["dense_layers"] = _sizes(r.model, "dense_layers")
        if not model.get("activations"):
            model["activations"] = [model.get("activation")] * len(model["hidden"] or [])
        model.pop("activation", None)
    for k, v in model.items():
        out[f"model.{k}"] = v
    for k, v in r.train.items():
        out[f"train.{k}"] = v
    for k, v in r.meta.items():
        if k not in ("seconds", "finished"):
            out[k] = v
    return out


def config_diff(runs: Iterable[RunInfo]) -> list[tuple[str, list[Any]]]:
    """[(setting, value per run)] for every setting whose value differs between the readable runs
    (a setting a run does not have, and every setting of an unreadable run, shows as None)."""
    runs = list(runs)
    flats = [flat_settings(r) if r.ok and r.model else None for r in runs]
    keys: list[str] = []
    for f in flats:
        keys += [k for k in (f or {}) if k not in keys]
    out = []
    for k in keys:
        values = [None if f is None else f.get(k) for f in flats]
        seen = {json.dumps(v, sort_keys=True) for v, f in zip(values, flats) if f is not None}
        if len(seen) > 1:
            out.append((k, values))
    return out


def format_value(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if v == 0 or 1e-3 <= abs(v) < 1e5:
            return f"{v:.4g}"
        return f"{v:.3e}"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, (list, tuple)):
        return ",".join(format_value(x) for x in v) if v else "[]"
    return str(v)


def format_table(c: Comparison, mark: str = "*") -> str:
    """The comparison as plain text: a column per run, the best of each ranked row marked with `mark`."""
    head = ["", *[r.name for r in c.runs]]
    body = []
    section = None
    for row in c.rows:
        if row.section != section:
            section = row.section
            if section == "evaluation":
                body.append(["evaluate metrics:", *[""] * len(c.runs)])
        cells = [format_value(v) + (f" {mark}" if i in row.best else "") for i, v in enumerate(row.values)]
        arrow = {"lower": " (lower is better)", "higher": " (higher is better)"}.get(row.better or "", "")
        body.append([row.label + arrow, *cells])
    body.append(["status", *[r.status for r in c.runs]])
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip() for line in [head, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"{r.name}: {r.error}" for r in c.runs if r.error]
    notes += [f"{r.name}: {w}" for r in c.runs for w in r.warnings]
    if not any(r.evaluation for r in c.runs):
        notes.append("no evaluate metrics yet: pass --evaluate to measure the runs")
    if c.diff:
        lines += ["", "settings that differ:"]
        kw = max(len(k) for k, _ in c.diff)
        for k, values in c.diff:
            lines.append(f"  {k.ljust(kw)}  " + "  |  ".join(format_value(v) for v in values))
    if any(row.best for row in c.rows):
        lines += ["", f"{mark} best in its row"]
    return "\n".join(lines + ([""] + notes if notes else []))


__all__ = [
    "Comparison", "RunInfo", "RunRegistry", "Row", "best_indices", "run_status", "save_in_progress", "compare", "config_diff",
    "evaluate_folder", "flat_settings", "format_table", "read_evaluation", "read_run_info", "registry_path",
    "remember_run", "scan_folder",
]
