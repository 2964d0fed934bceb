"""The `auto` optimizer (Muon for conv kernels, Adam for the rest) against Adam alone.

Trains the default conv AE-16 at the command line's default settings (batch 32, learning rate
2e-3, the CLI's step budget: 4,000 optimizer steps at 28x28 gray, 5,300 at 28x28 RGB) with each optimizer setting, on the same sets, splits and
seeds, alternating which goes first, and prints for every cell the validation error relative to
PCA-16's (as `robustness.py` does) and the training time; then, over all cells, the per-pair ratios
`auto / adam` of the error and of the time: median and range. Both sides run the same engine
(`Trainer`), so the time ratio is the cost of the optimizer step alone.

    python3 dev.py bench optimizer_choice                          # photos, fashion-10k, digits; seeds 0 and 1
    python3 dev.py bench optimizer_choice --sets photos --seeds 0,1,2,3
    python3 dev.py bench optimizer_choice --steps 500              # a quick smoke run
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from robustness import load, run_cell  # noqa: E402


def spread(values: list[float], fmt: str = "{:.3f}") -> str:
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", default="photos,fashion-10k,digits")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--steps", type=int, default=None, help="optimizer steps (default: the CLI's budget for each set)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",") if s]
    print(f"optimizer_choice: conv AE-16, batch 32, lr 2e-3, about {args.steps or 'the default number of'} steps; auto (Muon for conv kernels, "
          f"Adam for the rest) against adam; torch {torch.__version__}, {args.threads} threads", flush=True)
    err_ratios, time_ratios = [], []
    with tempfile.TemporaryDirectory(prefix="aestudio-optimizer-") as tmp:
        for name in [s for s in args.sets.split(",") if s]:
            data = load(name, Path(tmp))
            for i, seed in enumerate(seeds):
                order = ("adam", "auto") if i % 2 == 0 else ("auto", "adam")
                cells = {opt: run_cell("ae16", data, args.steps, seed=seed, optimizer=opt) for opt in order}
                a, m = cells["adam"], cells["auto"]
                err_ratios.append(m["vs_pca"] / a["vs_pca"])
                time_ratios.append(m["seconds"] / a["seconds"])
                print(f"  {name:<12} seed {seed}: adam {a['vs_pca']:.3f}x PCA-16 in {a['seconds']:.0f} s, "
                      f"auto {m['vs_pca']:.3f}x in {m['seconds']:.0f} s", flush=True)
    print(f"\nauto / adam over {len(err_ratios)} pairs: error {spread(err_ratios)}, "
          f"time {spread(time_ratios, '{:.2f}')} (median, min-max)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
