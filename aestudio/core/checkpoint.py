"""Run folders: JSON config + safetensors weights + JSON history. Never pickle.

    run/
      config.json        {"format": "aestudio-run", "format_version": 2, "model": {...}, "train": {...},
                          "data": "fashion-10k", "split_seed": 0, ...}
      weights.safetensors
      history.json       one record per epoch
      diagnoses.json     the training doctor's findings: [{"code", "epoch", "message", "remedy"}, ...]
      optimizer.safetensors, optimizer.json   the optimizer's state and hyper-parameters, to continue
                         training (written by core.trained.save_trained; optional)

Writing (`save_run`) is all or nothing:

* the new run is built in a fresh hidden sibling folder made by `tempfile.mkdtemp` (private, so a
  planted symlink such as `config.json.tmp -> /some/file` in the run folder is never written
  through); every file is created with O_EXCL | O_NOFOLLOW, fsynced, and given normal permissions
  (0666 / 0777 less the umask);
* it is swapped in with one atomic exchange of the two folders (Linux `renameat2`), or elsewhere
  with two renames (old run -> hidden backup, new -> target) that roll back on failure; the old
  version is deleted only once the new one is in place, so a reader sees the old run or the new
  one, never a mix. A backup left by a save killed between the two renames is put back by the
  next save or load;
* an existing run is replaced only with `overwrite=True`; `beside=True` saves next to it as
  `NAME-2`, `NAME-3`, ... instead; otherwise `RunExistsError`;
* saves into one parent folder are serialised by an advisory lock (`flock` on the parent folder;
  an O_EXCL lock file on Windows): a second writer waits up to `lock_timeout` s, then fails;
* a failed save (full disk, permissions) raises RunError with one line and leaves nothing behind.

Reading (`load_run`) trusts nothing in the folder: every JSON file goes through
`aestudio.core.schema` (size, depth, then field by field); the model's memory is checked before
it is built; each weight tensor's name, dtype (exactly the model's, float32 for parameters),
shape and finiteness are checked before it is loaded. A broken history.json or diagnoses.json
does not stop a run from opening (evaluation does not need them): it is reported in
`Run.warnings` and read as empty.

The data spec a run folder names is untrusted too (`resolve_data_spec`):

* bundled sets (digits, shapes, fashion-10k) are always fine;
* mnist / fashion-mnist are read from the local cache; downloading needs consent (the CLI's
  `--allow-download`; the studio only reads what is cached);
* a relative folder path is resolved against the run folder (not the current directory) and must
  stay inside it;
* an absolute folder path (what `aestudio train` records) is accepted unless it resolves to a
  system location (`/`, `/usr`, `/etc`, `/proc`, `/sys`, `/dev`, `/bin`, `/lib*`, `/var`, `/boot`,
  `/run`, `/snap`, a filesystem root, `/home` or the user's home itself, `/tmp` itself);
* anything else needs the user's consent (`--trust-data`, or a question in the studio).
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import shutil
import stat
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .config import ConfigError, ModelConfig, TrainConfig, dumps, from_json
from .models import Autoencoder
from .schema import SchemaError, check_diagnoses, check_history, read_json

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "weights.safetensors"
HISTORY_NAME = "history.json"
DIAGNOSES_NAME = "diagnoses.json"
OPTIMIZER_NAMES = ("optimizer.safetensors", "optimizer.json")  # written by core.trained.save_trained
RUN_NAMES = (CONFIG_NAME, WEIGHTS_NAME, HISTORY_NAME, DIAGNOSES_NAME, *OPTIMIZER_NAMES)

BUNDLED_SPECS = ("fashion-10k", "digits", "shapes")
DOWNLOADABLE_SPECS = ("mnist", "fashion-mnist")

#: Called with a step name ("tmpdir", "written", "backed_up", "swapped") during save_run; tests
#: use it to interrupt a save at a precise point.
_save_hook: Callable[[str], None] | None = None


class RunError(Exception):
    """A run folder that cannot be read or written. The message is meant for users."""


class RunExistsError(RunError):
    """The target folder already holds a run and replacing it was not asked for."""


class UntrustedDataError(RunError):
    """A run's data spec that needs the user's consent (a path out of the run folder or a system path)."""

    def __init__(self, spec: str, reason: str):
        super().__init__(f"the run's data {spec!r} {reason}")
        self.spec = spec
        self.reason = reason


@dataclass
class Run:
    model_config: ModelConfig
    train_config: TrainConfig
    model: Autoencoder
    history: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)  # data spec, split seed, notes
    path: Path | None = None
    diagnoses: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # files that were skipped (broken history, ...)

    @property
    def data_spec(self) -> str | None:
        return self.meta.get("data")


# ---- paths ---------------------------------------------------------------------------------------
def _display(path: Path | str) -> str:
    return os.fsencode(str(path)).decode("utf-8", "backslashreplace")


def check_path_text(path: str | Path) -> None:
    """Refuse a path that is not valid UTF-8 (it could not be written into config.json or reopened)."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        raise RunError(f"the path {_display(path)} is not valid UTF-8 text; choose a name without "
                       "such characters") from None
    if "\x00" in str(path):
        raise RunError("a path cannot contain a NUL character")


def holds_run(path: str | Path) -> bool:
    """True when `path` is a folder (not a symlink) holding a config.json or weights file."""
    p = Path(path)
    if p.is_symlink() or not p.is_dir():
        return False
    return any(os.path.lexists(p / n) for n in (CONFIG_NAME, WEIGHTS_NAME))


def beside_name(path: str | Path) -> Path:
    """The first free `NAME-2`, `NAME-3`, ... next to `path`."""
    p = Path(path)
    for i in range(2, 100_000):
        candidate = p.with_name(f"{p.name}-{i}")
        if not os.path.lexists(candidate):
            return candidate
    raise RunError(f"no free name beside {p}")  # pragma: no cover


def check_writable(path: str | Path, needed_bytes: int = 0) -> None:
    """Raise RunError unless a run folder can be written at `path` with `needed_bytes` of free space.

    Probes by creating and removing a temporary folder where the run would be built."""
    check_path_text(path)
    target = Path(os.path.abspath(path))
    if os.path.islink(target):
        raise RunError(f"cannot write the run folder {_display(target)}: it is a symbolic link")
    if os.path.lexists(target) and not os.path.isdir(target):
        raise RunError(f"cannot write the run folder {_display(target)}: it exists and is not a folder")
    anc = target.parent
    while not os.path.lexists(anc) and anc.parent != anc:
        anc = anc.parent
    if not os.path.isdir(anc):
        raise RunError(f"cannot write the run folder {_display(target)}: {_display(anc)} is not a folder")
    try:
        probe = tempfile.mkdtemp(prefix=".aestudio-probe-", dir=anc)
        os.rmdir(probe)
    except OSError as e:
        raise RunError(f"cannot write the run folder {_display(target)}: {e.strerror or e}") from None
    if needed_bytes:
        try:
            free = shutil.disk_usage(anc).free
        except OSError:
            return
        if free < needed_bytes:
            from .resources import fmt_bytes

            raise RunError(f"not enough free space for the run folder {_display(target)}: it needs about "
                           f"{fmt_bytes(needed_bytes)} but {_display(anc)} has {fmt_bytes(free)} free")


def estimated_run_bytes(model_config: ModelConfig) -> int:
    """Disk space a saved run of this model takes, with slack for the JSON files."""
    from .resources import count_params

    params, _ = count_params(model_config)
    return int(params * 4 * 1.2) + (1 << 20)


# ---- writing -------------------------------------------------------------------------------------
def _umask() -> int:
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _write_new(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | getattr(os, "O_BINARY", 0), mode)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_path(path: Path, directory: bool = False) -> None:
    flags = os.O_RDONLY | _NOFOLLOW | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        if directory:
            return  # Windows cannot open folders
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)


def _step(name: str) -> None:
    if _save_hook is not None:
        _save_hook(name)


@contextlib.contextmanager
def _lock(parent: Path, name: str, timeout: float):
    """Serialise saves into `parent`: flock on the folder itself (no file left behind)."""
    try:
        import fcntl
    except ImportError:  # Windows: an O_EXCL lock file
        lock = parent / f".{name}.aestudio-lock"
        deadline = time.monotonic() + timeout
        while True:
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                break
            except FileExistsError:
                if time.monotonic() >= deadline:
                    raise RunError(f"another save to {_display(parent / name)} is in progress "
                                   f"(or left {lock.name} behind: delete it if no save is running)") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(lock)
        return
    try:
        fd = os.open(parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        yield  # cannot lock here (an odd filesystem): go on unlocked; the save itself reports problems
        return
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise RunError(f"another process is saving to {_display(parent / name)}; "
                                   "try again when it has finished") from None
                time.sleep(0.05)
            except OSError:
                break  # flock not supported here
        yield
    finally:
        os.close(fd)  # releases the lock


_renameat2 = None


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE). False where not available."""
    global _renameat2
    if not sys.platform.startswith("linux"):
        return False
    if _renameat2 is None:
        try:
            fn = ctypes.CDLL(None, use_errno=True).renameat2
            fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
            fn.restype = ctypes.c_int
            _renameat2 = fn
        except (AttributeError, OSError):
            _renameat2 = False
    if not _renameat2:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if _renameat2(at_fdcwd, os.fsencode(str(a)), at_fdcwd, os.fsencode(str(b)), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, getattr(errno, "EOPNOTSUPP", errno.ENOTSUP)):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _hidden_siblings(target: Path, suffix: str) -> list[Path]:
    prefix = f".{target.name}."
    try:
        names = os.listdir(target.parent)
    except OSError:
        return []
    out = []
    for n in names:
        if n.startswith(prefix) and n.endswith(suffix):
            p = target.parent / n
            if stat.S_ISDIR(os.lstat(p).st_mode):
                out.append(p)
    return out


def _recover(target: Path) -> bool:
    """Put back a previous version left in a hidden backup by a save killed mid-swap (call locked)."""
    if os.path.lexists(target):
        return False
    backups = [b for b in _hidden_siblings(target, ".old") if (b / CONFIG_NAME).is_file()]
    if not backups:
        return False
    newest = max(backups, key=lambda b: os.lstat(b).st_mtime)
    os.rename(newest, target)
    return True


def _clean_stale(target: Path) -> None:
    """Remove hidden build / backup folders of `target` left by killed saves (call locked)."""
    stale = _hidden_siblings(target, ".tmp")
    if os.path.lexists(target):
        stale += _hidden_siblings(target, ".old")
    for p in stale:
        shutil.rmtree(p, ignore_errors=True)


def _choose_target(target: Path, overwrite: bool, beside: bool) -> tuple[Path, bool]:
    """(folder to write, whether it replaces an existing folder)."""
    if not os.path.lexists(target):
        return target, False
    if os.path.islink(target):
        raise RunError(f"{_display(target)} is a symbolic link; save the run to a real folder")
    if not os.path.isdir(target):
        raise RunError(f"{_display(target)} exists and is not a folder")
    entries = os.listdir(target)
    if not entries:
        return target, True
    if CONFIG_NAME in entries or WEIGHTS_NAME in entries:
        if overwrite:
            return target, True
        if beside:
            return beside_name(target), False
        raise RunExistsError(f"{_display(target)} already holds a run; choose another folder "
                             "or ask to replace it (--overwrite)")
    if beside:
        return beside_name(target), False
    raise RunError(f"{_display(target)} is a folder with other files in it, not a run; "
                   "choose a new or empty folder")


def _carry_extras(old: Path, new: Path) -> None:
    """Keep files the user put into the old run folder (notes, images): move them into the new one."""
    for name in os.listdir(old):
        if name in RUN_NAMES or os.path.lexists(new / name):
            continue
        with contextlib.suppress(OSError):
            os.rename(old / name, new / name)


def save_run(path: str | Path, model_config: ModelConfig, train_config: TrainConfig, model: Autoencoder,
             history: list[dict[str, Any]] | None = None, diagnoses: list[dict[str, Any]] | None = None,
             *, overwrite: bool = False, beside: bool = False, lock_timeout: float = 30.0,
             extra_files: dict[str, bytes] | None = None, **meta: Any) -> Path:
    """Write a run folder as one unit (see the module documentation). Returns the folder written:
    `path`, or with `beside=True` and a run already there, the new name next to it.

    Raises RunExistsError when `path` holds a run and neither `overwrite` nor `beside` is set, and
    RunError (one line) for anything else that stops the save; nothing is left half-written.
    `extra_files` ({name: bytes}, names from OPTIMIZER_NAMES) are written into the folder with the rest."""
    check_path_text(path)
    extra_files = dict(extra_files or {})
    if set(extra_files) - set(OPTIMIZER_NAMES):
        raise RunError(f"cannot save the run: unexpected file(s) {', '.join(sorted(set(extra_files) - set(OPTIMIZER_NAMES)))}")
    target = Path(os.path.abspath(path))  # absolute, but a symlink at target is not followed
    if target.parent == target:
        raise RunError(f"cannot save a run as {_display(target)}")
    meta.setdefault("split_seed", train_config.seed)
    try:
        config_text = dumps(model_config, train_config, **meta)
        history_text = json.dumps(history or [], indent=1)
        diagnoses_text = json.dumps(diagnoses, indent=1) if diagnoses is not None else None
    except (TypeError, ValueError) as e:
        raise RunError(f"cannot save the run: {e}") from None
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    mask = _umask()
    created: list[Path] = []
    p = target.parent
    while not os.path.lexists(p):
        created.append(p)
        p = p.parent
    tmp: Path | None = None
    ok = False
    try:
        for d in reversed(created):
            os.mkdir(d)
        with _lock(target.parent, target.name, lock_timeout):
            _recover(target)
            _clean_stale(target)
            final, replace = _choose_target(target, overwrite, beside)
            tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
            _step("tmpdir")
            weights = tmp / WEIGHTS_NAME
            save_file(tensors, str(weights), metadata={"format": "aestudio-run"})
            os.chmod(weights, 0o666 & ~mask)
            _fsync_path(weights)
            _write_new(tmp / CONFIG_NAME, config_text.encode("utf-8"), 0o666)
            _write_new(tmp / HISTORY_NAME, history_text.encode("utf-8"), 0o666)
            if diagnoses_text is not None:
                _write_new(tmp / DIAGNOSES_NAME, diagnoses_text.encode("utf-8"), 0o666)
            for name, data in extra_files.items():
                _write_new(tmp / name, data, 0o666)
            os.chmod(tmp, 0o777 & ~mask)
            _fsync_path(tmp, directory=True)
            _step("written")
            if not replace:
                os.rename(tmp, final)
                tmp = None
                _step("swapped")
            elif _exchange(tmp, final):  # tmp now holds the previous version
                _step("swapped")
                _carry_extras(tmp, final)
            else:
                backup = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".old", dir=final.parent))
                os.rmdir(backup)
                os.rename(final, backup)
                _step("backed_up")
                try:
                    os.rename(tmp, final)
                except OSError:
                    os.rename(backup, final)  # roll back
                    raise
                tmp = backup
                _step("swapped")
                _carry_extras(tmp, final)
            _fsync_path(final.parent, directory=True)
            ok = True
            return final
    except (OSError, SafetensorError) as e:
        reason = getattr(e, "strerror", None) or str(e) or type(e).__name__
        raise RunError(f"cannot save the run to {_display(target)}: {' '.join(str(reason).split())}") from None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if not ok:
            for d in created:  # innermost first
                with contextlib.suppress(OSError):
                    os.rmdir(d)


# ---- reading -------------------------------------------------------------------------------------
def read_config(path: str | Path) -> tuple[ModelConfig, TrainConfig, dict[str, Any]]:
    """A run's config.json (or a run folder's), validated; RunError naming the file and the field."""
    cfg_file = Path(path)
    if cfg_file.is_dir():
        cfg_file = cfg_file / CONFIG_NAME
    try:
        d = read_json(cfg_file)
        model_config, train_config, meta = from_json(d)  # frozen configs; input_shape is a tuple of ints
        problems = model_config.problems() + train_config.problems()
        if problems:
            raise ConfigError(problems[0])
    except (SchemaError, ConfigError) as e:
        raise RunError(f"cannot read {_display(cfg_file)}: {e}") from None
    return model_config, train_config, meta


_DTYPE_CODES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
                torch.int64: "I64", torch.int32: "I32", torch.bool: "BOOL", torch.uint8: "U8"}
_CODE_NAMES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64", "I64": "int64",
               "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool", "C64": "complex64",
               "C128": "complex128"}


def _names(keys) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")


def _read_weights(w_file: Path, model: Autoencoder) -> dict[str, torch.Tensor]:
    expected = model.state_dict()
    where = _display(w_file)
    need = sum(t.numel() * t.element_size() for t in expected.values())
    try:
        st = os.stat(w_file)
    except OSError as e:
        raise RunError(f"cannot read {where}: {e.strerror or e}") from None
    if not stat.S_ISREG(st.st_mode):
        raise RunError(f"cannot read {where}: it is not a regular file")
    if st.st_size > 2 * need + (16 << 20):
        raise RunError(f"the weights in {where} do not fit the model in {CONFIG_NAME}: the file has "
                       f"{st.st_size:,} bytes, the model about {need:,}")
    state: dict[str, torch.Tensor] = {}
    try:
        with safe_open(str(w_file), framework="pt") as f:
            keys = set(f.keys())
            # runs saved before the model had a per-pixel output offset and input standardisation
            optional = {"output_bias", "input_mean", "input_scale"}
            missing = set(expected) - keys - optional
            unexpected = keys - set(expected)
            if missing or unexpected:
                parts = ([f"missing {_names(missing)}"] if missing else []) + \
                        ([f"unexpected {_names(unexpected)}"] if unexpected else [])
                raise RunError(f"the weights in {where} do not fit the model in {CONFIG_NAME}: "
                               f"{'; '.join(parts)}")
            for k in sorted(keys):
                want = expected[k]
                sl = f.get_slice(k)
                code, shape = sl.get_dtype(), list(sl.get_shape())
                want_code = _DTYPE_CODES.get(want.dtype)
                if code != want_code:
                    raise RunError(f"cannot read {where}: tensor {k} has dtype {_CODE_NAMES.get(code, code)}, "
                                   f"expected {_CODE_NAMES.get(want_code, str(want.dtype))}")
                if shape != list(want.shape):
                    raise RunError(f"the weights in {where} do not fit the model in {CONFIG_NAME}: tensor {k} "
                                   f"has shape {shape}, the model needs {list(want.shape)}")
                t = f.get_tensor(k)
                if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                    raise RunError(f"cannot read {where}: tensor {k} holds NaN or infinite values")
                state[k] = t
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        first = " ".join(str(e).split()) or type(e).__name__
        raise RunError(f"cannot read {where}: not a valid safetensors file ({first})") from None
    if "output_bias" not in state:
        state["output_bias"] = torch.zeros_like(model.output_bias)
    if "input_mean" not in state:
        state["input_mean"] = torch.zeros_like(model.input_mean)
    if "input_scale" not in state:
        state["input_scale"] = torch.ones_like(model.input_scale)
    return state


def _read_optional(path: Path, check, warnings: list[str]) -> list:
    if not os.path.lexists(path):
        return []
    try:
        value = read_json(path)
    except SchemaError as e:
        warnings.append(f"{path.name} was not read: {e}")
        return []
    problem = check(value, path.name)
    if problem:
        warnings.append(f"{path.name} was not read: {problem}")
        return []
    return value


def load_run(path: str | Path, device: str | torch.device = "cpu") -> Run:
    """Open a run folder (or its config.json / weights.safetensors). Refuses anything else.

    Every problem raises RunError with one line naming the file (and the field or tensor), except
    a broken history.json / diagnoses.json, which is read as empty and reported in `Run.warnings`."""
    check_path_text(path)
    path = Path(path)
    if path.is_file():
        if path.name not in (CONFIG_NAME, WEIGHTS_NAME):
            raise RunError(
                f"{path.name} is not an aestudio run: open a run folder holding {CONFIG_NAME} and {WEIGHTS_NAME} "
                "(pickled files such as .pt, .pth or .pkl are refused because opening them can run code)"
            )
        path = path.parent
    if not path.is_dir() and not os.path.lexists(path):
        with contextlib.suppress(OSError, RunError):
            parent = Path(os.path.abspath(path)).parent
            if parent.is_dir():
                with _lock(parent, path.name, 0.0):
                    _recover(Path(os.path.abspath(path)))
    if not path.is_dir():
        raise RunError(f"no run folder at {_display(path)}")
    cfg_file, w_file = path / CONFIG_NAME, path / WEIGHTS_NAME
    if not cfg_file.is_file() or not w_file.is_file():
        raise RunError(f"{_display(path)} is not an aestudio run: it needs {CONFIG_NAME} and {WEIGHTS_NAME}")
    model_config, train_config, meta = read_config(cfg_file)
    from .resources import check_model_fits

    try:
        check_model_fits(model_config, device)
        model = Autoencoder(model_config)
    except (ConfigError, TypeError, ValueError) as e:
        raise RunError(f"cannot open {_display(path)}: {e}") from None
    state = _read_weights(w_file, model)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        detail = " ".join(str(e).split())
        raise RunError(f"the weights in {_display(w_file)} do not fit the model in {CONFIG_NAME}: {detail}") from None
    model.to(device).eval()
    warnings: list[str] = []
    history = _read_optional(path / HISTORY_NAME, check_history, warnings)
    diagnoses = _read_optional(path / DIAGNOSES_NAME, check_diagnoses, warnings)
    return Run(model_config, train_config, model, history, meta, path, diagnoses, warnings)


# ---- the data a run names ------------------------------------------------------------------------
_SYSTEM_TREES = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/run",
                 "/sbin", "/snap", "/sys", "/usr", "/var")
_SYSTEM_EXACT = ("/home", "/Users", "/tmp", "/mnt", "/media", "/root")


def _is_system_location(p: Path) -> bool:
    if p.parent == p:  # a filesystem or drive root
        return True
    s = p.as_posix()
    if any(s == t or s.startswith(t + "/") for t in _SYSTEM_TREES):
        return True
    if s in _SYSTEM_EXACT:
        return True
    with contextlib.suppress(RuntimeError, KeyError):
        if p == Path.home().resolve():
            return True
    windir = os.environ.get("SystemRoot") or os.environ.get("WINDIR")
    if windir:
        with contextlib.suppress(OSError, ValueError):
            w = Path(windir).resolve()
            if p == w or w in p.parents:
                return True
    return False


def data_spec_problem(spec: Any, run_dir: str | Path) -> tuple[str | None, str | None]:
    """(resolved spec, reason it needs the user's consent or None) for a run's data spec."""
    if spec is None:
        return None, None
    if not isinstance(spec, str) or not spec.strip():
        return None, "is not a data set name or a folder"
    key = spec.strip().lower()
    if key in BUNDLED_SPECS or key in DOWNLOADABLE_SPECS:
        return key, None
    if "\x00" in spec:
        return None, "is not a valid path"
    run_dir = Path(os.path.abspath(run_dir))
    p = Path(spec).expanduser() if spec.startswith("~") else Path(spec)
    try:
        if not p.is_absolute():
            resolved = (run_dir / p).resolve()
            inside = run_dir.resolve()
            if resolved != inside and inside not in resolved.parents:
                return str(resolved), "leaves the run folder"
            return str(resolved), None
        resolved = p.resolve()
    except (OSError, RuntimeError, ValueError):
        return None, "is not a valid path"
    if _is_system_location(resolved):
        return str(resolved), f"is a system location ({_display(resolved)})"
    return str(resolved), None


def resolve_data_spec(spec: Any, run_dir: str | Path, trust: bool = False) -> str | None:
    """The data spec to load for a run (see the module documentation for the rules).

    Raises UntrustedDataError when the spec needs consent and `trust` is False."""
    resolved, reason = data_spec_problem(spec, run_dir)
    if reason is not None and (not trust or resolved is None):
        raise UntrustedDataError(str(spec), reason)
    return resolved
