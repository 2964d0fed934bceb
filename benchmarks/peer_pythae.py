"""aestudio against pythae, a public VAE library, on the same VAE, data, split and budget.

    python3 dev.py bench peer_pythae [--repeats 5] [--epochs 10] [--threads 2] [--samples 10] [--no-amp] [--no-bare]

The model is the pytorch/examples VAE: 784-400-20 dense, ReLU, sigmoid output, BCE, Adam 1e-3,
batch 128, 10 epochs. Data: the bundled Fashion-MNIST 10,000 images, a seeded 8,000 / 2,000
split; both libraries train on the same 8,000 and validate on the same 2,000 after each epoch.

Timing: each side from before it builds its model to after its last epoch (pythae's
``TrainingPipeline`` call, aestudio's ``Trainer`` run to ``Finished``), both with per-epoch
validation; the sides alternate for ``--repeats`` rounds; medians and spreads are printed.

Quality: the negative ELBO in nats per test image, with one estimator for both, written here:
analytic KL to N(0, I) plus the Bernoulli negative log-likelihood of the decoder's probabilities
(clamped to [1e-6, 1 - 1e-6]) averaged over ``--samples`` seeded reparameterised draws per image;
the one-draw figure is printed too. Lower is better.

pythae is optional (``pip install pythae``); without it, the script says so and only the
aestudio side runs. Goals: aestudio's time <= 0.6x pythae's, with its -ELBO at or below pythae's.

A reference side, ``bare PyTorch``, is the loop a competent user writes by hand for the same
model: index slices of one in-memory tensor, BCE on logits, PyTorch's default Adam, the same
per-epoch validation, nothing else. It is timed and scored like the others. Its time against
pythae's shows how much of the 0.6 goal float32 arithmetic alone allows on the machine it runs
on; ``--no-bare`` leaves it out.

On a CPU with bfloat16 instructions (AVX512-BF16 or AMX) a third side, ``aestudio --amp``, trains
the same model with mixed precision (products in bfloat16, weights, sums and losses in float32);
it is timed and scored like the others and reported on its own line. ``--no-amp`` leaves it out.
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
import warnings

os.environ.setdefault("TQDM_DISABLE", "1")  # pythae's progress bars, before tqdm is imported

import aestudio  # noqa: F401  (first: sets OpenMP's spin-wait before torch loads)
import torch
import torch.nn.functional as F
from torch import nn

from aestudio.core.config import ModelConfig, TrainConfig
from aestudio.core.datasets import load_dataset, split_indices
from aestudio.core.training import Finished, Trainer, cpu_has_bf16

EPS = 1e-6


def neg_elbo(encode, decode, x: torch.Tensor, samples: int, seed: int = 0) -> float:
    """-ELBO in nats per image. ``encode(x) -> (mu, logvar)``, ``decode(z) -> probabilities``."""
    gen = torch.Generator().manual_seed(seed)
    total = 0.0
    with torch.no_grad():
        for xb in x.split(500):
            mu, logvar = encode(xb)
            kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)
            nll = torch.zeros_like(kl)
            for _ in range(samples):
                z = mu + torch.randn(mu.shape, generator=gen) * torch.exp(0.5 * logvar)
                p = decode(z).reshape(xb.shape[0], -1).clamp(EPS, 1 - EPS)
                nll += F.binary_cross_entropy(p, xb.reshape(xb.shape[0], -1), reduction="none").sum(1)
            total += float((nll / samples + kl).sum())
    return total / x.shape[0]


# ---- aestudio ----------------------------------------------------------------------------------
def run_aestudio(train, test, epochs: int, init: str, kl_warmup: float, amp: bool = False):
    t0, c0 = time.perf_counter(), time.process_time()
    cfg = ModelConfig(arch="dense", kind="vae", input_shape=(1, 28, 28), hidden=[400], latent=20, loss="bce",
                      init=init, activation="relu")  # the peer's model: ReLU, not aestudio's default
    trainer = Trainer(cfg, TrainConfig(epochs=epochs, batch_size=128, lr=1e-3, kl_warmup=kl_warmup, device="cpu",
                                       amp=amp),
                      train, val_data=test)
    assert not amp or trainer._amp_dtype is not None, trainer.notes
    for event in trainer.run():
        last = event
    seconds = (time.perf_counter() - t0, time.process_time() - c0)
    assert isinstance(last, Finished) and last.reason == "completed", last
    m = trainer.model.eval()

    def encode(x):
        code = m.encode(x)
        return code.mu, code.logvar

    return seconds, encode, m.decode


# ---- bare PyTorch (a reference: the hand-written loop) ----------------------------------------
def run_bare(x_train: torch.Tensor, x_test: torch.Tensor, epochs: int):
    t0, c0 = time.perf_counter(), time.process_time()
    torch.manual_seed(0)
    enc, heads = nn.Sequential(nn.Flatten(), nn.Linear(784, 400), nn.ReLU()), nn.Linear(400, 40)
    dec = nn.Sequential(nn.Linear(20, 400), nn.ReLU(), nn.Linear(400, 784))
    params = [*enc.parameters(), *heads.parameters(), *dec.parameters()]
    opt = torch.optim.Adam(params, lr=1e-3)
    xt, xv = x_train.reshape(len(x_train), -1), x_test.reshape(len(x_test), -1)

    def encode(x):
        return heads(enc(x)).chunk(2, 1)  # mu, logvar

    def loss_of(x):
        mu, logvar = encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        nll = F.binary_cross_entropy_with_logits(dec(z), x, reduction="sum")
        return (nll + 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum()) / len(x)

    history = []  # validation loss per epoch, as a user's loop would log it
    for _ in range(epochs):
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 128):
            loss = loss_of(xt[perm[i:i + 128]])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        with torch.no_grad():
            history.append(sum(float(loss_of(xb)) * len(xb) for xb in xv.split(128)) / len(xv))
    seconds = (time.perf_counter() - t0, time.process_time() - c0)
    return seconds, encode, lambda z: torch.sigmoid(dec(z))


# ---- pythae ------------------------------------------------------------------------------------
def run_pythae(x_train: torch.Tensor, x_test: torch.Tensor, epochs: int, out_dir: str):
    from pythae.models import VAE, VAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder
    from pythae.pipelines import TrainingPipeline
    from pythae.trainers import BaseTrainerConfig

    class Encoder(BaseEncoder):
        def __init__(self):
            super().__init__()
            self.hidden = nn.Sequential(nn.Flatten(), nn.Linear(784, 400), nn.ReLU())
            self.mu, self.logvar = nn.Linear(400, 20), nn.Linear(400, 20)

        def forward(self, x):
            h = self.hidden(x)
            return ModelOutput(embedding=self.mu(h), log_covariance=self.logvar(h))

    class Decoder(BaseDecoder):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(20, 400), nn.ReLU(), nn.Linear(400, 784), nn.Sigmoid())

        def forward(self, z):
            return ModelOutput(reconstruction=self.net(z).reshape(-1, 1, 28, 28))

    t0, c0 = time.perf_counter(), time.process_time()
    torch.manual_seed(0)
    config = VAEConfig(input_dim=(1, 28, 28), latent_dim=20, reconstruction_loss="bce")
    model = VAE(config, encoder=Encoder(), decoder=Decoder())
    trainer_config = BaseTrainerConfig(output_dir=out_dir, num_epochs=epochs, learning_rate=1e-3,
                                       per_device_train_batch_size=128, per_device_eval_batch_size=128,
                                       no_cuda=True, seed=0)
    TrainingPipeline(training_config=trainer_config, model=model)(train_data=x_train, eval_data=x_test)
    seconds = (time.perf_counter() - t0, time.process_time() - c0)
    model.eval()

    def encode(x):
        out = model.encoder(x)
        return out.embedding, out.log_covariance

    return seconds, encode, lambda z: model.decoder(z).reconstruction


def spread(values: list[float], fmt: str) -> str:
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--samples", type=int, default=10, help="draws per image for the -ELBO estimate")
    ap.add_argument("--init", default="he", help="aestudio's weight initialisation (he or xavier)")
    ap.add_argument("--kl-warmup", type=float, default=None, help="aestudio's KL warm-up fraction (default: its default)")
    ap.add_argument("--aestudio-only", action="store_true", help="skip pythae (to compare aestudio settings)")
    ap.add_argument("--no-amp", action="store_true", help="leave out the aestudio --amp side")
    ap.add_argument("--no-bare", action="store_true", help="leave out the bare PyTorch reference side")
    args = ap.parse_args()
    with_amp = not args.no_amp and cpu_has_bf16()
    torch.set_num_threads(args.threads)
    data = load_dataset("fashion-10k")
    train_idx, test_idx = split_indices(data.n, 0.2, 0)
    train, test = data.subset(train_idx), data.subset(test_idx)
    x_train, x_test = torch.from_numpy(train.as_float()), torch.from_numpy(test.as_float())
    warmup = TrainConfig().kl_warmup if args.kl_warmup is None else args.kl_warmup
    try:
        import pythae  # noqa: F401
        have_pythae = not args.aestudio_only
    except ImportError:
        have_pythae = False
        print("pythae is not installed (pip install pythae): measuring aestudio only")
    logging.getLogger("pythae").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="pythae")
    print(f"Fashion-MNIST 10k: {len(train_idx):,} train / {len(test_idx):,} test; 784-400-20 VAE, BCE, Adam 1e-3, "
          f"batch 128, {args.epochs} epochs, {args.threads} threads; aestudio init {args.init}, KL warm-up {warmup:g}",
          flush=True)
    if not with_amp:
        print("aestudio --amp: " + ("left out (--no-amp)" if args.no_amp else
                                    "left out: this CPU has no bfloat16 instructions (AVX512-BF16 or AMX)"))
    # one-time costs of the process, paid before the timed rounds so neither side carries them:
    # torch imports its compiler stack (torch._dynamo, seconds) when the first optimizer is built
    torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])
    if have_pythae:
        import pythae.models, pythae.pipelines, pythae.trainers  # noqa: E401,F401
    names = ["aestudio", *(["aestudio --amp"] if with_amp else []), *([] if args.no_bare else ["bare PyTorch"]),
             "pythae"]
    rows: dict[str, dict[str, list[float]]] = {name: {} for name in names}
    for r in range(args.repeats):
        sides = names if r % 2 == 0 else names[::-1]
        for side in sides:
            if side == "pythae" and not have_pythae:
                continue
            if side.startswith("aestudio"):
                seconds, enc, dec = run_aestudio(train, test, args.epochs, args.init, warmup, amp=side.endswith("--amp"))
            elif side == "bare PyTorch":
                seconds, enc, dec = run_bare(x_train, x_test, args.epochs)
            else:
                with tempfile.TemporaryDirectory() as out:
                    seconds, enc, dec = run_pythae(x_train, x_test, args.epochs, out)
            res = rows[side]
            res.setdefault("seconds", []).append(seconds[0])
            res.setdefault("cpu", []).append(seconds[1])
            res.setdefault("elbo", []).append(neg_elbo(enc, dec, x_test, args.samples))
            res.setdefault("elbo1", []).append(neg_elbo(enc, dec, x_test, 1))
            print(f"  round {r + 1} {side:<14}: {seconds[0]:6.1f} s (CPU {seconds[1]:.1f} s), -ELBO {res['elbo'][-1]:.2f} nats "
                  f"({args.samples} draws; one draw {res['elbo1'][-1]:.2f})", flush=True)
    print(f"\n{'':<16}{'train s, median (min-max)':>28}{'CPU s':>20}{f'-ELBO, {args.samples} draws':>26}"
          f"{'-ELBO, 1 draw':>24}")
    for side, res in rows.items():
        if res:
            print(f"{side:<16}{spread(res['seconds'], '{:.1f}'):>28}{spread(res['cpu'], '{:.1f}'):>20}"
                  f"{spread(res['elbo'], '{:.2f}'):>26}{spread(res['elbo1'], '{:.2f}'):>24}")
    for side in names[:-1]:
        if not rows["pythae"]:
            break
        ratios = [a / b for a, b in zip(rows[side]["seconds"], rows["pythae"]["seconds"])]
        cpu = [a / b for a, b in zip(rows[side]["cpu"], rows["pythae"]["cpu"])]
        ref = side == "bare PyTorch"
        print(f"time {side} / pythae: {spread(ratios, '{:.2f}')} (CPU seconds {spread(cpu, '{:.2f}')}; "
              f"{'a reference, not a goal' if ref else 'goal <= 0.6'}); -ELBO difference {side} - pythae: "
              f"{statistics.median(rows[side]['elbo']) - statistics.median(rows['pythae']['elbo']):+.2f} nats"
              + ("" if ref else " (goal <= 0)"))
    if rows.get("bare PyTorch"):
        for side in [n for n in names if n.startswith("aestudio")]:
            ratios = [a / b for a, b in zip(rows[side]["seconds"], rows["bare PyTorch"]["seconds"])]
            print(f"time {side} / bare PyTorch: {spread(ratios, '{:.2f}')}")


if __name__ == "__main__":
    main()
