"""Nothing hostile gets through (issue 13): every attack class, each with a generated fixture.

Run folders, flags and disks: planted symlinks, kills and two writers during save, full and
read-only disks, wrong types in every config field, nested JSON, oversize dims, NaN flags,
hostile weights, untrusted data specs, the studio's questions. Image folders: disguised
PostScript, FIFOs and sockets, symlinks out of the folder, 16-bit bombs, hangs and cancel,
transparency. Each test checks the exact outcome: one clear line and exit code 2, no external
process, nothing outside the folder touched, nothing lost, no hang (pytest-timeout).
"""
from __future__ import annotations

import errno
import json
import math
import os
import signal
import socket
import stat
import struct
import subprocess
import sys
import textwrap
import threading
import tracemalloc
import zlib
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
import numpy as np
from PIL import Image

from aestudio import cli
from aestudio.core import checkpoint, resources
from aestudio.core.checkpoint import (RunError, RunExistsError, UntrustedDataError, load_run, resolve_data_spec,
                                      save_run)
from aestudio.core.config import ConfigError, ModelConfig, TrainConfig
from aestudio.core.models import Autoencoder
from aestudio.core.resources import ResourceError, check_training_fits, count_params, estimate
from aestudio.core.schema import MODEL_FIELDS, TRAIN_FIELDS, json_depth, read_json
from aestudio.core.training import Finished, Trainer
from aestudio.core.datasets import DatasetError, ImageSet, load_dataset, parse_background
from aestudio.core.datasets import folder as folder_mod

pytestmark = [pytest.mark.usefixtures("torch_one_thread"), pytest.mark.timeout(60)]

TINY = ["train", "--data", "digits", "--arch", "dense", "--kind", "ae", "--latent", "2", "--hidden", "8",
        "--epochs", "1", "--threads", "1", "--quiet"]


def tiny_configs(latent: int = 2) -> tuple[ModelConfig, TrainConfig]:
    return (ModelConfig(arch="dense", latent=latent, hidden=[8], input_shape=(1, 8, 8)),
            TrainConfig(epochs=1, batch_size=32, device="cpu"))


def make_run(path, latent: int = 2, **kw) -> Path:
    mc, tc = tiny_configs(latent)
    torch.manual_seed(latent)
    kw.setdefault("data", "digits")
    return save_run(path, mc, tc, Autoencoder(mc), history=[{"stage": "train", "epoch": 1, "total": 0.1}], **kw)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (symlinks as their target text), to prove nothing changed."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_symlink():
            out[str(p.relative_to(folder))] = b"->" + os.readlink(p).encode()
        elif p.is_file():
            out[str(p.relative_to(folder))] = p.read_bytes()
    return out


def one_line_error(capsys, argv, fragment) -> str:
    rc = cli.main(argv)
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert rc == 2, err
    assert "Traceback" not in err
    last = err.splitlines()[-1]
    assert last.startswith("aestudio: error: "), err
    assert fragment.lower() in last.lower(), last
    assert "epoch 1/1" not in captured.out  # refused before any training
    return last


def hidden_entries(parent: Path) -> list[str]:
    return sorted(n for n in os.listdir(parent) if n.startswith("."))


# ---- writing run folders ----------------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_planted_tmp_symlinks_are_never_written_through(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "precious.txt"
    victim.write_text("do not touch")
    run = make_run(tmp_path / "runs" / "r")
    for name in ("config.json.tmp", "weights.safetensors.tmp", "history.json.tmp", "diagnoses.json.tmp"):
        (run / name).symlink_to(victim)
    before = snapshot(outside)
    out = make_run(run, latent=3, overwrite=True)
    assert out == run
    assert snapshot(outside) == before
    for name in ("config.json", "weights.safetensors", "history.json"):
        assert not (run / name).is_symlink() and (run / name).is_file()
    assert load_run(run).model_config.latent == 3
    assert hidden_entries(run.parent) == []  # no build or backup folder left


@pytest.mark.timeout(60)
def test_files_get_normal_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        run = make_run(tmp_path / "r", diagnoses=[{"code": "x", "epoch": 1, "message": "m", "remedy": "r"}])
    finally:
        os.umask(old)
    assert stat.S_IMODE(run.stat().st_mode) == 0o755
    for name in ("config.json", "weights.safetensors", "history.json", "diagnoses.json"):
        assert stat.S_IMODE((run / name).stat().st_mode) == 0o644, name
    assert load_run(run).diagnoses[0]["code"] == "x"


@pytest.mark.timeout(60)
def test_existing_run_is_replaced_only_when_asked(tmp_path):
    run = make_run(tmp_path / "r")
    (run / "notes.txt").write_text("mine")
    with pytest.raises(RunExistsError, match="already holds a run"):
        make_run(run, latent=3)
    assert load_run(run).model_config.latent == 2
    beside = make_run(run, latent=3, beside=True)
    assert beside == tmp_path / "r-2" and load_run(beside).model_config.latent == 3
    assert make_run(run, latent=4, beside=True) == tmp_path / "r-3"
    assert make_run(run, latent=5, overwrite=True) == run
    assert load_run(run).model_config.latent == 5
    assert (run / "notes.txt").read_text() == "mine"  # the user's own files are kept
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "photo.png").write_bytes(b"x")
    with pytest.raises(RunError, match="not a run"):
        make_run(tmp_path / "other", overwrite=True)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["safetensors", "os_write"])
def test_full_disk_loses_nothing_and_leaves_nothing(tmp_path, monkeypatch, how):
    good = make_run(tmp_path / "r")
    before = snapshot(good)

    def enospc(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(checkpoint, "save_file" if how == "safetensors" else "_write_new", enospc)
    with pytest.raises(RunError) as e:
        make_run(good, latent=3, overwrite=True)
    assert str(e.value).count("\n") == 0 and "No space left on device" in str(e.value)
    assert snapshot(good) == before and load_run(good).model_config.latent == 2
    new = tmp_path / "a" / "b" / "new"
    with pytest.raises(RunError, match="No space left"):
        make_run(new)
    assert not (tmp_path / "a").exists()  # no empty folders left behind
    assert hidden_entries(tmp_path) == []


@pytest.mark.timeout(60)
def test_safetensor_error_becomes_one_line(tmp_path, monkeypatch):
    from safetensors import SafetensorError

    def broken(*a, **k):
        raise SafetensorError("Error while serializing: IoError(Os { code: 28, kind: StorageFull })")

    monkeypatch.setattr(checkpoint, "save_file", broken)
    with pytest.raises(RunError, match="cannot save the run to"):
        make_run(tmp_path / "r")
    assert not (tmp_path / "r").exists()


KILL_SCRIPT = textwrap.dedent("""
    import sys, time, torch
    from aestudio.core import checkpoint
    from aestudio.core.config import ModelConfig, TrainConfig
    from aestudio.core.models import Autoencoder
    target, step, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    if mode == "renames":
        checkpoint._exchange = lambda a, b: False  # the two-rename fallback (non-Linux)
    def hook(s):
        if s == step:
            print("AT", s, flush=True)
            time.sleep(120)
    checkpoint._save_hook = hook
    mc = ModelConfig(arch="dense", latent=7, hidden=[8], input_shape=(1, 8, 8))
    checkpoint.save_run(target, mc, TrainConfig(device="cpu"), Autoencoder(mc), data="digits", overwrite=True)
    print("DONE", flush=True)
""")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("step, mode, expect", [("written", "exchange", 2), ("swapped", "exchange", 7),
                                                ("backed_up", "renames", 2)])
def test_kill_during_save_leaves_old_or_new_never_a_mix(tmp_path, step, mode, expect):
    target = make_run(tmp_path / "r", latent=2)
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(target), step, mode],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("AT"), proc.stderr.read()
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    run = load_run(target)  # loads completely (weights fit the config), or recovers the backup
    assert run.model_config.latent == expect
    make_run(target, latent=9, overwrite=True)  # the next save cleans up what the killed one left
    assert load_run(target).model_config.latent == 9
    assert hidden_entries(tmp_path) == []


@pytest.mark.timeout(60)
def test_two_writers_both_survive_or_one_fails_clearly(tmp_path, monkeypatch):
    import time

    entered = threading.Event()

    def slow(step):
        if step == "written":
            entered.set()
            time.sleep(0.3)

    monkeypatch.setattr(checkpoint, "_save_hook", slow)
    target = tmp_path / "r"
    results, errors = [], []

    def writer(latent, **kw):
        try:
            results.append(make_run(target, latent=latent, **kw))
        except RunError as e:
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(n,), kwargs={"beside": True}) for n in (3, 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == [target, tmp_path / "r-2"] and not errors
    assert sorted(load_run(p).model_config.latent for p in results) == [3, 4]

    # without beside: the second writer fails clearly, the first run survives
    results.clear()
    threads = [threading.Thread(target=writer, args=(n,)) for n in (5, 6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(errors) == 2 and all("already holds a run" in str(e) for e in errors)
    # a writer that cannot get the lock in time says so
    entered.clear()
    t = threading.Thread(target=writer, args=(8,), kwargs={"overwrite": True})
    t.start()
    assert entered.wait(10)
    with pytest.raises(RunError, match="another process is saving"):
        make_run(target, latent=9, overwrite=True, lock_timeout=0.05)
    t.join(30)
    assert load_run(target).model_config.latent == 8


@pytest.mark.timeout(60)
def test_non_utf8_paths_are_refused_with_one_line(tmp_path, capsys):
    bad = tmp_path / os.fsdecode(b"run\xff")
    with pytest.raises(RunError, match="not valid UTF-8"):
        make_run(bad)
    one_line_error(capsys, [*TINY, "--out", str(bad)], "not valid UTF-8")
    assert os.listdir(tmp_path) == []


# ---- the CLI's output folder ----------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_unwritable_out_is_refused_before_training(tmp_path, capsys, monkeypatch):
    one_line_error(capsys, [*TINY, "--out", "/proc/self"], "symbolic link")
    one_line_error(capsys, [*TINY, "--out", "/proc/1/newrun"], "cannot write the run folder")
    (tmp_path / "file").write_text("x")
    one_line_error(capsys, [*TINY, "--out", str(tmp_path / "file")], "not a folder")

    def denied(*a, **k):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(checkpoint.tempfile, "mkdtemp", denied)  # a read-only folder, even for root
    one_line_error(capsys, [*TINY, "--out", str(tmp_path / "ro" / "run")], "Permission denied")
    assert not (tmp_path / "ro").exists()


@pytest.mark.timeout(60)
def test_full_disk_is_refused_before_training(tmp_path, capsys, monkeypatch):
    import shutil as _shutil

    monkeypatch.setattr(checkpoint.shutil, "disk_usage", lambda p: _shutil._ntuple_diskusage(10**9, 10**9, 1000))
    one_line_error(capsys, [*TINY, "--out", str(tmp_path / "run")], "not enough free space")
    assert not (tmp_path / "run").exists()


@pytest.mark.timeout(60)
def test_disk_full_while_saving_gives_one_line(tmp_path, capsys, monkeypatch):
    def enospc(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(checkpoint, "save_file", enospc)
    rc = cli.main([*TINY, "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "Traceback" not in err
    assert err.splitlines()[-1].startswith("aestudio: error: cannot save the run to") and "No space left" in err
    assert os.listdir(tmp_path) == []


@pytest.mark.timeout(120)
def test_cli_saves_beside_unless_overwrite(tmp_path, capsys):
    out = tmp_path / "ae"
    assert cli.main([*TINY, "--out", str(out)]) == 0
    first = snapshot(out)
    capsys.readouterr()
    assert cli.main([*TINY, "--latent", "3", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"saved this one beside it as {tmp_path / 'ae-2'}" in err
    assert snapshot(out) == first and load_run(tmp_path / "ae-2").model_config.latent == 3
    assert cli.main([*TINY, "--latent", "4", "--out", str(out), "--overwrite"]) == 0
    assert load_run(out).model_config.latent == 4 and not (tmp_path / "ae-3").exists()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("reason, rc", [("nan", 1), ("stopped", 130)])
def test_failed_run_never_replaces_a_good_one(tmp_path, capsys, monkeypatch, reason, rc):
    good = make_run(tmp_path / "ae")
    before = snapshot(good)

    def failing(self):
        yield Finished(reason, f"The run ended: {reason}.", 0)

    monkeypatch.setattr(Trainer, "run", failing)
    assert cli.main([*TINY, "--out", str(good), "--overwrite"]) == rc
    captured = capsys.readouterr()
    assert snapshot(good) == before
    assert f"beside it as {tmp_path / 'ae-2'}" in captured.err and "never replaces" in captured.err
    assert str(tmp_path / "ae-2") in captured.out
    assert load_run(tmp_path / "ae-2").meta["finished"] == reason


# ---- flags -----------------------------------------------------------------------------------------
@pytest.mark.timeout(60)
@pytest.mark.parametrize("extra, fragment", [
    (["--seed", "-1"], "--seed"),
    (["--seed", str(10**29)], "--seed"),
    (["--latent", "1000000000"], "--latent"),
    (["--threads", "100000"], "--threads"),
    (["--threads", "0"], "--threads"),
    (["--grad-clip", "nan"], "--grad-clip"),
    (["--weight-decay", "nan"], "--weight-decay"),
    (["--lr", "inf"], "--lr"),
    (["--lr", "nan"], "--lr"),
    (["--epochs", str(10**12)], "--epochs"),
    (["--batch-size", "0"], "--batch-size"),
    (["--val-fraction", "nan"], "--val-fraction"),
    (["--dropout", "nan"], "--dropout"),
    (["--beta", "-inf"], "--beta"),
    (["--image-size", "100000"], "--image-size"),
    (["--hidden", "0"], "--hidden"),
    (["--hidden", str(2**62)], "--hidden"),
    (["--pretrain-epochs", "-1"], "--pretrain-epochs"),
])
def test_every_flag_is_range_checked(tmp_path, capsys, extra, fragment):
    out = tmp_path / "x"
    one_line_error(capsys, [*TINY, *extra, "--out", str(out)], fragment)
    assert not out.exists()


@pytest.mark.timeout(60)
def test_evaluate_flags_are_range_checked(tmp_path, capsys):
    run = make_run(tmp_path / "r")
    one_line_error(capsys, ["evaluate", str(run), "--seed", "-1"], "--seed")
    one_line_error(capsys, ["evaluate", str(run), "--labels-per-class", "-3"], "--labels-per-class")
    one_line_error(capsys, ["evaluate", str(run), "--threads", "0"], "--threads")


@pytest.mark.timeout(60)
def test_too_big_for_memory_is_refused_with_numbers(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(resources, "available_bytes", lambda device=None: 50 * 10**6)
    last = one_line_error(capsys, ["train", "--data", "digits", "--image-size", "128", "--arch", "dense",
                                   "--hidden", "4096", "--epochs", "1", "--quiet", "--out", str(tmp_path / "x")],
                          "needs about")
    assert "50.0 MB free" in last and "GB" in last
    assert not (tmp_path / "x").exists()


# ---- config.json, field by field -------------------------------------------------------------------
BAD_VALUES = {
    "int": ["8", 8.5, True, None, [1], -1, 2**62, float("nan")],
    "float": ["0.1", True, None, [0.1], {"a": 1}, float("nan"), float("inf"), -float("inf")],
    "bool": [1, "true", None, 0.0],
    "str": [5, None, [], {}, True],
    "shape": [5, [1, 8], [1, 8, "8"], [1, 2**62, 8], [1, 8, 8.0], "1,8,8"],
    "int_list": ["8", [0], [2**62], [10**7], [True], [8.0], 8],
    "str_list": ["relu", ["relu", 5], [None]],
}


def _cases():
    for section, fields in (("model", MODEL_FIELDS), ("train", TRAIN_FIELDS)):
        for name, spec in fields.items():
            for value in BAD_VALUES[spec.kind]:
                if value is None and spec.optional:
                    continue
                yield pytest.param(section, name, value, id=f"{section}.{name}={json.dumps(value)[:20]}")


def write_config(run: Path, edit) -> None:
    d = json.loads((run / "config.json").read_text())
    edit(d)
    (run / "config.json").write_text(json.dumps(d))


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("good") / "r")


def copy_run(good_run: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(good_run, dest)
    return dest


@pytest.mark.timeout(60)
@pytest.mark.parametrize("section, name, value", list(_cases()))
def test_wrong_types_in_every_config_field(good_run, tmp_path, section, name, value):
    run = copy_run(good_run, tmp_path / "r")
    write_config(run, lambda d: d[section].__setitem__(name, value))
    with pytest.raises(RunError) as e:
        load_run(run)
    message = str(e.value)
    assert "\n" not in message and message.startswith(f"cannot read {run / 'config.json'}: ")
    assert f"{section}.{name}" in message, message
    assert "Error" not in message and "newer" not in message


@pytest.mark.timeout(60)
@pytest.mark.parametrize("field, value, fragment", [
    ("format_version", -5, "format_version must be at least 1, got -5"),
    ("format_version", True, "format_version must be a whole number"),
    ("format_version", "1", 'format_version must be a whole number from 1 to 4, got "1"'),
    ("format_version", 7, "newer than this aestudio"),
    ("classes", [0, 1], "classes[0] must be text"),
    ("data", 5, "data must be text"),
    ("data", ["digits"], "data must be text"),
    ("split_seed", -1, "split_seed must be at least 0"),
    ("split_seed", "0", "split_seed must be a whole number"),
    ("split_seed", 10**29, "split_seed must be at most"),
    ("image_size", 10**9, "image_size must be at most"),
    ("model", [], "model must be an object"),
])
def test_run_level_fields_are_checked(good_run, tmp_path, field, value, fragment):
    run = copy_run(good_run, tmp_path / "r")
    write_config(run, lambda d: d.__setitem__(field, value))
    with pytest.raises(RunError) as e:
        load_run(run)
    assert fragment in str(e.value) and "\n" not in str(e.value)
    if field == "format_version" and value != 7:
        assert "newer" not in str(e.value)


@pytest.mark.timeout(60)
def test_config_problems_in_dataclasses_reach_the_studio():
    assert any("latent size" in p for p in ModelConfig(latent="8").problems())
    assert any("batch norm must be true or false" in p for p in ModelConfig(batch_norm=1).problems())
    assert any("gradient clipping" in p for p in TrainConfig(grad_clip=float("nan")).problems())
    assert any("seed" in p for p in TrainConfig(seed=-1).problems())
    assert any("validation fraction" in p for p in TrainConfig(val_fraction="0.2").problems())
    with pytest.raises(ConfigError):
        TrainConfig(lr=float("inf")).validate()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("hidden, arch, latent", [([10**7], "dense", 2), ([10**6], "recurrent", 2),
                                                  ([2**62], "dense", 2), ([8], "dense", 10**9)])
def test_absurd_dims_are_refused_before_allocating(good_run, tmp_path, hidden, arch, latent):
    run = copy_run(good_run, tmp_path / "r")
    write_config(run, lambda d: d["model"].update(hidden=hidden, arch=arch, latent=latent))
    with pytest.raises(RunError, match="must be"):
        load_run(run)


@pytest.mark.timeout(60)
def test_memory_is_checked_before_building(good_run, tmp_path, monkeypatch):
    run = copy_run(good_run, tmp_path / "r")
    write_config(run, lambda d: d["model"].update(hidden=[65536], input_shape=[1, 256, 256]))
    monkeypatch.setattr(resources, "available_bytes", lambda device=None: 3 * 10**9)
    with pytest.raises(RunError, match=r"needs about .* GB .* but this machine has 3.0 GB free"):
        load_run(run)
    mc = ModelConfig(arch="dense", hidden=[65536] * 3, input_shape=(3, 4096, 4096))
    with pytest.raises(ResourceError, match="far beyond any machine"):
        check_training_fits(mc, 32, 1000)


def test_estimate_counts_parameters_like_the_model():
    for cfg in (ModelConfig(arch="dense", hidden=[16, 8], latent=3, input_shape=(1, 8, 8), tied=True),
                ModelConfig(arch="conv", hidden=[4, 8], latent=3, input_shape=(3, 16, 16), batch_norm=True),
                ModelConfig(arch="recurrent", hidden=[6], latent=3, input_shape=(1, 8, 8), rnn_cell="gru"),
                ModelConfig(arch="dense", kind="vae", hidden=[8], latent=2, input_shape=(1, 8, 8))):
        model = Autoencoder(cfg)
        real = sum(v.numel() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked"))
        assert count_params(cfg)[0] == real
    est = estimate(ModelConfig(arch="dense", hidden=[512], latent=16, input_shape=(1, 512, 512)), 32, 1797)
    assert est.param_bytes > 10**9 and est.data_bytes == 1797 * 512 * 512 * 4


# ---- nested and oversized JSON ---------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_nested_config_is_refused_quickly(good_run, tmp_path):
    run = copy_run(good_run, tmp_path / "r")
    text = (run / "config.json").read_text()
    (run / "config.json").write_text(text[:-1] + ', "notes": ' + "[" * 200_000 + "]" * 200_000 + "}")
    with pytest.raises(RunError, match=r"config.json: it is nested 200,001 levels deep"):
        load_run(run)
    (run / "config.json").write_text(" " * (11 * 2**20))
    with pytest.raises(RunError, match="too large"):
        load_run(run)
    assert json_depth(b'{"a": "[[[[", "b": [1, {"c": 2}]}') == 3


@pytest.mark.timeout(60)
def test_broken_history_is_reported_not_fatal(good_run, tmp_path, capsys):
    run = copy_run(good_run, tmp_path / "r")
    (run / "history.json").write_text("[" * 100_000 + "]" * 100_000)
    (run / "diagnoses.json").write_text(json.dumps([{"code": 5}]))
    loaded = load_run(run)
    assert loaded.history == [] and loaded.diagnoses == []
    assert any(w.startswith("history.json was not read: it is nested") for w in loaded.warnings)
    assert any("diagnoses.json[0].code must be text" in w for w in loaded.warnings)
    (run / "history.json").write_text(json.dumps([{"epoch": [1]}]))
    assert "history.json[0].epoch must be a number or text" in load_run(run).warnings[0]


@pytest.mark.timeout(10)
def test_fifo_config_does_not_hang(tmp_path):
    from aestudio.core.schema import SchemaError

    os.mkfifo(tmp_path / "config.json")
    with pytest.raises(SchemaError, match="not a regular file"):
        read_json(tmp_path / "config.json")


# ---- weights ---------------------------------------------------------------------------------------
@pytest.mark.timeout(60)
@pytest.mark.parametrize("dtype", [torch.float64, torch.int64, torch.bool, torch.complex64, torch.float16])
def test_weights_of_other_dtypes_are_refused(good_run, tmp_path, dtype):
    run = copy_run(good_run, tmp_path / "r")
    state = load_file(str(run / "weights.safetensors"))
    state["to_code.weight"] = state["to_code.weight"].to(dtype)
    save_file(state, str(run / "weights.safetensors"))
    with pytest.raises(RunError) as e:
        load_run(run)
    msg = str(e.value)
    assert "weights.safetensors" in msg and "to_code.weight" in msg and "expected float32" in msg
    assert str(dtype).replace("torch.", "") in msg


@pytest.mark.timeout(60)
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused(good_run, tmp_path, bad):
    run = copy_run(good_run, tmp_path / "r")
    state = load_file(str(run / "weights.safetensors"))
    state["output_bias"][0, 0, 0] = bad
    save_file(state, str(run / "weights.safetensors"))
    with pytest.raises(RunError, match="tensor output_bias holds NaN or infinite values"):
        load_run(run)


@pytest.mark.timeout(60)
def test_weights_that_do_not_fit_say_why_in_full(good_run, tmp_path):
    run = copy_run(good_run, tmp_path / "r")
    write_config(run, lambda d: d["model"].update(hidden=[16]))
    with pytest.raises(RunError) as e:
        load_run(run)
    msg = str(e.value)
    assert "do not fit the model in config.json: tensor" in msg and "has shape [64, 8], the model needs [64, 16]" in msg
    state = load_file(str(good_run / "weights.safetensors"))
    state["extra"] = torch.zeros(1)
    save_file(state, str(run / "weights.safetensors"))
    write_config(run, lambda d: d["model"].update(hidden=[8]))
    with pytest.raises(RunError, match="unexpected extra"):
        load_run(run)


# ---- the data a received run names -----------------------------------------------------------------
@pytest.mark.timeout(60)
def test_data_spec_rules(tmp_path):
    run = tmp_path / "r"
    (run / "images").mkdir(parents=True)
    assert resolve_data_spec("digits", run) == "digits"
    assert resolve_data_spec("MNIST", run) == "mnist"
    assert resolve_data_spec("images", run) == str((run / "images").resolve())  # against the run folder
    assert resolve_data_spec(str(tmp_path), run) == str(tmp_path.resolve())  # what `train` records
    for spec, reason in [("../../../../usr/share", "leaves the run folder"), ("../", "leaves the run folder"),
                         ("/usr/share", "system location"), ("/", "system location"), ("/etc", "system location"),
                         ("/proc/self", "system location"), (5, "not a data set name")]:
        with pytest.raises(UntrustedDataError, match=reason):
            resolve_data_spec(spec, run)
    assert resolve_data_spec("../../../../usr/share", run, trust=True) == str((run / "../../../../usr/share").resolve())


@pytest.mark.timeout(60)
def test_evaluate_refuses_traversal_without_trust_data(good_run, tmp_path, capsys, monkeypatch):
    import aestudio.core.datasets as datasets

    calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: calls.append(a) or 1 / 0)
    run = copy_run(good_run, tmp_path / "r")
    write_config(run, lambda d: d.__setitem__("data", "../../../../usr/share"))
    last = one_line_error(capsys, ["evaluate", str(run)], "leaves the run folder")
    assert "--trust-data" in last and calls == []
    write_config(run, lambda d: d.__setitem__("data", "/usr/share"))
    assert "--trust-data" in one_line_error(capsys, ["evaluate", str(run)], "system location")


@pytest.mark.timeout(60)
def test_evaluate_does_not_download_without_consent(good_run, tmp_path, capsys, monkeypatch):
    import aestudio.core.datasets as datasets
    from aestudio.core.datasets import DatasetError

    seen = []

    def fake_mnist(key, *, cache_dir=None, allow_download=True, progress=None):
        seen.append(allow_download)
        raise DatasetError("MNIST is not installed: put the files into the cache.")

    monkeypatch.setattr(datasets, "load_mnist_family", fake_mnist)
    run = copy_run(good_run, tmp_path / "r")
    write_config(run, lambda d: d.__setitem__("data", "mnist"))
    one_line_error(capsys, ["evaluate", str(run)], "pass --allow-download")
    assert seen == [False]
    assert cli.main(["evaluate", str(run), "--allow-download"]) == 2
    assert seen == [False, True]


# ---- the studio --------------------------------------------------------------------------------------
def _hostile_runs(good_run: Path, root: Path) -> dict[str, Path]:
    runs = {}
    r = runs["nan"] = copy_run(good_run, root / "w_nan")
    state = load_file(str(r / "weights.safetensors"))
    state["to_code.weight"][:] = float("nan")
    save_file(state, str(r / "weights.safetensors"))
    r = runs["types"] = copy_run(good_run, root / "types")
    write_config(r, lambda d: d["model"].update(latent="8"))
    r = runs["classes"] = copy_run(good_run, root / "classes")
    write_config(r, lambda d: d.__setitem__("classes", [0, 1]))
    r = runs["nested"] = copy_run(good_run, root / "nested")
    (r / "config.json").write_text("[" * 50_000 + "]" * 50_000)
    r = runs["float64"] = copy_run(good_run, root / "f64")
    state = load_file(str(r / "weights.safetensors"))
    save_file({k: v.double() for k, v in state.items()}, str(r / "weights.safetensors"))
    return runs


@pytest.mark.timeout(120)
def test_studio_open_shows_one_line_for_hostile_runs(qtbot, good_run, tmp_path):
    from aestudio.app import create_window

    w = create_window("digits")
    qtbot.addWidget(w)
    for kind, run in _hostile_runs(good_run, tmp_path).items():
        with qtbot.waitSignal(w.runOpenFailed, timeout=20000) as blocker:
            w.open_run(run)
        message = blocker.args[0]
        assert "\n" not in message, kind
        assert "TypeError" not in message and "AttributeError" not in message, message
        assert "cannot read" in message or "do not fit" in message, message
        assert w.message_bar.message.startswith("Could not open the run: ")


@pytest.mark.timeout(120)
def test_studio_asks_before_replacing_and_before_reading_outside(qtbot, good_run, tmp_path):
    from aestudio.app import create_window

    w = create_window("digits")
    qtbot.addWidget(w)
    asked = []
    w.ask = lambda kind, text: asked.append((kind, text)) or answers[kind]
    answers = {"trust_data": "no", "replace_run": "cancel"}
    run = copy_run(good_run, tmp_path / "runs" / "r")
    with qtbot.waitSignal(w.runOpened, timeout=20000):
        w.open_run(run)
    assert asked == []  # a bundled data set needs no question
    before = snapshot(run)
    assert w.save_run(run) is None and asked[-1][0] == "replace_run" and snapshot(run) == before
    answers["replace_run"] = "beside"
    assert w.save_run(run) == tmp_path / "runs" / "r-2"
    assert w.save_run(run, if_exists="replace") == run
    assert load_run(run).model_config == load_run(tmp_path / "runs" / "r-2").model_config

    write_config(run, lambda d: d.__setitem__("data", "../../../../usr/share"))
    with qtbot.waitSignal(w.runOpened, timeout=20000):
        w.open_run(run)
    assert asked[-1][0] == "trust_data" and "leaves the run folder" in asked[-1][1]
    assert "not loaded" in w.message_bar.message  # opened on the current data set instead

    def failing_save(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    checkpoint_save = checkpoint.save_file
    checkpoint.save_file = failing_save
    try:
        assert w.save_run(tmp_path / "runs" / "new") is None
    finally:
        checkpoint.save_file = checkpoint_save
    assert "No space left on device" in w.message_bar.message and "\n" not in w.message_bar.message
    assert not (tmp_path / "runs" / "new").exists()


@pytest.mark.timeout(60)
def test_builder_shows_the_memory_estimate_live(qtbot):
    from aestudio.app import create_window

    w = create_window("digits")
    qtbot.addWidget(w)
    w.builder.set_config(ModelConfig(arch="dense", latent=2, hidden=[32]))
    qtbot.waitUntil(lambda: "to train" in w.builder.params_label.text(), timeout=10000)
    est = w.builder.memory_estimate()
    assert est is not None and est.data_bytes == w.state.dataset.n * 64 * 4
    assert "Training needs about" in w.builder.params_label.toolTip()


# ==================================================================================================
# Image folders
# ==================================================================================================


# -- helpers -------------------------------------------------------------------------------


def save(path: Path, array: np.ndarray, **params) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **params)
    return path


def gray(value: int, size: int = 8) -> np.ndarray:
    return np.full((size, size), value, dtype=np.uint8)


def reasons(dataset: ImageSet) -> dict[str, str]:
    return {Path(path).name: reason for path, reason in dataset.skipped}


def png_header_only(path: Path, width: int, height: int, bit_depth: int = 16) -> Path:
    """A PNG that claims ``width`` x ``height`` 16-bit gray pixels but holds almost no data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


@pytest.fixture
def no_processes(monkeypatch: pytest.MonkeyPatch) -> list:
    """Any attempt to start a program is recorded (and refused)."""
    started: list = []

    def refuse(*args, **kwargs):
        started.append(args[0] if args else kwargs)
        raise AssertionError(f"a process was started: {args!r}")

    monkeypatch.setattr(subprocess, "Popen", refuse)
    monkeypatch.setattr(os, "system", refuse)
    monkeypatch.setattr(os, "execv", refuse)
    monkeypatch.setattr(os, "execve", refuse)
    monkeypatch.setattr(os, "posix_spawn", refuse)
    monkeypatch.setattr(os, "fork", refuse)
    return started


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every path passed to os.open (and os.scandir) while loading."""
    paths: list[str] = []
    real_open, real_scandir = os.open, os.scandir

    def spy_open(path, *args, **kwargs):
        paths.append(os.fspath(path))
        return real_open(path, *args, **kwargs)

    def spy_scandir(path="."):
        paths.append(os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "open", spy_open)
    monkeypatch.setattr(os, "scandir", spy_scandir)
    return paths


@pytest.fixture
def release():
    """An event that stalled fake decoders wait on; set when the test ends so their threads finish."""
    event = threading.Event()
    yield event
    event.set()


# -- disguised formats -----------------------------------------------------------------------


def test_disguised_eps_is_skipped_and_no_program_runs(tmp_path: Path, no_processes: list) -> None:
    save(tmp_path / "good.png", gray(9))
    Image.new("L", (8, 8), 200).save(tmp_path / "x.png", format="EPS")  # real PostScript named .png
    assert (tmp_path / "x.png").read_bytes().startswith(b"%!PS")

    ds = load_dataset(str(tmp_path))
    assert ds.n == 1 and (ds.images == 9).all()
    assert reasons(ds) == {"x.png": "PostScript file, not decoded (only PNG, JPEG, BMP, GIF, TIFF, WEBP images are read)"}
    assert no_processes == []


def test_allow_list_refuses_eps_even_without_the_magic_check(
    tmp_path: Path, no_processes: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pillow itself is restricted to raster formats: the EPS plugin never gets the file."""
    monkeypatch.setattr(folder_mod, "_MAGIC", ())
    save(tmp_path / "good.png", gray(9))
    Image.new("L", (8, 8), 200).save(tmp_path / "x.jpg", format="EPS")
    ds = load_dataset(str(tmp_path))
    assert ds.n == 1
    assert reasons(ds) == {"x.jpg": "not a readable image (unknown format or corrupt header)"}
    assert no_processes == []


# -- special files -----------------------------------------------------------------------------


def test_fifo_and_socket_are_skipped_and_never_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, opened: list[str]
) -> None:
    root = tmp_path / "flat"
    save(root / "good.png", gray(5))
    os.mkfifo(root / "a.png")  # opening this for reading would block forever
    monkeypatch.chdir(root)  # AF_UNIX paths are limited to ~100 bytes: bind a relative name
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind("s.png")
    try:
        ds = load_dataset(str(root))
    finally:
        server.close()
    assert ds.n == 1 and ds.files == [str(root / "good.png")]
    assert reasons(ds) == {
        "a.png": "not a regular file (named pipe (FIFO)); not opened",
        "s.png": "not a regular file (socket); not opened",
    }
    assert str(root / "a.png") not in opened and str(root / "s.png") not in opened
    assert str(root / "good.png") in opened


def test_fifo_in_a_class_folder_and_only_special_files(tmp_path: Path) -> None:
    save(tmp_path / "cats" / "1.png", gray(1))
    os.mkfifo(tmp_path / "cats" / "2.png")
    os.mkfifo(tmp_path / "dogs.png")
    ds = load_dataset(str(tmp_path))
    assert ds.class_names == ["cats"] and ds.n == 1
    assert reasons(ds) == {
        "2.png": "not a regular file (named pipe (FIFO)); not opened",
        "dogs.png": "not a regular file (named pipe (FIFO)); not opened",
    }

    only = tmp_path / "only"
    only.mkdir()
    os.mkfifo(only / "a.png")
    with pytest.raises(DatasetError) as info:
        load_dataset(str(only))
    assert str(info.value) == f"No readable images in {only}: 1 file skipped (not a regular file: 1)."


def test_fifo_swapped_in_after_the_scan_is_not_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The type is checked again on the opened descriptor (O_NONBLOCK: opening a FIFO never blocks)."""
    save(tmp_path / "good.png", gray(5))
    save(tmp_path / "late.png", gray(6))
    real_scan = folder_mod._scan

    def scan_then_swap(*args):
        found = real_scan(*args)
        os.remove(tmp_path / "late.png")
        os.mkfifo(tmp_path / "late.png")
        return found

    monkeypatch.setattr(folder_mod, "_scan", scan_then_swap)
    ds = load_dataset(str(tmp_path))
    assert ds.n == 1
    assert reasons(ds) == {"late.png": "not a regular file (named pipe (FIFO)); not opened"}


def test_file_swapped_for_a_symlink_after_the_scan_is_not_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, opened: list[str]
) -> None:
    outside = save(tmp_path / "secret.png", gray(200))
    root = tmp_path / "root"
    save(root / "good.png", gray(5))
    save(root / "late.png", gray(6))
    real_scan = folder_mod._scan

    def scan_then_swap(*args):
        found = real_scan(*args)
        os.remove(root / "late.png")
        os.symlink(outside, root / "late.png")
        return found

    monkeypatch.setattr(folder_mod, "_scan", scan_then_swap)
    ds = load_dataset(str(root))
    assert ds.n == 1 and (ds.images == 5).all()
    assert reasons(ds) == {"late.png": "file not readable (Too many levels of symbolic links)"}  # O_NOFOLLOW


# -- symlinks ------------------------------------------------------------------------------------


def test_symlinks_out_of_the_folder_are_not_followed(tmp_path: Path, opened: list[str]) -> None:
    outside = tmp_path / "outside"
    save(outside / "secret.png", gray(200))
    root = tmp_path / "root"
    save(root / "good.png", gray(10))
    os.symlink(root / "good.png", root / "inside.png")  # inside the folder: fine
    os.symlink(outside / "secret.png", root / "out.png")  # a file outside
    os.symlink(outside, root / "zz")  # a folder outside
    os.symlink("/", root / "disk")  # the whole disk
    os.symlink(root / "missing.png", root / "broken.png")

    ds = load_dataset(str(root))
    assert ds.n == 2 and (ds.images == 10).all()
    assert ds.labels is None  # links to outside folders do not become classes
    assert reasons(ds) == {
        "out.png": f"symlink pointing outside the folder (to {outside / 'secret.png'}); not followed",
        "zz": f"symlink pointing outside the folder (to {outside}); not followed",
        "disk": "symlink pointing outside the folder (to /); not followed",
        "broken.png": "broken symlink",
    }
    resolved = str(root.resolve())
    assert opened and all(os.path.realpath(p).startswith(resolved) for p in opened), opened


def test_symlinked_class_folders_inside_and_loops(tmp_path: Path, opened: list[str]) -> None:
    root = tmp_path / "root"
    save(root / "a" / "1.png", gray(1))
    save(root / "a" / "2.png", gray(2))
    os.symlink(root / "a", root / "b")  # a class reached through an inside symlink: followed
    (root / "c").mkdir()
    os.symlink(root, root / "c" / "loop")  # a loop back to the root: walked once
    os.symlink(root / "c", root / "c" / "self")
    os.symlink("/usr", root / "d")  # outside: not a class, not walked
    ds = load_dataset(str(root))
    assert ds.class_names == ["a", "b"] and ds.n == 4
    assert reasons(ds) == {"d": "symlink pointing outside the folder (to /usr); not followed"}
    assert not any(p.startswith("/usr") for p in opened)


# -- bombs and memory ------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_huge_16bit_images_are_refused_from_the_header(tmp_path: Path) -> None:
    save(tmp_path / "good.png", gray(3))
    png_header_only(tmp_path / "big16.png", 13_000, 13_000)  # 169 M pixels: above our limit
    png_header_only(tmp_path / "bomb.png", 20_000, 20_000)  # 400 M pixels: Pillow's own bomb check
    ds = load_dataset(str(tmp_path))
    assert ds.n == 1
    assert reasons(ds) == {
        "big16.png": "image too large (13,000×13,000 pixels; the limit is 40,000,000)",
        "bomb.png": "image too large (Pillow refused it as a possible decompression bomb; "
                    "the limit is 40,000,000 pixels)",
    }


def test_pixel_limit_applies_to_real_images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(folder_mod, "MAX_IMAGE_PIXELS", 10_000)
    save(tmp_path / "small.png", gray(4, size=100))  # exactly at the limit
    save(tmp_path / "wide16.png", np.zeros((50, 201), dtype=np.uint16))
    ds = load_dataset(str(tmp_path))
    assert ds.n == 1
    assert reasons(ds) == {"wide16.png": "image too large (201×50 pixels; the limit is 10,000)"}


def test_16bit_images_convert_without_float64_copies(tmp_path: Path) -> None:
    values = (np.arange(2000 * 2000, dtype=np.uint32) % 65536).astype(np.uint16).reshape(2000, 2000)
    save(tmp_path / "ramp.png", values, compress_level=1)
    save(tmp_path / "mid.png", np.full((8, 8), 32896, dtype=np.uint16))  # 32896 / 257 = 128
    save(tmp_path / "top.tif", np.full((8, 8), 65535, dtype=np.uint16))
    load_dataset(str(tmp_path), image_size=8)  # warm up Pillow's plugins
    tracemalloc.start()
    try:
        ds = load_dataset(str(tmp_path), image_size=8)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The 2000x2000 image is 8 MB of uint16; float64 conversion alone would need 32 MB.
    assert peak < 24 * 2**20, peak
    assert ds.n == 3 and (ds.images[0] == 128).all() and (ds.images[2] == 255).all()


def test_concurrent_decoding_stays_within_the_memory_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(80):
        save(tmp_path / f"{i}.png", gray(i))
    monkeypatch.setattr(folder_mod, "THREAD_THRESHOLD_S", 0.0)
    monkeypatch.setattr(folder_mod.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(folder_mod, "DECODE_BUDGET_BYTES", 1)  # every image exceeds it: one at a time
    lock, state = threading.Lock(), {"now": 0, "max": 0, "threads": set()}
    real_convert = folder_mod._convert

    def tracked(*args):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
            state["threads"].add(threading.get_ident())
        try:
            return real_convert(*args)
        finally:
            with lock:
                state["now"] -= 1

    monkeypatch.setattr(folder_mod, "_convert", tracked)
    ds = load_dataset(str(tmp_path))
    assert ds.n == 80 and [int(a[0, 0, 0]) for a in ds.images] == list(range(80))
    assert state["max"] == 1


# -- time limits and cancel ------------------------------------------------------------------------


def stall(monkeypatch: pytest.MonkeyPatch, release: threading.Event, word: str, entered=None) -> None:
    """Files whose name contains ``word`` hang while decoding until ``release`` is set."""
    real_decode = folder_mod._decode

    def decode(path, *args):
        if word in os.path.basename(path):
            if entered is not None:
                entered.set()
            release.wait(60)
        return real_decode(path, *args)

    monkeypatch.setattr(folder_mod, "_decode", decode)


def test_a_file_that_hangs_is_skipped_after_the_time_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, release: threading.Event
) -> None:
    for name in ("a.png", "slow.png", "z.png"):
        save(tmp_path / name, gray(7))
    monkeypatch.setattr(folder_mod, "FILE_TIMEOUT_S", 0.3)
    stall(monkeypatch, release, "slow")
    ds = load_dataset(str(tmp_path))
    assert ds.n == 2 and [Path(f).name for f in ds.files] == ["a.png", "z.png"]
    assert reasons(ds) == {"slow.png": "timed out (reading and decoding took longer than 0.3 s)"}


def test_a_folder_that_cannot_finish_stops_with_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, release: threading.Event
) -> None:
    for i in range(5):
        save(tmp_path / f"slow{i}.png", gray(i))
    monkeypatch.setattr(folder_mod, "FILE_TIMEOUT_S", 0.2)
    stall(monkeypatch, release, "slow")
    with pytest.raises(DatasetError) as info:
        load_dataset(str(tmp_path))
    assert str(info.value) == (
        "Loading stopped: 3 files took longer than 0.2 s each to read "
        "(is the folder on a drive that stopped responding?)."
    )


class Cancelled(Exception):
    pass


def test_cancel_takes_effect_while_a_file_is_still_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, release: threading.Event
) -> None:
    save(tmp_path / "a.png", gray(1))
    save(tmp_path / "big.png", gray(2))
    save(tmp_path / "c.png", gray(3))
    monkeypatch.setattr(folder_mod, "FILE_TIMEOUT_S", 1000.0)
    entered = threading.Event()
    stall(monkeypatch, release, "big", entered)
    calls: list[tuple[int, int]] = []

    def progress(done: int, total: int) -> None:
        calls.append((done, total))
        if entered.is_set():  # the user pressed cancel while big.png decodes
            raise Cancelled

    with pytest.raises(Cancelled):
        load_dataset(str(tmp_path), progress=progress)  # without heartbeats this would hang (timeout marker)
    assert calls[0] == (0, 3) and all(total == 3 for _, total in calls)


def test_ctrl_c_interrupts_a_load_while_a_file_is_still_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, release: threading.Event
) -> None:
    import _thread

    save(tmp_path / "big.png", gray(2))
    monkeypatch.setattr(folder_mod, "FILE_TIMEOUT_S", 1000.0)
    entered = threading.Event()
    stall(monkeypatch, release, "big", entered)
    # interrupt_main() does nothing while SIGINT is ignored, as it is when a non-interactive shell
    # starts pytest as a background job: give the test Python's own handler, as a terminal run has
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Thread(target=lambda: entered.wait(10) and _thread.interrupt_main(), daemon=True).start()
        with pytest.raises(KeyboardInterrupt):
            load_dataset(str(tmp_path))
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_listing_that_hangs_can_be_cancelled_and_times_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, release: threading.Event
) -> None:
    save(tmp_path / "a.png", gray(1))
    monkeypatch.setattr(folder_mod, "_scan", lambda *args: release.wait(60))
    beats: list[tuple[int, int]] = []

    def progress(done: int, total: int) -> None:
        beats.append((done, total))
        raise Cancelled

    with pytest.raises(Cancelled):
        load_dataset(str(tmp_path), progress=progress)
    assert beats == [(0, 0)]

    monkeypatch.setattr(folder_mod, "SCAN_TIMEOUT_S", 0.3)
    with pytest.raises(DatasetError, match=r"^Listing the folder .* took longer than 0\.3 s, so loading was stopped"):
        load_dataset(str(tmp_path))


# -- transparency ------------------------------------------------------------------------------------


def glyph(colour: tuple[int, int, int], size: int = 8, opaque_rows: int = 2) -> np.ndarray:
    """RGBA: the top ``opaque_rows`` rows opaque ``colour``, the rest fully transparent."""
    rgba = np.zeros((size, size, 4), dtype=np.uint8)
    rgba[..., :3] = colour
    rgba[:opaque_rows, :, 3] = 255
    return rgba


@pytest.fixture
def dark_icons(tmp_path: Path) -> Path:
    root = tmp_path / "dark"
    for i in range(3):
        save(root / f"{i}.png", glyph((20, 20, 20)))  # dark strokes, 75% transparent
    return root


def test_auto_background_contrasts_with_dark_content(dark_icons: Path) -> None:
    ds = load_dataset(str(dark_icons), image_size=8)
    assert ds.background == "white" and ds.shape == (1, 8, 8)
    assert ds.transparent_fraction == pytest.approx(0.75)
    assert (ds.images[:, 0, :2] == 20).all() and (ds.images[:, 0, 2:] == 255).all()
    assert ds.summary() == "dark: 3 images 1x8x8, unlabelled; 75% of pixels were transparent; composited onto white"
    assert ds.transparency_note() == "75% of pixels were transparent; composited onto white"


def test_auto_background_is_black_for_bright_content_and_decided_per_folder(tmp_path: Path) -> None:
    save(tmp_path / "a.png", glyph((240, 240, 240), opaque_rows=4))  # bright, the majority of opaque pixels
    save(tmp_path / "b.png", glyph((10, 10, 10), opaque_rows=2))  # dark, but the folder decides
    ds = load_dataset(str(tmp_path), image_size=8)
    assert ds.background == "black"
    assert (ds.images[1, 0, 2:] == 0).all() and (ds.images[0, 0, 4:] == 0).all()
    assert ds.transparent_fraction == pytest.approx((4 + 6) / 16)
    assert ds.summary().endswith("; 62% of pixels were transparent; composited onto black")


@pytest.mark.parametrize(
    ("background", "expected", "name"),
    [("white", (255, 255, 255), "white"), ("black", (0, 0, 0), "black"), ("#FF8800", (255, 136, 0), "#ff8800"),
     (" Orange ", (255, 165, 0), "#ffa500")],
)
def test_explicit_backgrounds(dark_icons: Path, background: str, expected: tuple, name: str) -> None:
    ds = load_dataset(str(dark_icons), image_size=8, background=background)
    assert ds.background == name
    transparent = ds.images[:, :, 2:]
    if expected[0] == expected[1] == expected[2]:
        assert ds.channels == 1 and (transparent == expected[0]).all()
    else:
        assert ds.channels == 3
        assert (transparent.transpose(0, 2, 3, 1).reshape(-1, 3) == expected).all()
    assert ds.summary().endswith(f"75% of pixels were transparent; composited onto {name}")


def test_partial_alpha_is_composited_from_premultiplied_colour(tmp_path: Path) -> None:
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    rgba[...] = (255, 0, 0, 128)
    save(tmp_path / "half.png", rgba)
    ds = load_dataset(str(tmp_path), image_size=8, background="white", channels=3)
    assert (ds.images[0].reshape(3, -1).T == [255, 127, 127]).all()
    assert ds.transparent_fraction == 0.0 and ds.transparency_note() is None


def test_fully_transparent_folder_loads_as_plain_background(tmp_path: Path) -> None:
    for i in range(4):
        save(tmp_path / "ghosts" / f"{i}.png", np.zeros((8, 8, 4), dtype=np.uint8))
    ds = load_dataset(str(tmp_path / "ghosts"), image_size=8)
    assert ds.n == 4 and ds.shape == (1, 8, 8) and (ds.images == 0).all()
    assert ds.transparent_fraction == 1.0 and ds.background == "black"
    assert ds.summary() == "ghosts: 4 images 1x8x8, unlabelled; every pixel was transparent, so the images are plain black"
    white = load_dataset(str(tmp_path / "ghosts"), image_size=8, background="white")
    assert (white.images == 255).all() and white.transparency_note().endswith("plain white")


def test_transparency_fields_survive_subset_filter_and_replace(tmp_path: Path) -> None:
    from dataclasses import replace

    for cls in ("a", "b"):
        save(tmp_path / cls / "1.png", glyph((0, 0, 0)))
    ds = load_dataset(str(tmp_path), image_size=8)
    for derived in (ds.subset([0]), ds.filter_classes("b"), replace(ds, images=ds.images.copy())):
        assert derived.transparent_fraction == ds.transparent_fraction == pytest.approx(0.75)
        assert derived.background == "white"


def test_sets_without_alpha_have_no_transparency(tmp_path: Path) -> None:
    save(tmp_path / "one.png", gray(3))
    ds = load_dataset(str(tmp_path), background="white")
    assert ds.transparent_fraction is None and ds.background is None
    assert ds.summary() == f"{tmp_path.name}: 1 image 1x28x28, unlabelled"  # "1 image", not "1 images"
    assert load_dataset("digits", background="#123456").transparent_fraction is None


@pytest.mark.parametrize("value", ["mauve-ish", "", "auto-ish", None, 3])
def test_unknown_background_is_one_clear_sentence(tmp_path: Path, value) -> None:
    save(tmp_path / "one.png", gray(3))
    with pytest.raises(DatasetError) as info:
        load_dataset(str(tmp_path), background=value)
    assert str(info.value) == f"Unknown background {value!r}: use auto, white, black, a colour name such as gray, or #rrggbb."
    with pytest.raises(DatasetError):
        load_dataset("digits", background=value)  # checked for named sets too


def test_parse_background() -> None:
    assert parse_background("AUTO") == "auto"
    assert parse_background("white") == (255, 255, 255)
    assert parse_background("#102030") == (16, 32, 48)
    assert parse_background("gray") == (128, 128, 128)


# -- the studio ----------------------------------------------------------------------------------------


@pytest.fixture
def panel(qtbot):
    from aestudio.ui.data_panel import DataPanel
    from aestudio.ui.state import StudioState

    widget = DataPanel(StudioState())
    qtbot.addWidget(widget)
    return widget


def test_data_panel_background_choice_and_transparency_warning(
    qtbot, panel, dark_icons: Path, monkeypatch: pytest.MonkeyPatch, by_name
) -> None:
    from PySide6.QtGui import QColor
    from PySide6.QtWidgets import QColorDialog, QComboBox

    combo = by_name(panel, "Background", QComboBox)
    assert combo is panel.background_combo and panel.folder_background() == "auto"
    panel.size_spin.setValue(8)
    with qtbot.waitSignal(panel.loaded, timeout=10000) as blocker:
        panel.load(str(dark_icons))
    data = blocker.args[0]
    assert data.background == "white" and panel.state.dataset is data
    warning = by_name(panel, "Transparency warning")
    assert not warning.isHidden()
    assert warning.text() == "⚠ 75% of pixels were transparent; composited onto white."
    assert "<b>3</b> images" in panel.info.text()

    # "Custom colour…" asks for a colour and reloads the folder with it
    monkeypatch.setattr(QColorDialog, "getColor", staticmethod(lambda *args, **kwargs: QColor("#ff8800")))
    with qtbot.waitSignal(panel.loaded, timeout=10000) as blocker:
        combo.activated.emit(combo.findData("custom"))
    assert blocker.args[0].background == "#ff8800" and panel.folder_background() == "#ff8800"
    assert combo.currentText() == "#ff8800"
    assert warning.text().endswith("composited onto #ff8800.")
    assert "bit" not in panel.info.text()

    with qtbot.waitSignal(panel.loaded, timeout=10000) as blocker:
        combo.activated.emit(combo.findData("black"))
    assert blocker.args[0].background == "black" and (blocker.args[0].images[:, :, 2:] == 0).all()

    # a cancelled colour dialog keeps the current choice and does not reload
    monkeypatch.setattr(QColorDialog, "getColor", staticmethod(lambda *args, **kwargs: QColor()))
    combo.activated.emit(combo.findData("custom"))
    assert panel.folder_background() == "black" and combo.currentData() == "black" and not panel.loading


def test_data_panel_names_the_bit_depth_of_a_high_bit_folder(qtbot, panel, tmp_path: Path) -> None:
    for i in range(3):
        Image.fromarray(np.full((8, 8), 1000 * i + 1000, np.uint16)).save(tmp_path / f"{i}.png")  # up to 3,000
    with qtbot.waitSignal(panel.loaded, timeout=10000) as blocker:
        panel.load(str(tmp_path))
    assert blocker.args[0].high_bits == 12 and "· 12-bit ·" in panel.info.text()
    assert "4,095 is white" in panel.info.toolTip()


def test_data_panel_says_one_image_and_hides_the_warning(qtbot, panel, tmp_path: Path) -> None:
    save(tmp_path / "solo" / "one.png", gray(3))
    with qtbot.waitSignal(panel.loaded, timeout=10000):
        panel.load(str(tmp_path / "solo"))
    assert "<b>1</b> image ·" in panel.info.text()
    assert panel.transparency.isHidden()


def test_hung_loads_neither_starve_the_pool_nor_delay_closing(
    qtbot, panel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, release: threading.Event
) -> None:
    from PySide6.QtCore import QThreadPool

    pool = QThreadPool.globalInstance()
    threads = pool.maxThreadCount()
    pool.setMaxThreadCount(2)  # as on a 2-core machine
    try:
        monkeypatch.setattr(folder_mod, "FILE_TIMEOUT_S", 1000.0)
        entered = threading.Event()
        stall(monkeypatch, release, "hang", entered)
        for name in ("one", "two"):
            save(tmp_path / name / "hang.png", gray(1))
            os.mkfifo(tmp_path / name / "a.png")
        panel.load(str(tmp_path / "one"))
        qtbot.waitUntil(entered.is_set, timeout=10000)
        entered.clear()
        panel.load(str(tmp_path / "two"))  # the first load is cancelled
        qtbot.waitUntil(entered.is_set, timeout=10000)
        with qtbot.waitSignal(panel.loaded, timeout=10000) as blocker:
            panel.load("digits")  # the second is cancelled, and digits still gets a pool thread
        assert blocker.args[0].name == "digits"

        entered.clear()
        panel.load(str(tmp_path / "one"))
        qtbot.waitUntil(entered.is_set, timeout=10000)
        panel.cancel()  # what closing the studio (or Ctrl-C) does
        assert pool.waitForDone(2000)  # every load returned although its decoder still hangs
    finally:
        pool.setMaxThreadCount(threads)


# -- the command line ------------------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_cli_background_is_checked_stored_and_reused(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from aestudio.cli import main

    icons = tmp_path / "icons"
    for i in range(12):
        save(icons / f"{i}.png", glyph((20, 20, 20), size=8, opaque_rows=1 + i % 3))
    run = tmp_path / "run"
    assert main(["train", "--data", str(icons), "--background", "mauvish", "--out", str(run)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "aestudio: error: Unknown background 'mauvish': use auto, white, black, a colour name such as gray, or #rrggbb."
    ]
    assert not run.exists()

    used: list[str] = []
    real_load_folder = folder_mod.load_folder

    def spy(*args, **kwargs):
        used.append(kwargs["background"])
        return real_load_folder(*args, **kwargs)

    import aestudio.core.datasets as datasets_mod

    monkeypatch.setattr(datasets_mod, "load_folder", spy)
    argv = ["train", "--data", str(icons), "--image-size", "8", "--background", "#FF0000", "--out", str(run),
            "--arch", "dense", "--latent", "2", "--hidden", "8", "--epochs", "1", "--batch-size", "8",
            "--device", "cpu", "--quiet"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "icons: 12 images 3x8x8, unlabelled; 75% of pixels were transparent; composited onto #ff0000" in err
    assert json.loads((run / "config.json").read_text())["background"] == "#FF0000"
    assert main(["evaluate", str(run), "--device", "cpu", "--json", "--labels-per-class", "0"]) == 0
    assert used == ["#FF0000", "#FF0000"]  # evaluation reloaded the folder the way training did
    assert main(["evaluate", str(run), "--data", str(icons), "--background", "nope"]) == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith("aestudio: error: Unknown background 'nope': ")
