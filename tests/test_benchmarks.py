"""The benchmarks that the README quotes stay runnable: every script parses on this Python, and the
robustness matrix runs end to end on a small written folder (a smoke run, no quality asserted)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.parametrize("path", sorted(BENCH.glob("*.py")), ids=lambda p: p.name)
def test_benchmark_script_parses(path):
    compile(path.read_text(), str(path), "exec")  # a SyntaxError on this Python fails here


def test_robustness_runs_on_a_written_folder_at_its_image_size_and_seed(capsys, monkeypatch):
    import torch

    monkeypatch.syspath_prepend(str(BENCH))
    import robustness

    threads = torch.get_num_threads()
    try:
        robustness.main(["--sets", "tiny", "--models", "ae16", "--steps", "20", "--image-size", "16",
                         "--seed", "1", "--threads", "1"])
    finally:
        torch.set_num_threads(threads)
        sys.modules.pop("robustness", None)
    out = capsys.readouterr().out
    assert "seed 1;" in out and "tiny-size16: 200 images 1x16x16" in out  # made at 16 px, not enlarged
    # 160 training images are 5 batches of 32: 20 steps would be 4 epochs, and the least is 5
    assert "5 epochs / 25 steps" in out and "| tiny | " in out and "of 1 met" in out


def test_text_maker_writes_dark_letters_on_white_in_two_classes(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    from heldout import make_text

    from aestudio.core.datasets import load_dataset

    data = load_dataset(str(make_text(tmp_path / "text", n=40)))
    assert data.n == 40 and data.shape == (1, 28, 28) and data.class_names == ["lower", "upper"]
    x = data.images.astype(float) / 255
    assert 0.6 < float((x > 0.9).mean()) < 0.99  # mostly white paper ...
    assert float(x.min(axis=(1, 2, 3)).max()) < 0.75  # ... and every image has dark ink on it
    again = load_dataset(str(make_text(tmp_path / "again", n=40)))
    assert (again.images == data.images).all()  # seeded: the same folder every time
