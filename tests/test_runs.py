"""Runs: the registry of known run folders, reading runs safely, the comparison table, config diffs,
`aestudio compare`, and the studio's Runs panel."""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from aestudio import cli
from aestudio.core import runs as R
from aestudio.core.checkpoint import RunError, save_run
from aestudio.core.config import ModelConfig, TrainConfig
from aestudio.core.models import Autoencoder

pytestmark = [pytest.mark.usefixtures("torch_one_thread"), pytest.mark.timeout(120)]


def history(*val_recon: float, kind_extra: float = 0.0) -> list[dict]:
    return [{"stage": "train", "epoch": i + 1, "train_total": v + 0.5 + kind_extra, "train_recon": v + 0.5,
             "val_total": v + kind_extra, "val_recon": v} for i, v in enumerate(val_recon)]


def make_run(path: Path, latent: int = 2, hist=None, **model) -> Path:
    mc = ModelConfig(**{"arch": "dense", "latent": latent, "hidden": [8], "input_shape": (1, 8, 8), **model})
    torch.manual_seed(latent)
    return save_run(path, mc, TrainConfig(epochs=1, batch_size=32, device="cpu"), Autoencoder(mc),
                    history=history(3.0, 2.0) if hist is None else hist, data="digits", finished="completed")


def write_config(run: Path, edit) -> None:
    d = json.loads((run / "config.json").read_text())
    edit(d)
    (run / "config.json").write_text(json.dumps(d))


# ---- the registry --------------------------------------------------------------------------------------
def test_registry_round_trip_and_discovery(tmp_path):
    a = make_run(tmp_path / "solo")
    parent = tmp_path / "many"
    b, c = make_run(parent / "b"), make_run(parent / "c")
    make_run(parent / "deeper" / "d")  # two levels down: not listed
    (parent / "notes").mkdir()
    make_run(parent / ".hidden")
    reg = R.RunRegistry.load()
    assert reg.path == Path(os.environ["AESTUDIO_SETTINGS_DIR"]) / "runs.json"  # tests never touch the real one
    reg.add_folder(parent)
    reg.add_recent(a)
    reg.add_recent(b)  # also inside the added folder: listed once
    reg.add_recent(tmp_path / "gone")
    reg.save()
    again = R.RunRegistry.load()
    assert again.recent == [str(tmp_path / "gone"), str(b), str(a)] and again.folders == [str(parent)]
    assert again.discover() == [b, c, a]
    again.remove(parent)
    assert again.discover() == [b, a]


def test_a_broken_registry_is_reported_and_read_as_empty(tmp_path):
    path = R.registry_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("[" * 100)
    reg = R.RunRegistry.load()
    assert reg.recent == [] and reg.folders == [] and "was not read" in reg.warning
    path.write_text(json.dumps({"format": "aestudio-runs", "recent": ["/x", 3, None, "/x"], "folders": "nope"}))
    reg = R.RunRegistry.load()
    assert reg.recent == ["/x"] and reg.folders == []


def test_remember_run_keeps_the_newest_first(tmp_path):
    R.remember_run(tmp_path / "a")
    R.remember_run(tmp_path / "b")
    R.remember_run(tmp_path / "a")
    assert R.RunRegistry.load().recent == [str(tmp_path / "a"), str(tmp_path / "b")]


# ---- one run ----------------------------------------------------------------------------------------
def test_run_info_reads_settings_and_final_losses_without_weights(tmp_path):
    run = make_run(tmp_path / "r", latent=3, hist=[{"stage": "pretrain layer 1/2", "epoch": 1, "train_total": 9.0},
                                                   *history(4.0, 2.5)])
    info = R.read_run_info(run)
    assert info.ok and info.status == "done" and info.name == "r"
    assert info.model["latent"] == 3 and info.meta["data"] == "digits" and info.epochs == 3
    assert info.final() == {"train_total": 3.0, "train_recon": 3.0, "val_total": 2.5, "val_recon": 2.5}
    assert info.params == sum(p.numel() for p in Autoencoder(ModelConfig(arch="dense", latent=3, hidden=[8],
                                                                         input_shape=(1, 8, 8))).state_dict().values())
    assert info.curve("val_recon") == ([2.0, 3.0], [4.0, 2.5])


def _hostile(tmp_path: Path, good: Path) -> dict[str, Path]:
    out = {}

    def copy(name):
        return Path(shutil.copytree(good, tmp_path / name))

    out["nested"] = copy("nested")
    (out["nested"] / "config.json").write_text("[" * 50_000 + "]" * 50_000)
    out["types"] = copy("types")
    write_config(out["types"], lambda d: d["model"].update(latent="8"))
    out["classes"] = copy("classes")
    write_config(out["classes"], lambda d: d.__setitem__("classes", [0, 1]))
    out["not json"] = copy("notjson")
    (out["not json"] / "config.json").write_bytes(b"\xff\xfe garbage")
    out["no weights"] = copy("noweights")
    (out["no weights"] / "weights.safetensors").unlink()
    out["symlink"] = tmp_path / "link"
    out["symlink"].symlink_to(good)
    out["fifo"] = copy("fifo")
    (out["fifo"] / "config.json").unlink()
    os.mkfifo(out["fifo"] / "config.json")
    out["missing"] = tmp_path / "nowhere"
    return out


@pytest.mark.timeout(30)
def test_hostile_and_half_written_folders_give_one_line_each(tmp_path):
    good = make_run(tmp_path / "good")
    for kind, path in _hostile(tmp_path, good).items():
        info = R.read_run_info(path)
        assert info.status == "broken" and not info.ok, kind
        assert info.error and "\n" not in info.error and "Traceback" not in info.error, (kind, info.error)
        assert "Error" not in info.error, (kind, info.error)  # no exception class names
    table = R.compare([R.read_run_info(good), R.read_run_info(tmp_path / "types")])
    assert [row.values[1] for row in table.rows if row.section == "settings"] == [None] * 7


def test_broken_history_is_a_warning_not_a_broken_run(tmp_path):
    run = make_run(tmp_path / "r")
    (run / "history.json").write_text(json.dumps([{"epoch": {"nested": [1]}}]))
    info = R.read_run_info(run)
    assert info.ok and info.history == [] and "history.json was not read" in info.warnings[0]


def test_status_writing_quiet_and_done(tmp_path):
    run = make_run(tmp_path / "r")
    assert R.read_run_info(run).status == "done"
    write_config(run, lambda d: d.__setitem__("finished", "running"))
    assert R.read_run_info(run).status == "writing"
    old = time.time() - 3600
    for f in run.iterdir():
        os.utime(f, (old, old))
    assert R.read_run_info(run).status == "quiet"
    # a save building the run beside it (checkpoint.save_run's hidden folder)
    half = tmp_path / "half"
    half.mkdir()
    (half / "config.json").write_text((run / "config.json").read_text())
    assert R.read_run_info(half).status == "broken"
    (tmp_path / ".half.x1y2.tmp").mkdir()
    info = R.read_run_info(half)
    assert info.status == "writing" and "still being written" in info.error
    build = tmp_path / ".half.x1y2.tmp"
    os.utime(build, (old, old))  # a leftover of a killed save, long ago
    assert R.read_run_info(half).status == "broken"


# ---- comparing ---------------------------------------------------------------------------------------
def info(name: str, val_recon: float, evaluation: dict | None = None, **model) -> R.RunInfo:
    mc = ModelConfig(**{"arch": "dense", "latent": 2, "input_shape": (1, 8, 8), **model})
    return R.RunInfo(path=Path("/runs") / name, model=mc.to_dict(), train=TrainConfig().to_dict(),
                     meta={"data": "digits"}, history=history(9.0, val_recon), evaluation=evaluation)


def row(table: R.Comparison, key: str) -> R.Row:
    return next(r for r in table.rows if r.key == key)


def test_best_in_each_row_is_marked():
    runs = [info("a", 2.0, {"recon_mse": 0.03, "probe_accuracy": 0.7, "pca_mse": 0.05, "silhouette": 0.1}),
            info("b", 1.0, {"recon_mse": 0.02, "probe_accuracy": 0.7, "pca_mse": 0.04}),
            info("c", 1.0, {"recon_mse": 0.04, "probe_accuracy": 0.6, "pca_mse": 0.03})]
    t = R.compare(runs)
    assert row(t, "val_recon").best == [1, 2]  # a tie shares the mark
    assert row(t, "val_total").best == [1, 2] and row(t, "val_total").better == "lower"
    assert row(t, "recon_mse").best == [1]  # lower is better
    assert row(t, "probe_accuracy").best == [0, 1]  # higher is better
    assert row(t, "pca_mse").best == [] and row(t, "pca_mse").better is None  # a baseline: not ranked
    assert row(t, "silhouette").best == []  # only one run has it
    assert row(t, "silhouette").values == [0.1, None, None]
    assert [r.key for r in t.rows if r.section == "evaluation"] == ["recon_mse", "pca_mse", "probe_accuracy",
                                                                     "silhouette"]
    text = R.format_table(t)
    assert "0.02 *" in text and "0.03 *" not in text.split("PCA")[0]


def test_losses_of_different_kinds_or_loss_functions_are_not_ranked():
    t = R.compare([info("a", 2.0), info("b", 1.0, kind="vae")])
    assert row(t, "val_recon").best == [1]  # reconstruction is comparable across kinds
    assert row(t, "val_total").best == [] and "different kinds" in row(t, "val_total").note
    t = R.compare([info("a", 2.0), info("b", 1.0, loss="bce")])
    assert row(t, "val_recon").best == [] and "different losses" in row(t, "val_recon").note


def test_config_diff_lists_only_what_differs():
    a = info("a", 1.0, hidden=[64, 32])
    b = info("b", 1.0, hidden=None)  # the default for 8x8 images is [32, 16, 8]
    c = info("c", 1.0, hidden=[64, 32], dropout=0.2, activations=["relu", "relu"])
    diff = dict(R.config_diff([a, b, c]))
    assert diff == {"model.hidden": [[64, 32], [32, 16, 8], [64, 32]],
                    "model.activations": [["leaky_relu"] * 2, ["leaky_relu"] * 3, ["relu", "relu"]],
                    "model.dropout": [0.0, 0.0, 0.2]}
    assert R.config_diff([a, info("a2", 5.0, hidden=[64, 32])]) == []


# ---- evaluation on demand ------------------------------------------------------------------------------
def _trained(path: Path, latent: int, epochs: int = 2) -> Path:
    args = ["train", "--data", "digits", "--arch", "dense", "--latent", str(latent), "--hidden", "16",
            "--epochs", str(epochs), "--batch-size", "128", "--threads", "1", "--quiet", "--out", str(path)]
    assert cli.main(args) == 0
    return path


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cmp")
    return _trained(root / "z2", 2), _trained(root / "z8", 8, epochs=4)


def test_evaluate_folder_stores_metrics_until_the_weights_change(two_runs, tmp_path):
    run = Path(shutil.copytree(two_runs[0], tmp_path / "r"))
    metrics = R.evaluate_folder(run)
    assert {"recon_mse", "pca_mse", "probe_accuracy"} <= set(metrics)
    assert R.read_run_info(run).evaluation == metrics
    state = load_file(str(run / "weights.safetensors"))
    save_file(state, str(run / "weights.safetensors"))  # rewritten: an older evaluation no longer applies
    os.utime(run / "weights.safetensors", ns=(1, 1))
    assert R.read_run_info(run).evaluation is None


def test_evaluate_folder_gives_one_line_for_bad_weights(two_runs, tmp_path):
    run = Path(shutil.copytree(two_runs[0], tmp_path / "nan"))
    state = load_file(str(run / "weights.safetensors"))
    state["to_code.weight"][:] = float("nan")
    save_file(state, str(run / "weights.safetensors"))
    assert R.read_run_info(run).ok  # listing does not read the weights
    with pytest.raises(RunError, match="NaN"):
        R.evaluate_folder(run)


# ---- aestudio compare ----------------------------------------------------------------------------------
def test_compare_json_has_the_table(two_runs, capsys):
    capsys.readouterr()
    assert cli.main(["compare", *map(str, two_runs), "--json", "--evaluate"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"runs", "rows", "config_diff"}
    assert [r["name"] for r in out["runs"]] == ["z2", "z8"]
    assert set(out["runs"][0]) == {"name", "path", "status", "error", "epochs", "final", "evaluation", "warnings"}
    assert out["runs"][1]["epochs"] == 4 and out["runs"][0]["status"] == "done"
    rows = {r["key"]: r for r in out["rows"]}
    assert set(rows["recon_mse"]) == {"key", "label", "section", "values", "better", "best", "note"}
    recon = rows["recon_mse"]["values"]
    assert rows["recon_mse"]["best"] == [int(np.argmin(recon))] and rows["recon_mse"]["better"] == "lower"
    assert rows["latent"]["values"] == [2, 8]
    diff = {d["key"]: d["values"] for d in out["config_diff"]}
    assert diff["model.latent"] == [2, 8] and diff["train.epochs"] == [2, 4]


def test_compare_prints_a_table_and_expands_a_folder_of_runs(two_runs, capsys):
    capsys.readouterr()
    assert cli.main(["compare", str(two_runs[0].parent)]) == 0
    out = capsys.readouterr().out
    head = out.splitlines()[0].split()
    assert head == ["z2", "z8"] and "settings that differ:" in out and "model.latent" in out


@pytest.mark.parametrize("case", ["missing", "not a run", "one run", "hostile"])
def test_compare_bad_input_is_one_line_and_exit_2(two_runs, tmp_path, capsys, case):
    good = str(two_runs[0])
    if case == "missing":
        argv = [good, str(tmp_path / "nope")]
    elif case == "not a run":
        (tmp_path / "empty").mkdir()
        argv = [good, str(tmp_path / "empty")]
    elif case == "one run":
        argv = [good]
    else:
        bad = Path(shutil.copytree(two_runs[1], tmp_path / "bad"))
        write_config(bad, lambda d: d["model"].update(latent="8"))
        argv = [good, str(bad)]
    capsys.readouterr()
    assert cli.main(["compare", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("aestudio: error: ") and "Traceback" not in err, err


# ---- the studio's Runs panel ---------------------------------------------------------------------------
def _three_trained_runs(root: Path, digits) -> list[Path]:
    """Three tiny models trained with the core, saved as run folders: code sizes 2, 4 and 8."""
    from aestudio.core.training import fit

    small = digits.subset(np.arange(400))
    out = []
    for latent, epochs in ((2, 2), (4, 3), (8, 4)):
        cfg = ModelConfig(arch="dense", latent=latent, hidden=[16], input_shape=(1, 8, 8))
        trainer, fin = fit(cfg, TrainConfig(epochs=epochs, batch_size=64, device="cpu"), small)
        assert fin.reason == "completed"
        out.append(save_run(root / f"z{latent}", cfg, trainer.train_config, trainer.model, history=trainer.history,
                            data="digits", finished="completed"))
    return out


@pytest.mark.timeout(180)
def test_studio_overlays_three_runs(qtbot, tmp_path, digits):
    from conftest import find_by_name
    from PySide6.QtCore import Qt

    from aestudio.app import create_window

    runs = _three_trained_runs(tmp_path / "runs", digits)
    (tmp_path / "runs" / "broken").mkdir()
    (tmp_path / "runs" / "broken" / "config.json").write_text("{")
    (tmp_path / "runs" / "broken" / "weights.safetensors").write_bytes(b"")
    w = create_window("digits")
    qtbot.addWidget(w)
    w.show()
    panel = w.runs_panel
    assert find_by_name(w, "Runs") is panel
    assert any(a.text() == "Runs" for a in w.menuBar().actions()[1].menu().actions())  # View menu
    w.docks["runs"].raise_()
    qtbot.waitUntil(lambda: not panel.busy, timeout=10000)
    panel.choose_folder = lambda start: str(tmp_path / "runs")  # no dialog in tests
    with qtbot.waitSignal(panel.loaded, timeout=10000):
        qtbot.mouseClick(find_by_name(w, "Add runs folder"), Qt.MouseButton.LeftButton)
    assert [i.name for i in panel.infos] == ["broken", "z2", "z4", "z8"]
    table = find_by_name(w, "Runs table")
    assert table.item(0, 6).text() == "broken" and "cannot read" in table.item(0, 0).toolTip()
    assert [table.item(r, 3).text() for r in range(1, 4)] == ["2", "3", "4"]
    assert R.RunRegistry.load().folders == [str(tmp_path / "runs")]  # stored for the next session

    # tick the three runs by clicking their check boxes
    for r in range(1, 4):
        item = table.item(r, 0)
        item.setCheckState(Qt.CheckState.Checked)
    assert [i.name for i in panel.ticked()] == ["z2", "z4", "z8"]
    assert len(panel.curve_items) == 3
    colors = set()
    for run in runs:
        item = panel.curve_items[str(run)]
        xs, ys = item.getData()
        hist = json.loads((run / "history.json").read_text())
        np.testing.assert_allclose(ys, [h["val_total"] for h in hist])
        np.testing.assert_array_equal(xs, np.arange(1, len(hist) + 1))
        colors.add(item.opts["pen"].color().name())
    assert len(colors) == 3
    assert [label.text for _, label in panel.legend.items] == ["z2", "z4", "z8"]

    # the same runs side by side, the best of each row marked; the config diff
    cells = panel.metric_cells()
    val = [float(v.split()[0]) for v in cells["final validation loss ↓"]]
    best = int(np.argmin(val))
    assert [BEST in v for v in cells["final validation loss ↓"]] == [i == best for i in range(3)]
    diff = panel.diff_rows()
    assert diff["model.latent"] == ["2", "4", "8"] and diff["train.epochs"] == ["2", "3", "4"]
    assert "model.arch" not in diff

    with qtbot.waitSignal(panel.evaluated, timeout=60000):
        qtbot.mouseClick(find_by_name(w, "Evaluate ticked runs"), Qt.MouseButton.LeftButton)
    cells = panel.metric_cells()
    recon = cells["reconstruction MSE ↓"]
    values = [float(v.split()[0]) for v in recon]
    assert [BEST in v for v in recon] == [i == int(np.argmin(values)) for i in range(3)]
    assert all(BEST not in v for v in cells["PCA MSE (same code size)"])
    assert all((run / "evaluation.json").is_file() for run in runs)

    # unticking one removes its curve
    panel.set_ticked(["z2", "z8"])
    assert len(panel.curve_items) == 2 and list(panel.diff_rows()["model.latent"]) == ["2", "8"]

    # double-clicking a run opens it in the studio; the broken one opens nothing
    asked: list[str] = []
    panel.openRequested.connect(asked.append)
    panel._on_double_clicked(0, 1)  # the broken row
    assert asked == []
    z4_rect = table.visualRect(table.model().index(2, 1))
    opened: list[str] = []
    failed: list[str] = []
    w.runOpened.connect(opened.append)
    w.runOpenFailed.connect(failed.append)
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=z4_rect.center())  # a double-click's first press
    qtbot.mouseDClick(table.viewport(), Qt.MouseButton.LeftButton, pos=z4_rect.center())
    qtbot.waitUntil(lambda: bool(opened or failed), timeout=30000)
    assert failed == []
    assert asked == [str(runs[1])] and Path(opened[0]).resolve() == runs[1].resolve()
    qtbot.waitUntil(lambda: w.state.snapshot is not None and w.state.snapshot.model_config.latent == 4, timeout=30000)
    w.close()


BEST = "★"


@pytest.mark.timeout(60)
def test_runs_panel_reports_a_failed_evaluation_per_run(qtbot, tmp_path):
    from PySide6.QtCore import Qt

    from aestudio.ui.runs_panel import RunsPanel

    nan = make_run(tmp_path / "runs" / "nan")
    state = load_file(str(nan / "weights.safetensors"))
    state["to_code.weight"][:] = float("nan")
    save_file(state, str(nan / "weights.safetensors"))
    live = make_run(tmp_path / "runs" / "live")
    write_config(live, lambda d: d.__setitem__("finished", "running"))
    panel = RunsPanel()
    qtbot.addWidget(panel)
    with qtbot.waitSignal(panel.loaded, timeout=10000):
        panel.add_folder(str(tmp_path / "runs"))
    assert [(i.name, i.status) for i in panel.infos] == [("live", "writing"), ("nan", "done")]
    panel.set_ticked(["live"])
    assert not panel.evaluate_button.isEnabled()  # a run still being written is not evaluated
    assert not panel.plot_hint.isVisible() and panel.plot.getPlotItem().getAxis("left").isVisible()
    panel.table.item(1, 0).setCheckState(Qt.CheckState.Checked)
    assert panel.evaluate_button.isEnabled()
    with qtbot.waitSignal(panel.evaluated, timeout=30000):
        panel.evaluate_ticked()
    assert panel.status.text().startswith("Could not evaluate nan: ") and "NaN" in panel.status.text()
    assert "\n" not in panel.status.text() and "Traceback" not in panel.status.text()
    assert panel.infos[1].evaluation is None and not (nan / "evaluation.json").exists()


def test_runs_panel_keeps_its_buttons_at_the_top_of_a_narrow_dock(qtbot, tmp_path):
    """The status line sat beside the buttons: in a 360 px dock "No runs yet: ..." wrapped one word
    per line and pushed the buttons 60 px down. It has its own row under them now."""
    from aestudio.ui.runs_panel import RunsPanel

    panel = RunsPanel()
    qtbot.addWidget(panel)
    panel.resize(360, 520)
    panel.show()
    with qtbot.waitSignal(panel.loaded, timeout=10000):
        panel.add_folder(str(tmp_path))  # a folder without runs
    qtbot.wait(50)
    assert panel.status.text().startswith("No runs yet")
    assert panel.add_button.y() < 20 and panel.status.y() > panel.add_button.geometry().bottom()
    assert panel.status.width() > 300 and panel.status.height() < 4 * panel.status.fontMetrics().height()
    # nothing ticked: the overlay says how to fill it instead of showing empty 0..1 axes
    assert panel.plot_hint.isVisible() and not panel.plot.getPlotItem().getAxis("left").isVisible()
