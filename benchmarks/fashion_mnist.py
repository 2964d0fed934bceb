"""Quality on Fashion-MNIST after 10 epochs, against plain-PyTorch anchors run in the same process.

    python3 dev.py bench fashion_mnist [--epochs 10] [--threads 2] [--only conv,vae,...] [--data fashion-10k]

Trains on the 60,000 training images and measures on the 10,000 test images with the same
`aestudio.core.evaluation` code the CLI and the studio use. Each anchor is the plain-PyTorch
script a user would write for the same task (benchmarks/anchors.py: its own model, loop and
measure), trained here on the same images with the same epochs (lower is better for MSE and
nats, higher for PSNR and AUROC). The full set comes from Debian's `dataset-fashion-mnist`, the
user cache, or a download; ``--data fashion-10k`` runs on the bundled 10,000 images instead
(a seeded 8,000 / 2,000 split), for a quick check.
"""
from __future__ import annotations

import argparse
import json
import time

import aestudio  # noqa: F401  (first: sets OpenMP's spin-wait before torch loads)
import numpy as np
import torch

from aestudio.core.config import ModelConfig, TrainConfig
from aestudio.core.datasets import ImageSet, load_dataset
from aestudio.core.evaluation import anomaly_auroc, anomaly_scores, elbo_nats, fit_pca, pca_baseline, pca_reconstruct, psnr, recon_mse, reconstruct_images
from aestudio.core.noise import parse_noise
from aestudio.core.training import Trainer

import anchors
from aestudio.core.datasets import split_indices


def train(cfg: ModelConfig, tcfg: TrainConfig, train: ImageSet, test: ImageSet) -> Trainer:
    trainer = Trainer(cfg, tcfg, train, val_data=test)
    t0 = time.perf_counter()
    for e in trainer.run():
        if type(e).__name__ == "EpochEnd":
            print(f"    epoch {e.epoch:2d}: train {e.train['total']:.2f}  val {e.val['total']:.2f}  "
                  f"({e.images_per_sec:,.0f} img/s)", flush=True)
    print(f"    trained in {time.perf_counter() - t0:.0f} s", flush=True)
    trainer.model.eval()
    return trainer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", default="pca,conv,vae,denoise,anomaly")
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--data", choices=["fashion-mnist", "fashion-10k"], default="fashion-mnist")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    only = set(args.only.split(","))
    if args.data == "fashion-mnist":
        full = load_dataset("fashion-mnist", allow_download=False)
        train_set, test_set = full.subset(np.arange(60_000)), full.subset(np.arange(60_000, 70_000))
    else:
        small = load_dataset("fashion-10k")
        tr, te = split_indices(small.n, 0.2, 0)
        train_set, test_set = small.subset(tr), small.subset(te)
    xtr, xte = train_set.as_float(), test_set.as_float()
    results: dict[str, float] = {}
    anchor: dict[str, float] = {}
    t_all = time.perf_counter()

    if "pca" in only:
        results["pca32_mse"] = pca_baseline(xtr, xte, 32)["mse"]
        anchor["pca32_mse"] = anchors.pca_mse(xtr, xte, 32)
        print(f"PCA-32 test MSE {results['pca32_mse']:.4f} (numpy SVD {anchor['pca32_mse']:.4f})", flush=True)

    if "conv" in only:
        print("conv AE, latent 32", flush=True)
        t = train(ModelConfig(arch="conv", latent=32), TrainConfig(epochs=args.epochs), train_set, test_set)
        results["conv32_mse"] = recon_mse(t.model, xte)
        anchor["conv32_mse"] = anchors.conv_ae_mse(xtr, xte, args.epochs)

    if "vae" in only:
        # the pytorch/examples VAE: batch 128, Adam 1e-3, BCE; its layers use PyTorch's default
        # (uniform, fan-in scaled) initialisation, closest to Xavier here (He init gave 245.1 nats)
        print("VAE 784-400-20 (dense, BCE, Xavier init)", flush=True)
        cfg = ModelConfig(arch="dense", kind="vae", hidden=[400], latent=20, loss="bce", init="xavier",
                          activation="relu")  # the reference's architecture, ReLU included
        t = train(cfg, TrainConfig(epochs=args.epochs), train_set, test_set)
        results["vae_nats"] = elbo_nats(t.model, xte)
        anchor["vae_nats"] = anchors.vae_neg_elbo(xtr, xte, args.epochs)

    if "denoise" in only:
        print("MLP denoiser, latent 32, gaussian:0.5", flush=True)
        cfg = ModelConfig(arch="dense", latent=32, hidden=[512, 256])
        t = train(cfg, TrainConfig(epochs=args.epochs, noise="gaussian:0.5"), train_set, test_set)
        gen = torch.Generator().manual_seed(0)
        noisy = parse_noise("gaussian:0.5").apply(torch.from_numpy(xte), gen).numpy()
        results["denoise_psnr_noisy"] = psnr(xte, noisy)
        results["denoise_psnr"] = psnr(xte, reconstruct_images(t.model, noisy))
        anchor["denoise_psnr_noisy"], anchor["denoise_psnr"] = anchors.denoiser_psnr(xtr, xte, args.epochs)

    if "anomaly" in only:
        print("one-class anomaly detection, each class as the normal one (dense AE latent 32 vs PCA-32)", flush=True)
        ae, pca = [], []
        for c in range(10):
            normal = train_set.subset(np.flatnonzero(train_set.labels == c))
            cfg = ModelConfig(arch="dense", latent=32, hidden=[512, 256])
            t = Trainer(cfg, TrainConfig(epochs=args.epochs), normal, val_data=test_set)
            for _ in t.run():
                pass
            is_anomaly = test_set.labels != c
            ae.append(anomaly_auroc(anomaly_scores(t.model.eval(), xte), is_anomaly))
            p = fit_pca(normal.as_float(), 32)
            pca_scores = ((pca_reconstruct(p, xte) - xte) ** 2).reshape(len(xte), -1).mean(1)
            pca.append(anomaly_auroc(pca_scores, is_anomaly))
            print(f"    class {c} ({test_set.class_names[c]}): AE {100 * ae[-1]:.1f}  PCA {100 * pca[-1]:.1f}", flush=True)
        results["anomaly_auroc"] = 100 * float(np.mean(ae))
        results["anomaly_auroc_pca"] = 100 * float(np.mean(pca))
        anchor["anomaly_auroc"], anchor["anomaly_auroc_pca"] = anchors.anomaly_auroc(
            xtr, train_set.labels, xte, test_set.labels, args.epochs)

    print(f"\n{args.data} test set, {args.epochs} epochs, {args.threads} threads, {time.perf_counter() - t_all:.0f} s in all")
    print(f"{'measure':<22}{'aestudio':>10}{'anchor':>10}  better is")
    better = {"pca32_mse": "lower", "conv32_mse": "lower", "vae_nats": "lower", "denoise_psnr": "higher",
              "denoise_psnr_noisy": "(input)", "anomaly_auroc": "higher", "anomaly_auroc_pca": "higher"}
    for k, v in results.items():
        print(f"{k:<22}{v:>10.4g}{anchor[k]:>10.4g}  {better[k]}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"aestudio": results, "anchor": anchor}, f, indent=1)


if __name__ == "__main__":
    main()
