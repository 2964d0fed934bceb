"""Hostile run folders, flags and disks (issue 13): one clear line, exit 2, nothing outside touched,
nothing lost, no hang. Fixtures are generated here; nothing is trained longer than one tiny epoch."""
from __future__ import annotations

import errno
import json
import math
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from aestudio import cli
from aestudio.core import checkpoint, resources
from aestudio.core.checkpoint import (RunError, RunExistsError, UntrustedDataError, load_run, resolve_data_spec,
                                      save_run)
from aestudio.core.config import ConfigError, ModelConfig, TrainConfig
from aestudio.core.models import Autoencoder
from aestudio.core.resources import ResourceError, check_training_fits, count_params, estimate
from aestudio.core.schema import MODEL_FIELDS, TRAIN_FIELDS, json_depth, read_json
from aestudio.core.training import Finished, Trainer

pytestmark = pytest.mark.usefixtures("torch_one_thread")

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
    ("format_version", "1", 'format_version must be a whole number from 1 to 1, got "1"'),
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
