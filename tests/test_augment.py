"""Random shifts for small sets (aestudio/core/augment.py): the rule, the shift, and that it helps."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from aestudio.core.augment import max_shift, resolve_shift, shift_batch
from aestudio.core.config import ConfigError, ModelConfig, TrainConfig
from aestudio.core.datasets import load_dataset
from aestudio.core.evaluation import reconstruct_images
from aestudio.core.training import Trainer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from heldout import make_tiny  # noqa: E402


def test_auto_shifts_small_sets_of_large_enough_images_only():
    assert resolve_shift("auto", 160, (1, 28, 28)) == 4  # an eighth of the side
    assert resolve_shift("auto", 999, (3, 64, 64)) == 8
    assert resolve_shift("auto", 999, (1, 16, 16)) == 2
    assert resolve_shift("auto", 1440, (1, 28, 28)) == 4  # text lines: memorised at 1.39x PCA-16 unshifted
    assert resolve_shift("auto", 2400, (1, 28, 28)) == 4  # the benchmark's strokes: 0.37x -> 0.20x shifted
    assert resolve_shift("auto", 3136, (1, 28, 28)) == 0  # four images per value: sees enough
    assert resolve_shift("auto", 4000, (1, 28, 28)) == 0  # Fashion-MNIST 4,000: shifts gained nothing
    assert resolve_shift("auto", 4800, (1, 32, 32)) == 0  # the bundled shapes
    assert resolve_shift("auto", 1600, (3, 28, 28)) == 4  # fewer images than values per image (2,352)
    assert resolve_shift("auto", 9408, (3, 28, 28)) == 0
    assert resolve_shift("auto", 160, (1, 8, 8)) == 0  # a pixel is an eighth of an 8x8 image
    assert resolve_shift("shift", 50_000, (1, 8, 8)) == max_shift((1, 8, 8)) == 1
    assert resolve_shift("none", 10, (1, 28, 28)) == 0


def test_an_unknown_setting_is_a_config_error():
    with pytest.raises(ConfigError, match="augment"):
        TrainConfig(augment="flip").validate()


def test_shift_moves_content_and_pads_with_edges():
    x = torch.zeros(2, 1, 8, 8)
    x[:, :, 3, 4] = 1.0  # one bright pixel
    x[:, :, :, 0] = 0.5  # a left edge column
    gen = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(40):
        y = shift_batch(x, 1, gen)
        assert y.shape == x.shape
        for image in y:
            r, c = (image[0] == 1.0).nonzero()[0].tolist()
            seen.add((r - 3, c - 4))
            assert float(image.min()) >= 0.0 and float(image[0, :, 0].min()) in (0.0, 0.5)
            assert float(image.sum()) >= 1.0  # the bright pixel never leaves: at most 1 px from the middle
    assert seen == {(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)}  # every offset up to 1 px
    assert torch.equal(shift_batch(x, 0, gen), x)


def test_each_image_gets_its_own_offset_and_keeps_its_channels_together():
    x = torch.zeros(64, 3, 12, 12)
    x[:, :, 5, 6] = torch.tensor([0.2, 0.5, 0.9]).view(1, 3)  # one coloured pixel in every image
    y = shift_batch(x, 2, torch.Generator().manual_seed(3))
    where = set()
    for image in y:
        hits = [tuple(image[ch].eq(v).nonzero()[0].tolist()) for ch, v in enumerate((0.2, 0.5, 0.9))]
        assert hits[0] == hits[1] == hits[2]  # the three channels moved as one
        where.add(hits[0])
    assert len(where) > 10  # offsets differ from image to image (25 possible)
    assert all(abs(r - 5) <= 2 and abs(c - 6) <= 2 for r, c in where)


def test_shifts_are_deterministic_for_a_seed():
    x = torch.rand(4, 3, 16, 16)
    a = [shift_batch(x, 2, g) for g in [torch.Generator().manual_seed(5)] for _ in range(3)]
    b = [shift_batch(x, 2, g) for g in [torch.Generator().manual_seed(5)] for _ in range(3)]
    assert all(torch.equal(p, q) for p, q in zip(a, b))


def _val_mse(data, augment: str) -> tuple[float, int]:
    torch.manual_seed(0)
    model = ModelConfig(arch="conv", input_shape=data.shape, latent=16, hidden=[16, 32])
    trainer = Trainer(model, TrainConfig(epochs=80, batch_size=32, lr=2e-3, augment=augment, device="cpu"), data)
    for _ in trainer.run():
        pass
    x_val = trainer.x_val.numpy()
    with torch.no_grad():
        recon = reconstruct_images(trainer.model.eval(), x_val)
    return float(np.mean((recon - x_val) ** 2)), trainer.augment_shift


def test_default_shifts_keep_a_tiny_folder_from_being_memorised(tmp_path):
    """150 images, 320 optimizer steps: without shifts the conv model memorises the 120 training
    images; with the default (auto) its validation error is much lower (0.58x here)."""
    torch.set_num_threads(1)
    data = load_dataset(str(make_tiny(tmp_path / "tiny", n=150)))
    plain, shift_off = _val_mse(data, "none")
    auto, shift_on = _val_mse(data, "auto")
    assert (shift_off, shift_on) == (0, 4)
    assert auto < 0.75 * plain, (auto, plain)


def test_the_log_line_says_why_a_set_is_shifted():
    from aestudio.core.augment import describe

    assert describe(0, 500, (1, 28, 28)) == "no augmentation"
    assert "a small set: 500 training images" in describe(2, 500, (1, 28, 28))
    line = describe(4, 2400, (1, 28, 28))
    assert "up to 4 px" in line and "2,400 training images of 784 values each" in line


def test_auto_never_shifts_a_linear_autoencoder():
    """A linear autoencoder's best is PCA's subspace of the images as they are; shifted copies would
    move it (the Questions guide's linear model ended 33% above PCA-16 with shifts, 1% without)."""
    shape = (1, 28, 28)
    assert resolve_shift("auto", 2250, shape) == 4  # few images per value: a non-linear model is shifted
    assert resolve_shift("auto", 2250, shape, linear=True) == 0
    assert resolve_shift("shift", 2250, shape, linear=True) == 4  # asked for explicitly: still shifted
    from aestudio.core.presets import get_preset

    big = load_dataset("fashion-10k").subset(np.arange(600))  # 480 training images of 28x28: auto shifts them
    linear = get_preset("linear-pca").model_config(big.shape)
    assert Trainer(linear, TrainConfig(epochs=1), big).augment_shift == 0
    dense = ModelConfig(arch="dense", input_shape=big.shape, latent=16)
    assert Trainer(dense, TrainConfig(epochs=5), big).augment_shift == 4  # (long enough to memorise 480 images)


def test_auto_shifts_only_a_run_long_enough_to_memorise_the_set():
    """A short run does not memorise a set, and shifts only make its task harder (the default conv
    AE-16 on 2,240 Fashion-MNIST images at 15 epochs: 0.65x PCA-16 unshifted, 0.80x shifted; at 58
    epochs 0.71x and 0.64x; `dev.py bench augment_effects --part budget`). `auto` shifts from an
    exposure (epochs x values per image / training images) of 7."""
    from aestudio.core.augment import SHIFT_FROM_EXPOSURE, describe_skipped, exposure, shift_epochs

    gray, rgb = (1, 28, 28), (3, 28, 28)
    assert exposure(15, 2240, gray) == pytest.approx(5.25)
    assert resolve_shift("auto", 2240, gray, epochs=8) == 0  # clothes: 0.67x unshifted, 0.87x shifted
    assert resolve_shift("auto", 2240, gray, epochs=15) == 0  # 0.65x and 0.80x
    assert resolve_shift("auto", 2240, gray, epochs=58) == 4  # 0.71x and 0.64x
    assert resolve_shift("auto", 2400, gray, epochs=27) == 4  # strokes: 0.35x and 0.26x
    assert resolve_shift("auto", 1600, rgb, epochs=6) == 4  # photos: 1.005x and 0.981x
    assert resolve_shift("auto", 3200, rgb, epochs=10) == 4  # 3,200 photos, exposure 7.35: 0.857x and 0.833x
    assert resolve_shift("auto", 160, gray, epochs=2) == 4  # a tiny folder is memorised at once
    assert resolve_shift("auto", 2240, gray) == 4  # no budget given: as long as it takes
    assert resolve_shift("shift", 2240, gray, epochs=1) == 4  # asked for: always
    assert resolve_shift("auto", 8000, gray, epochs=500) == 0  # not a small set, however long the run
    n = shift_epochs(2240, gray)
    assert exposure(n, 2240, gray) >= SHIFT_FROM_EXPOSURE > exposure(n - 1, 2240, gray)
    assert resolve_shift("auto", 2240, gray, epochs=n) == 4 and resolve_shift("auto", 2240, gray, epochs=n - 1) == 0
    assert describe_skipped(2240, gray, 15) == ("no random shifts: 15 epochs are too few to memorise 2,240 training "
                                                f"images; auto shifts them in runs of {n} epochs or more")
    assert describe_skipped(480, gray, 1).startswith("no random shifts: 1 epoch is too few")
    assert describe_skipped(2240, gray, 58) == ""  # shifted
    assert describe_skipped(8000, gray, 1) == ""  # never shifted by auto: the epochs are not why


def test_a_short_run_says_why_auto_left_its_small_set_unshifted(tmp_path, capsys):
    """The CLI's augment line names the short budget and how to shift anyway; a continued model
    counts the epochs it has had already."""
    from aestudio import cli

    folder = make_tiny(tmp_path / "small", n=600)  # 480 training images of 28 x 28: shifted from 5 epochs
    out = tmp_path / "run"
    assert cli.main(["train", "--data", str(folder), "--arch", "dense", "--hidden", "16", "--latent", "2",
                     "--epochs", "1", "--batch-size", "128", "--quiet", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert ("augment: no random shifts: 1 epoch is too few to memorise 480 training images; auto shifts them "
            "in runs of 5 epochs or more (--augment shift: on)") in err, err
    data = load_dataset(str(folder))
    cfg = ModelConfig(arch="dense", input_shape=data.shape, hidden=[16], latent=2)
    first = Trainer(cfg, TrainConfig(epochs=4, batch_size=128), data)
    assert first.augment_shift == 0 and "4 epochs are too few" in first.augment_skipped
    for _ in first.run():
        pass
    more = Trainer(cfg, TrainConfig(epochs=1, batch_size=128), data, model=first.model,
                   prior_history=first.history)
    assert more.epoch_offset == 4 and more.augment_shift == 4 and more.augment_skipped == ""


def test_auto_choice_names_what_auto_does_and_why():
    from aestudio.core.augment import auto_choice

    assert auto_choice(480, (1, 28, 28), 5) == (4, "random shifts of up to 4 px (a small set: 480 training images)")
    shift, why = auto_choice(480, (1, 28, 28), 1)
    assert shift == 0 and why.startswith("no random shifts: 1 epoch is too few")
    assert auto_choice(480, (1, 8, 8), 50) == (0, "no random shifts: images under 16 px, where a pixel is much of the image")
    assert "linear model" in auto_choice(480, (1, 28, 28), 50, linear=True)[1]
    assert auto_choice(8000, (1, 28, 28), 50) == (0, "no random shifts: 8,000 training images are enough not to be memorised")
