"""Does a linear autoencoder learn PCA? (issue 10: within 5% of PCA-16's error on the bundled set)

Trains the linear dense autoencoder 784 -> 16 -> 784 (no hidden layer, linear output) through the
command line's own path, `aestudio train`, at the CLI defaults (batch 32, Adam 2e-3, about 4,000
optimizer steps) and at a lower learning rate, then scores it with `aestudio evaluate` on the run's
validation split, where PCA-16 is fitted on the same training split. Both reconstructions are
clipped to [0, 1] (the image range). Prints one line per setting and writes the numbers as JSON.

    python3 dev.py bench linear_pca                    # both settings, about 2 minutes on 2 cores
    python3 dev.py bench linear_pca --lr 2e-3          # one setting

Target: recon_mse <= 1.05 x pca_mse, with subspace_angle_deg (mean principal angle between the
decoder's columns and PCA's 16 components) reported.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def measure(data: str, latent: int, lr: float, threads: int, work: Path) -> dict:
    from aestudio import cli

    out = work / f"linear{latent}-lr{lr:g}"
    t0 = time.perf_counter()
    rc = cli.main(["train", "--data", data, "--arch", "dense", "--hidden", "none", "--output", "linear",
                   "--latent", str(latent), "--lr", str(lr), "--threads", str(threads), "--quiet", "--overwrite",
                   "--out", str(out)])
    if rc != 0:
        raise SystemExit(f"training failed with status {rc}")
    seconds = time.perf_counter() - t0
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = cli.main(["evaluate", str(out), "--json", "--threads", str(threads)])
    if rc != 0:
        raise SystemExit(f"evaluation failed with status {rc}")
    r = json.loads(buf.getvalue())
    return {"data": data, "latent": latent, "lr": lr, "recon_mse": r["recon_mse"], "pca_mse": r["pca_mse"],
            "ratio": r["recon_mse"] / r["pca_mse"], "subspace_angle_deg": r["subspace_angle_deg"],
            "train_seconds": round(seconds, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="fashion-10k")
    ap.add_argument("--latent", type=int, default=16)
    ap.add_argument("--lr", type=float, action="append", help="learning rate(s) (default: 2e-3 and 5e-4)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "out" / "linear_pca.json"))
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for lr in args.lr or [2e-3, 5e-4]:
            row = measure(args.data, args.latent, lr, args.threads, Path(tmp))
            rows.append(row)
            ok = "met" if row["ratio"] <= 1.05 else "MISSED"
            print(f"{row['data']} linear {row['latent']}, lr {lr:g}: MSE {row['recon_mse']:.5f} vs PCA-{row['latent']} "
                  f"{row['pca_mse']:.5f} = {row['ratio']:.3f}x ({ok}: <= 1.05x), subspace angle "
                  f"{row['subspace_angle_deg']:.2f} deg, trained in {row['train_seconds']:.0f} s", flush=True)
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=2))
    return 0 if all(r["ratio"] <= 1.05 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
