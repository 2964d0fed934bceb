"""Following a run folder that another process is still writing (core.follow, ui.follow)."""
from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from aestudio.core.checkpoint import load_run, save_run
from aestudio.core.config import ModelConfig, TrainConfig
from aestudio.core.follow import FINISHED, GONE, QUIET, RUNNING, WAITING, LiveSaver, RunFollower
from aestudio.core.models import Autoencoder

MODEL = ModelConfig(arch="dense", latent=2, hidden=[16], input_shape=(1, 8, 8))
TRAIN = TrainConfig(epochs=3, batch_size=32, device="cpu")


def record(epoch: int) -> dict:
    return {"stage": "train", "epoch": epoch, "seconds": 0.1, "images_per_sec": 100.0, "world_size": 1,
            "train_total": 10.0 / epoch, "train_recon": 10.0 / epoch, "val_total": 11.0 / epoch, "val_recon": 11.0 / epoch}


def write(path, epochs: int, finished: str = "running", model: Autoencoder | None = None, **kw):
    model = model or Autoencoder(MODEL)
    return save_run(path, MODEL, TRAIN, model, history=[record(e) for e in range(1, epochs + 1)],
                    data="digits", finished=finished, overwrite=True, **kw)


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


# ---- core -----------------------------------------------------------------------------------
def test_follower_states_from_waiting_to_finished(tmp_path):
    clock = Clock()
    run = tmp_path / "run"
    f = RunFollower(run, quiet_after_s=30, clock=clock)
    assert f.poll().state == WAITING
    write(run, 1)
    upd = f.poll()
    assert upd.state == RUNNING and len(upd.history) == 1 and upd.weights_changed
    upd = f.poll()
    assert upd.state == RUNNING and upd.history is None and not upd.weights_changed  # nothing new: nothing read
    write(run, 2)
    upd = f.poll()
    assert [r["epoch"] for r in upd.history] == [1, 2] and upd.weights_changed
    clock.t = 31.0
    upd = f.poll()
    assert upd.state == QUIET and "No change" in upd.message
    write(run, 3, finished="completed")
    upd = f.poll()
    assert upd.state == FINISHED and upd.reason == "completed" and upd.epochs == 3 and len(upd.history) == 3


def test_follower_reports_a_deleted_folder_and_never_reads_half_files(tmp_path):
    run = tmp_path / "run"
    write(run, 1)
    f = RunFollower(run)
    assert f.poll().state == RUNNING
    (run / "history.json").write_text('[{"epoch": 1}, {"ep')  # what a non-atomic writer could leave
    upd = f.poll()
    assert upd.problem and "history.json" in upd.problem and upd.history is None and not upd.weights_changed
    (run / "history.json").write_text('[{"epoch": 1}, {"epoch": 2}]')
    upd = f.poll()
    assert upd.problem is None and len(upd.history) == 2
    shutil.rmtree(run)
    upd = f.poll()
    assert upd.state == GONE and "deleted" in upd.message


def test_reader_sees_only_whole_versions_while_a_writer_saves(tmp_path):
    """A reader polling as fast as it can while the writer saves 15 versions never meets half a file."""
    run = tmp_path / "run"
    write(run, 1)
    f = RunFollower(run)
    seen, errors = [], []
    done = threading.Event()

    def writer():
        try:
            for e in range(2, 17):
                write(run, e, finished="completed" if e == 16 else "running")
        finally:
            done.set()

    t = threading.Thread(target=writer)
    t.start()
    while not done.is_set() or f.state != FINISHED:
        upd = f.poll()
        if upd.problem:
            errors.append(upd.problem)
        if upd.history is not None:
            seen.append(len(upd.history))
        if done.is_set() and f.state != FINISHED:
            f.poll()
            break
    t.join()
    upd = f.poll()
    assert not errors
    assert seen == sorted(seen) and f.state == FINISHED and f._epochs == 16


def test_live_saver_keeps_a_good_run_until_the_new_one_completes(tmp_path):
    good = write(tmp_path / "ae", 5, finished="completed")
    before = (good / "weights.safetensors").read_bytes()
    saver = LiveSaver(good, overwrite=True, min_interval_s=0.0)
    m = Autoencoder(MODEL)
    live = saver.save(MODEL, TRAIN, m, history=[record(1)], data="digits")
    assert live == tmp_path / "ae-2" and load_run(live).meta["finished"] == "running"
    assert (good / "weights.safetensors").read_bytes() == before  # the good run is untouched while training
    saver.save(MODEL, TRAIN, m, history=[record(1), record(2)], data="digits")
    assert len(load_run(live).history) == 2
    final = saver.final(MODEL, TRAIN, m, history=[record(1), record(2)], data="digits", finished="completed",
                        completed=True)
    assert final == good and not live.exists() and load_run(good).meta["finished"] == "completed"


def test_live_saver_failed_run_stays_beside(tmp_path):
    good = write(tmp_path / "ae", 5, finished="completed")
    saver = LiveSaver(good, overwrite=True, min_interval_s=0.0)
    m = Autoencoder(MODEL)
    saver.save(MODEL, TRAIN, m, history=[record(1)], data="digits")
    final = saver.final(MODEL, TRAIN, m, history=[record(1)], data="digits", finished="nan", completed=False)
    assert final == tmp_path / "ae-2" and load_run(good).meta["finished"] == "completed"
    assert load_run(final).meta["finished"] == "nan"


def test_cli_run_folder_is_followable_while_it_trains(tmp_path, monkeypatch, capsys):
    """`aestudio train` saves after the first epoch, marked running, and the final save says completed."""
    from aestudio import cli
    from aestudio.core import follow

    monkeypatch.setattr(follow.LiveSaver, "due", lambda self: True)  # every epoch (normally at most every 10 s)
    seen = []
    original = follow.LiveSaver.save

    def spy(self, *a, **k):
        out = original(self, *a, **k)
        seen.append((load_run(out).meta["finished"], len(load_run(out).history)))
        return out

    monkeypatch.setattr(follow.LiveSaver, "save", spy)
    out = tmp_path / "live"
    rc = cli.main(["train", "--data", "digits", "--arch", "dense", "--hidden", "16", "--latent", "2",
                   "--epochs", "3", "--threads", "1", "--quiet", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    assert seen == [("running", 1), ("running", 2), ("running", 3)]
    run = load_run(out)
    assert run.meta["finished"] == "completed" and [h["world_size"] for h in run.history] == [1, 1, 1]


# ---- studio -----------------------------------------------------------------------------------
WRITER = """
import sys, time
from pathlib import Path
import torch
sys.path.insert(0, %r)
from test_follow import MODEL, write
from aestudio.core.checkpoint import load_run
run, gate = Path(sys.argv[1]), Path(sys.argv[2])
model = load_run(run).model
for epoch in (2, 3, 4):
    while not (gate / f"go{epoch}").exists():
        time.sleep(0.02)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)
    write(run, epoch, model=model, finished="completed" if epoch == 4 else "running")
""" % str(Path(__file__).resolve().parent)


@pytest.mark.timeout(90)
def test_studio_follows_a_run_that_is_being_written(qtbot, tmp_path):
    from aestudio.app import create_window

    run = tmp_path / "remote"
    model = Autoencoder(MODEL)
    write(run, 1, model=model)
    w = create_window("digits")
    qtbot.addWidget(w)
    w.run_follower.timer.setInterval(50)
    w.run_follower.follow(run)
    qtbot.waitUntil(lambda: w.run_follower._opened and len(w.loss_curves.curve_data("total", "val")[0]) == 1,
                    timeout=30000)
    assert w.run_follower.state == RUNNING and w.follow_run_action.isEnabled()

    # another process appends epochs (and changes the weights); it writes epoch e when the test says "go e",
    # after the studio showed the one before, so every step is seen without timing assumptions
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(run), str(tmp_path)], stderr=subprocess.PIPE, text=True)
    lengths = []
    try:
        for epoch in (2, 3, 4):
            (tmp_path / f"go{epoch}").touch()
            qtbot.waitUntil(lambda e=epoch: len(w.loss_curves.curve_data("total", "val")[0]) == e, timeout=30000)
            lengths.append(len(w.loss_curves.curve_data("total", "val")[0]))
        assert writer.wait(timeout=30) == 0, writer.stderr.read()
    finally:
        if writer.poll() is None:
            writer.kill()
    assert lengths == [2, 3, 4]
    qtbot.waitUntil(lambda: w.run_follower.state == FINISHED, timeout=10000)
    qtbot.waitUntil(lambda: w.run_follower.reloads >= 1 and w.run_follower._task is None, timeout=20000)
    final = load_run(run).model  # the grid and map show the latest weights
    snap = w.state.snapshot
    shown = snap.model if hasattr(snap, "model") else snap.trained.build_model()
    assert torch.allclose(next(shown.parameters()).cpu(), next(final.parameters()).cpu())
    assert "finished" in w.message_bar.message

    shutil.rmtree(run)  # deleted while followed: a clear message, no hang, the last version stays shown
    w.run_follower.follow(run)
    qtbot.waitUntil(lambda: w.run_follower.state == WAITING, timeout=15000)
    write(run, 1)
    qtbot.waitUntil(lambda: w.run_follower.state == RUNNING, timeout=10000)
    shutil.rmtree(run)
    qtbot.waitUntil(lambda: w.run_follower.state == GONE, timeout=10000)
    assert "deleted" in w.message_bar.message and not w.run_follower.timer.isActive()
    assert w.state.snapshot is not None
    w.close()
