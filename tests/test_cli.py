"""The `aestudio` command line: train + evaluate round trip, clean stops, one-line errors."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import types
from pathlib import Path

import pytest

from aestudio import cli
from aestudio.core.checkpoint import load_run
from aestudio.core.training import EpochEnd, Finished, Trainer

TINY = ["train", "--data", "digits", "--arch", "dense", "--kind", "ae", "--latent", "4", "--epochs", "2",
        "--threads", "2", "--quiet"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A run trained by a separate `aestudio train` process, which must not import Qt."""
    out = tmp_path_factory.mktemp("runs") / "tiny"
    code = ("import sys; from aestudio.cli import main; rc = main(sys.argv[1:]); "
            "assert not any(m.startswith('PySide6') for m in sys.modules), 'train imported Qt'; sys.exit(rc)")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, "-c", code, *TINY, "--out", str(out)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "epoch 2/2" in proc.stdout
    return out


def test_train_writes_a_run_folder(tiny_run):
    run = load_run(tiny_run)
    assert run.model_config.arch == "dense" and run.model_config.latent == 4
    assert run.model_config.input_shape == (1, 8, 8)
    assert run.train_config.epochs == 2
    assert len(run.history) == 2
    assert run.meta["data"] == "digits" and run.meta["image_size"] == 8 and run.meta["channels"] == 1


def test_evaluate_json_round_trip(tiny_run, capsys):
    rc = cli.main(["evaluate", str(tiny_run), "--json", "--normal-classes", "0,1", "--noise", "gaussian:0.3"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    result = json.loads(captured.out)  # exactly one JSON object on stdout
    assert captured.out.count("\n") == 1
    expected = {"recon_mse", "pca_mse", "mean_image_mse", "psnr_noisy", "psnr_denoised", "probe_accuracy", "probe_accuracy_pca",
                "probe_accuracy_raw", "knn_accuracy", "silhouette", "anomaly_auroc"}
    assert set(result) == expected
    assert all(isinstance(v, float) and math.isfinite(v) for v in result.values())
    assert "elbo_nats" not in result  # not a VAE
    # without --noise the run's own (none) noise is used; on another data set with a class filter
    rc = cli.main(["evaluate", str(tiny_run), "--json", "--data", "digits", "--classes", "3,4"])
    result = json.loads(capsys.readouterr().out)
    assert rc == 0 and "psnr_noisy" not in result and {"recon_mse", "probe_accuracy"} <= set(result)


def test_ctrl_c_stops_cleanly_and_saves(tmp_path, monkeypatch, capsys):
    original = Trainer.run

    def run_then_interrupt(self):
        for i, ev in enumerate(original(self)):
            if i == 3:
                signal.raise_signal(signal.SIGINT)  # the CLI's handler asks the engine to stop
            yield ev

    monkeypatch.setattr(Trainer, "run", run_then_interrupt)
    out = tmp_path / "stopped"
    # whatever was there before: Python's default handler, or SIG_IGN when pytest itself was
    # started in the background by a non-interactive shell (which ignores SIGINT for such jobs)
    before = signal.getsignal(signal.SIGINT)
    rc = cli.main([*TINY, "--epochs", "5", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 130
    assert "stopping" in err and "Traceback" not in err
    run = load_run(out)
    assert run.meta["finished"] == "stopped"
    assert signal.getsignal(signal.SIGINT) is before  # handler restored


def test_nan_stop_saves_restored_weights_and_exits_1(tmp_path, monkeypatch, capsys):
    original = Trainer.run

    def run_then_nan(self):
        for ev in original(self):
            yield ev
            if isinstance(ev, EpochEnd):
                yield Finished("nan", "The loss became nan in train epoch 2, batch 1; restored ...", 1)
                return

    monkeypatch.setattr(Trainer, "run", run_then_nan)
    out = tmp_path / "nan"
    rc = cli.main([*TINY, "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 1 and "The loss became nan" in err
    assert load_run(out).meta["finished"] == "nan"


def _one_line_error(capsys, argv, fragment):
    rc = cli.main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    last = err.splitlines()[-1]
    assert last.startswith("aestudio: error: "), err
    assert fragment.lower() in last.lower(), last
    assert "Traceback" not in err
    return last


def test_impossible_configs_exit_2_with_one_line(tmp_path, capsys):
    out = str(tmp_path / "x")
    _one_line_error(capsys, [*TINY, "--arch", "conv", "--image-size", "3", "--hidden", "32,64", "--out", out],
                    "needs images of at least 4x4 pixels")
    _one_line_error(capsys, [*TINY, "--latent", "0", "--out", out], "latent size must be at least 1")
    empty = tmp_path / "empty"
    empty.mkdir()
    _one_line_error(capsys, [*TINY, "--data", str(empty), "--out", out], "")
    _one_line_error(capsys, [*TINY, "--classes", "banana", "--out", out], "banana")
    _one_line_error(capsys, [*TINY, "--classes", "²", "--out", out], "²")  # a digit to isdigit(), not to int()
    _one_line_error(capsys, [*TINY, "--classes=--3", "--out", out], "--3")
    _one_line_error(capsys, [*TINY, "--arch", "transformer", "--out", out], "invalid choice")
    _one_line_error(capsys, [*TINY, "--noise", "gaussian:x", "--out", out], "noise")
    _one_line_error(capsys, ["train", "--data", "digits"], "--out")
    assert not Path(out).exists()


def test_evaluate_refuses_missing_and_pickled_runs(tmp_path, capsys):
    _one_line_error(capsys, ["evaluate", str(tmp_path / "nope"), "--json"], "no run folder")
    pt = tmp_path / "model.pt"
    pt.write_bytes(b"\x80\x04not really a pickle")
    _one_line_error(capsys, ["evaluate", str(pt), "--json"], "pickle")
    _one_line_error(capsys, ["evaluate", str(tmp_path), "--json"], "not an aestudio run")


def test_studio_is_lazy_and_reports_a_missing_window(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "aestudio.app", None)  # import fails as if the module did not exist
    assert cli.main([]) == 1
    assert "not available in this build" in capsys.readouterr().err
    calls = []
    fake = types.ModuleType("aestudio.app")
    fake.run_studio = lambda data=None: calls.append(data) or 0
    monkeypatch.setitem(sys.modules, "aestudio.app", fake)
    assert cli.main(["studio", "--data", "digits"]) == 0
    assert calls == ["digits"]


def test_help_exits_0(capsys):
    assert cli.main(["train", "--help"]) == 0
    assert "--latent" in capsys.readouterr().out


def test_init_flag_reaches_the_saved_config(tmp_path, torch_one_thread):
    import json

    from aestudio import cli

    out = tmp_path / "run"
    assert cli.main(["train", "--data", "digits", "--arch", "dense", "--latent", "2", "--hidden", "8", "--epochs", "1",
                     "--init", "xavier", "--out", str(out), "--quiet"]) == 0
    assert json.loads((out / "config.json").read_text())["model"]["init"] == "xavier"
    assert cli.main(["train", "--data", "digits", "--init", "uniform", "--out", str(tmp_path / "x")]) == 2


def test_a_run_records_its_data_and_notices_when_the_folder_changed(tmp_path, capsys):
    """Evaluating or resuming a run recomputes its split from the folder; once the folder gained an
    image the split mixes training and validation images. The run's fingerprint of its data says so."""
    import numpy as np
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(30):
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(folder / f"{i:02d}.png")
    out = tmp_path / "run"
    assert cli.main(["train", "--data", str(folder), "--image-size", "8", "--arch", "dense", "--latent", "4",
                     "--epochs", "1", "--out", str(out)]) == 0
    assert len(load_run(out).meta["data_fingerprint"]) == 16
    capsys.readouterr()
    assert cli.main(["evaluate", str(out), "--json"]) == 0
    assert "not what this run was trained on" not in capsys.readouterr().err

    Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "00a.png")  # sorts second: the split shifts
    assert cli.main(["evaluate", str(out), "--json"]) == 0
    err = capsys.readouterr().err
    assert f"note: {folder} is not what this run was trained on" in err
    rc = cli.main(["train", "--resume", str(out), "--epochs", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and "not the one the model was trained on" in err[-1] and err[-1].startswith("aestudio: error: ")


def test_default_epochs_say_the_steps_they_give(capsys):
    """Four training images: 2,000 epochs (the cap) of one batch of 4 images, not "4,000 steps of 32"."""
    from aestudio.core.config import TrainConfig

    gray = (1, 28, 28)
    assert cli._auto_epochs(TrainConfig(batch_size=32), 5, gray).epochs == 2000
    assert "epochs: 2000 (the most epochs the default gives) (about 2,000 optimizer steps of 4 images;" in \
        capsys.readouterr().err
    assert cli._auto_epochs(TrainConfig(batch_size=32), 10_000, gray).epochs == 16
    assert "epochs: 16 (about 4,000 optimizer steps of 32 images;" in capsys.readouterr().err
    # RGB images of the same size have three times the numbers to learn: 5,300 steps (step_budget)
    assert cli._auto_epochs(TrainConfig(batch_size=32), 2_000, (3, 28, 28)).epochs == 106
    assert "epochs: 106 (about 5,300 optimizer steps of 32 images;" in capsys.readouterr().err


def test_step_budget_grows_with_the_numbers_per_image():
    from aestudio.core.training import STEP_BUDGET, step_budget

    assert step_budget((1, 8, 8)) == step_budget((1, 28, 28)) == STEP_BUDGET  # small images: the measured budget
    sizes = [(1, 28, 28), (1, 32, 32), (3, 28, 28), (3, 32, 32), (4, 32, 32), (3, 48, 48), (3, 64, 64)]
    budgets = [step_budget(s) for s in sizes]
    assert budgets == sorted(budgets) and len(set(budgets)) == len(budgets)
    assert budgets[1:3] == [4300, 5300]  # shapes and photos/icons in benchmarks/robustness.py
    assert step_budget((3, 512, 512)) == 2 * STEP_BUDGET  # capped: a big photo folder does not train for hours
