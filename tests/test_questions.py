"""The Questions guide: the registry, each experiment at the tiny budget, the files it writes,
the `aestudio questions` command, the presets, and the Questions window of the studio."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

from aestudio.cli import main
from aestudio.core.config import TrainConfig
from aestudio.core.models import Autoencoder
from aestudio.core.presets import PRESETS, get_preset
from aestudio.core.questions import QUESTIONS, get_question, run_question
from aestudio.core.questions.base import fmt_num
from aestudio.core.questions.report import write_answer

#: The experiments that take longest at the tiny budget (PCA fits, probes, three or more models).
HEAVY = {2, 4, 5, 10, 11, 21}
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def quoted_numbers(text: str, numbers: dict) -> set[str]:
    """The numbers of numbers.json that the text quotes (as whole numeric tokens)."""
    tokens = set(NUMBER.findall(text))
    return {fmt_num(v) for v in numbers.values()} & tokens


def test_list_prints_at_least_twenty_numbered_questions(capsys):
    assert main(["questions", "--list"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) >= 20 and len(lines) == len(QUESTIONS)
    for i, line in enumerate(lines, start=1):
        assert re.match(rf"\s*{i}\. \S", line), line


def test_registry_is_complete_and_numbered_in_order():
    assert [q.number for q in QUESTIONS] == list(range(1, len(QUESTIONS) + 1))
    assert len({q.key for q in QUESTIONS}) == len(QUESTIONS)
    for q in QUESTIONS:
        assert q.title and q.question.endswith("?") and q.topic and callable(q.experiment)
        assert get_question(q.key) is q and get_question(str(q.number)) is q
    with pytest.raises(KeyError):
        get_question(len(QUESTIONS) + 1)


@pytest.mark.parametrize("number", [pytest.param(q.number, marks=pytest.mark.slow) if q.number in HEAVY else q.number
                                    for q in QUESTIONS])
def test_each_question_runs_and_writes_this_runs_numbers(number, tmp_path, torch_one_thread):
    q = get_question(number)
    answer = run_question(number, budget="tiny")
    paths = write_answer(q, answer, tmp_path / "out")
    for key in ("markdown", "figure", "numbers"):
        assert paths[key].is_file()
    saved = json.loads(paths["numbers"].read_text())
    assert saved["question"] == number and saved["budget"] == "tiny"
    assert saved["numbers"] == answer.numbers and len(answer.numbers) >= 2
    assert all(isinstance(v, (int, float)) for v in saved["numbers"].values())
    # the conclusion quotes at least two of the numbers this run measured
    assert len(quoted_numbers(answer.conclusion, saved["numbers"])) >= 2, answer.conclusion
    png = np.asarray(Image.open(paths["figure"]).convert("RGB"))
    assert png.shape == answer.figure.shape and png.std() > 0  # a drawn figure, not a blank image
    md = paths["markdown"].read_text()
    assert q.question in md and "](figure.png)" in md and "## Measured numbers" in md
    assert answer.conclusion in md and answer.next_step in md
    assert answer.runs and all("steps" in r for r in answer.runs if "parameters" in r)


def test_same_seed_same_numbers_other_seed_other_numbers(torch_one_thread):
    a = run_question(14, budget="tiny", seed=0)
    b = run_question(14, budget="tiny", seed=0)
    c = run_question(14, budget="tiny", seed=1)
    assert a.numbers == b.numbers
    assert a.numbers != c.numbers  # measured on this run's data and training, not canned


def test_cli_run_writes_three_files_and_a_self_contained_page(tmp_path, capsys, torch_one_thread):
    out = tmp_path / "q20"
    assert main(["questions", "--run", "20", "--out", str(out), "--budget", "tiny", "--html", "--threads", "1"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["answer.html", "answer.md", "figure.png", "numbers.json"]
    page = (out / "answer.html").read_text()
    assert "data:image/png;base64," in page and "src=\"figure.png\"" not in page
    numbers = json.loads((out / "numbers.json").read_text())["numbers"]
    assert fmt_num(numbers["tied_parameters"]) in page
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize("args", [["--run", "0"], ["--run", "99"], ["--run", "seven"]])
def test_bad_question_number_is_one_line_and_exit_2(args, tmp_path, capsys):
    assert main(["questions", *args, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("aestudio: error:") and "question" in err[0]


def test_unwritable_folder_is_one_line_and_exit_2_before_training(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["questions", "--run", "1", "--out", str(blocker)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("aestudio: error:") and "not a folder" in err[-1]
    assert main(["questions", "--run", "1"]) == 2  # --out is needed
    assert "--out" in capsys.readouterr().err


def test_stopping_an_experiment_raises_cancelled():
    from aestudio.core.questions import Cancelled
    from aestudio.core.training import Control

    control = Control()
    control.stop()
    with pytest.raises(Cancelled):
        run_question(1, budget="tiny", control=control)


# ---- presets ------------------------------------------------------------------------------------
def test_every_preset_builds_a_valid_model():
    for p in PRESETS:
        cfg, train = p.apply((1, 28, 28), TrainConfig())
        assert cfg.problems() == [], p.key
        Autoencoder(cfg)
        assert p.explanation and p.title
    hands_on = get_preset("hands-on").model_config()
    assert hands_on.arch == "dense" and hands_on.hidden_sizes == [] and hands_on.latent == 32
    linear = get_preset("linear-pca").model_config()
    assert linear.activation == "linear" and linear.output == "linear" and linear.hidden_sizes == []
    over = get_preset("overcomplete").model_config()
    assert over.latent > over.input_dim and over.warnings()
    assert get_preset("denoiser").apply((1, 28, 28), TrainConfig())[1].noise == "gaussian:0.5"
    assert get_preset("stacked").model_config().stacked
    with pytest.raises(KeyError):
        get_preset("nope")


# ---- the studio ----------------------------------------------------------------------------------
def test_presets_button_sets_up_builder_and_noise(qtbot):
    from aestudio.ui.presets_menu import PresetsButton
    from aestudio.ui.state import StudioState

    state = StudioState()
    button = PresetsButton(state)
    qtbot.addWidget(button)
    assert button.accessibleName() == "Presets"
    assert set(button.actions_by_key) == {p.key for p in PRESETS}
    button.actions_by_key["denoiser"].trigger()
    assert state.train_config.noise == "gaussian:0.5" and state.model_config.arch == "conv"
    button.apply("hands-on")
    assert state.model_config.hidden_sizes == [] and state.model_config.latent == 32
    assert state.train_config.noise == "none"


def test_questions_window_runs_a_question_in_the_worker(qtbot, torch_one_thread):
    from conftest import find_by_name
    from test_app import make_window

    w = make_window(qtbot)  # digits, 1x8x8
    action = next(a for m in w.menuBar().actions() if m.menu() for a in m.menu().actions()
                  if a.text() == "&Questions guide…")
    action.trigger()
    window = find_by_name(w.questions_window, "Questions")
    assert window is w.questions_window and window.isVisible()
    panel = window.panel
    assert panel.list.count() == len(QUESTIONS)
    panel.select(14)
    panel.budget.setCurrentIndex(panel.budget.findData("tiny"))
    qtbot.mouseClick(find_by_name(panel, "Run experiment"), pytest.importorskip("PySide6.QtCore").Qt.MouseButton.LeftButton)
    assert panel.busy and not panel.run_button.isEnabled()  # the GUI thread is free while it trains
    qtbot.waitUntil(lambda: 14 in panel.answers, timeout=60000)
    answer = panel.answers[14]
    assert quoted_numbers(panel.answer.toPlainText(), answer.numbers)
    assert not panel.figure.pixmap().isNull()
    assert panel.run_button.isEnabled() and not panel.busy
    # the builder now holds the question's model, at the studio's image shape
    assert w.state.model_config.kind == "vae" and w.state.model_config.latent == answer.model_config.latent
    assert tuple(w.state.model_config.input_shape) == tuple(w.state.dataset.shape)
    # and the related lab is open
    assert w.labs_window is not None and w.labs_window.tabs.currentWidget().title == "Latent health"
    w.close()
