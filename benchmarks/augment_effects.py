"""What random shifts do where a model is compared with PCA: the anomaly lab and a small centred set.

    python3 dev.py bench augment_effects [--part anomaly|subset|budget|both] [--seed 0]
                                         [--sets fashion-2800,photos,tiny] [--steps 500,1000,2000,4000]

`auto` augmentation shifts training sets with fewer than 1,000 images, or fewer than four images
per pixel value (aestudio/core/augment.py). Two places where that matters, each run shifted and
unshifted on the bundled `fashion-10k` (centred clothes), one torch thread:

* ``anomaly``: the Anomaly lab's one-class model (studio defaults: the default conv AE-16, its
  step budget; class 0 normal, 789 training images) scored on the validation split; AUROC of its
  reconstruction error for "not class 0", against PCA-16 fitted on the same normal images. The lab
  trains unshifted unless `shift` is asked for (`labs.anomaly.train_normal_model`).
* ``subset``: the default conv AE-16 at the default budget (4,000 steps of 32) on a seeded subset of
  2,800 images (2,240 to train, which `auto` shifts), error on validation images as a multiple of
  PCA-16's (`robustness.run_cell`).
* ``budget``: whether shifts pay off at a given training budget. The default conv AE-16 (batch 32)
  unshifted and shifted at each of `--steps` optimizer steps on each of `--sets` (`fashion-2800`:
  the seeded subset above; `photos`, `tiny`: `benchmarks/heldout.py`'s folders, written to a
  temporary folder; `photos-4000`: that maker with another image count), with the run's exposure (epochs x values per image / training images) and
  what `auto` chooses for it (it shifts from ``augment.SHIFT_FROM_EXPOSURE``). Not part of `both`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import aestudio  # noqa: E402,F401  (first: sets OpenMP's spin-wait before torch loads)
import numpy as np  # noqa: E402
import torch  # noqa: E402

from aestudio.core.config import ModelConfig, TrainConfig  # noqa: E402
from aestudio.core.datasets import load_dataset, split_indices  # noqa: E402
from aestudio.core.labs import anomaly as an  # noqa: E402


def anomaly(seed: int) -> None:
    data = load_dataset("fashion-10k")
    tr, va = split_indices(data.n, 0.2, seed)
    train, val = data.subset(tr), data.subset(va)
    mcfg = ModelConfig(input_shape=data.shape)
    x_val = val.images.astype(np.float32) / 255
    for augment in ("shift", "auto"):
        t = an.train_normal_model(mcfg, train, [0], seed=seed, val_set=val,
                                  train_config=TrainConfig(batch_size=32, lr=2e-3, augment=augment, seed=seed))
        r = an.normal_class_result(an.error_scores(t.model.eval(), x_val), val, train, [0], 16, seed)
        label = "shifted (augment shift)" if augment == "shift" else "unshifted (the lab's auto)"
        print(f"anomaly lab, class 0 normal ({r.n_train} images), {label:<28} AUROC {r.model_roc.auroc:.3f}"
              f"   PCA-16 {r.pca_roc.auroc:.3f}", flush=True)


def subset(seed: int) -> None:
    import robustness as R

    data = load_dataset("fashion-10k")
    data = data.subset(np.sort(np.random.default_rng(seed).choice(data.n, 2800, replace=False)))
    for augment in ("auto", "none"):
        cell = R.run_cell("ae16", data, seed=seed, augment=augment)
        label = "shifted (auto)" if augment == "auto" else "unshifted (none)"
        print(f"conv AE-16, 2,800 fashion-10k images, {label:<17} {cell['vs_pca']:.3f}x PCA-16 on validation "
              f"({cell['seconds']:.0f} s)", flush=True)


def budget(seed: int, sets: list[str], steps_list: list[int]) -> None:
    import tempfile

    import robustness as R

    from aestudio.core.augment import exposure, resolve_shift

    with tempfile.TemporaryDirectory() as tmp:
        for name in sets:
            if name == "fashion-2800":
                data = load_dataset("fashion-10k")
                data = data.subset(np.sort(np.random.default_rng(seed).choice(data.n, 2800, replace=False)))
            elif name.rsplit("-", 1)[-1].isdigit():  # a written folder with another image count: photos-4000
                base, count = name.rsplit("-", 1)
                data = R.load(base, Path(tmp), int(count))
            else:
                data = R.load(name, Path(tmp))
            n_train = data.n - max(1, round(data.n * 0.2))
            shape = tuple(data.shape)
            for steps in steps_list:
                ratio = {a: R.run_cell("ae16", data, steps, seed=seed, augment=a) for a in ("none", "shift")}
                epochs = ratio["none"]["epochs"]
                auto = "shifted" if resolve_shift("auto", n_train, shape, epochs=epochs) else "unshifted"
                better = "shifted" if ratio["shift"]["vs_pca"] < ratio["none"]["vs_pca"] else "unshifted"
                print(f"{name:<12} {n_train:>5,} training images, {steps:>5,} steps ({epochs:>3} epochs, exposure "
                      f"{exposure(epochs, n_train, shape):6.1f}): unshifted {ratio['none']['vs_pca']:.3f}x, shifted "
                      f"{ratio['shift']['vs_pca']:.3f}x PCA-16; better: {better:<9} auto: {auto}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=("anomaly", "subset", "budget", "both"), default="both")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sets", default="fashion-2800,photos,tiny", help="budget: the sets, comma-separated")
    ap.add_argument("--steps", default="500,1000,2000,4000", help="budget: the step budgets, comma-separated")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.part in ("anomaly", "both"):
        anomaly(args.seed)
    if args.part in ("subset", "both"):
        subset(args.seed)
    if args.part == "budget":
        budget(args.seed, [x for x in args.sets.split(",") if x], [int(x) for x in args.steps.split(",") if x])


if __name__ == "__main__":
    main()
