"""Plain-PyTorch anchors for the Fashion-MNIST benchmark: what a user writes without aestudio.

Each anchor takes float32 images in [0, 1] shaped (N, 1, 28, 28) and returns the figure that
``fashion_mnist.py`` compares against aestudio's. Nothing here imports aestudio: the models,
loops and measures are written out (PCA with numpy's SVD, AUROC with scikit-learn). Every loop is
the usual one: Adam, batch 128, a fresh permutation each epoch, in-memory index slices.

    from anchors import conv_ae_mse
    mse = conv_ae_mse(x_train, x_test, epochs=10)
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

BATCH, LR = 128, 1e-3


def _train(model: nn.Module, loss_fn, x_in: torch.Tensor, target: torch.Tensor, epochs: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    n = x_in.shape[0]
    for _ in range(epochs):
        perm = torch.randperm(n)
        for i in range(0, n, BATCH):
            idx = perm[i:i + BATCH]
            loss = loss_fn(model, x_in[idx], target[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model.eval()


def _mse_loss(model, x_in, target):
    return ((model(x_in) - target) ** 2).flatten(1).sum(1).mean()


def _per_image_mse(model: nn.Module, x_in: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        out = torch.cat([model(xb) for xb in x_in.split(1024)])
    return ((out - target) ** 2).flatten(1).mean(1).double().numpy()


# ---- PCA --------------------------------------------------------------------------------------
def pca_mse(x_train: np.ndarray, x_test: np.ndarray, k: int = 32) -> float:
    """Per-pixel test MSE of a k-component PCA fitted on the training images (recon clipped to [0, 1])."""
    a = x_train.reshape(len(x_train), -1).astype(np.float64)
    mean = a.mean(0)
    _, _, vt = np.linalg.svd(a - mean, full_matrices=False)
    comps = vt[:k]
    b = x_test.reshape(len(x_test), -1).astype(np.float64)
    rec = np.clip((b - mean) @ comps.T @ comps + mean, 0, 1)
    return float(np.mean((rec - b) ** 2))


# ---- a convolutional autoencoder -------------------------------------------------------------
class ConvAE(nn.Module):
    def __init__(self, latent: int = 32):
        super().__init__()
        self.enc = nn.Sequential(nn.Conv2d(1, 32, 3, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(),
                                 nn.Flatten(), nn.Linear(64 * 7 * 7, latent))
        self.dec = nn.Sequential(nn.Linear(latent, 64 * 7 * 7), nn.ReLU(), nn.Unflatten(1, (64, 7, 7)),
                                 nn.ConvTranspose2d(64, 32, 3, 2, 1, output_padding=1), nn.ReLU(),
                                 nn.ConvTranspose2d(32, 1, 3, 2, 1, output_padding=1), nn.Sigmoid())

    def forward(self, x):
        return self.dec(self.enc(x))


def conv_ae_mse(x_train: np.ndarray, x_test: np.ndarray, epochs: int, latent: int = 32) -> float:
    xt = torch.from_numpy(x_train)
    model = _train(ConvAE(latent), _mse_loss, xt, xt, epochs)
    xe = torch.from_numpy(x_test)
    return float(np.mean(_per_image_mse(model, xe, xe)))


# ---- the pytorch/examples VAE -----------------------------------------------------------------
class VAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc21, self.fc22 = nn.Linear(784, 400), nn.Linear(400, 20), nn.Linear(400, 20)
        self.fc3, self.fc4 = nn.Linear(20, 400), nn.Linear(400, 784)

    def encode(self, x):
        h = F.relu(self.fc1(x.flatten(1)))
        return self.fc21(h), self.fc22(h)

    def decode(self, z):
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z))))

    def forward(self, x):
        mu, logvar = self.encode(x)
        return self.decode(mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)), mu, logvar


def _vae_loss(model, x_in, target):
    recon, mu, logvar = model(x_in)
    bce = F.binary_cross_entropy(recon, target.flatten(1), reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return (bce + kld) / x_in.shape[0]


def vae_neg_elbo(x_train: np.ndarray, x_test: np.ndarray, epochs: int, samples: int = 1, seed: int = 0) -> float:
    """Test -ELBO in nats per image: analytic KL plus the Bernoulli NLL averaged over ``samples`` draws."""
    xt = torch.from_numpy(x_train)
    model = _train(VAE(), _vae_loss, xt, xt, epochs)
    gen = torch.Generator().manual_seed(seed)
    total = 0.0
    with torch.no_grad():
        for xb in torch.from_numpy(x_test).split(1024):
            mu, logvar = model.encode(xb)
            kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)
            nll = torch.zeros_like(kl)
            for _ in range(max(1, samples)):
                z = mu + torch.randn(mu.shape, generator=gen) * torch.exp(0.5 * logvar)
                p = model.decode(z).clamp(1e-6, 1 - 1e-6)
                nll += F.binary_cross_entropy(p, xb.flatten(1), reduction="none").sum(1)
            total += float((nll / max(1, samples) + kl).sum())
    return total / len(x_test)


# ---- a dense denoiser --------------------------------------------------------------------------
class DenseAE(nn.Module):
    def __init__(self, latent: int = 32, hidden=(512, 256)):
        super().__init__()
        sizes = [784, *hidden]
        enc, dec = [nn.Flatten()], []
        for a, b in zip(sizes, sizes[1:]):
            enc += [nn.Linear(a, b), nn.ReLU()]
        enc.append(nn.Linear(sizes[-1], latent))
        back = [latent, *reversed(hidden)]
        for a, b in zip(back, back[1:]):
            dec += [nn.Linear(a, b), nn.ReLU()]
        dec += [nn.Linear(back[-1], 784), nn.Sigmoid(), nn.Unflatten(1, (1, 28, 28))]
        self.enc, self.dec = nn.Sequential(*enc), nn.Sequential(*dec)

    def forward(self, x):
        return self.dec(self.enc(x))


def _psnr(clean: np.ndarray, other: np.ndarray) -> float:
    mse = ((clean - other) ** 2).reshape(len(clean), -1).mean(1)
    return float(np.mean(10 * np.log10(1.0 / np.maximum(mse, 1e-10))))


def denoiser_psnr(x_train: np.ndarray, x_test: np.ndarray, epochs: int, sigma: float = 0.5, seed: int = 0) -> tuple[float, float]:
    """(PSNR of the noisy test images, PSNR of the denoised ones) in dB; Gaussian noise, clipped to [0, 1]."""
    gen = torch.Generator().manual_seed(seed)
    xt = torch.from_numpy(x_train)
    noisy_train = (xt + sigma * torch.randn(xt.shape, generator=gen)).clamp(0, 1)
    model = _train(DenseAE(), _mse_loss, noisy_train, xt, epochs)
    xe = torch.from_numpy(x_test)
    noisy = (xe + sigma * torch.randn(xe.shape, generator=gen)).clamp(0, 1)
    with torch.no_grad():
        den = torch.cat([model(b) for b in noisy.split(1024)]).numpy()
    return _psnr(x_test, noisy.numpy()), _psnr(x_test, den)


# ---- one-class anomaly detection ---------------------------------------------------------------
def anomaly_auroc(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                  epochs: int, classes: int = 10) -> tuple[float, float]:
    """Mean AUROC (percent) over classes, each the normal one: dense AE latent 32 and PCA-32 scores."""
    from sklearn.metrics import roc_auc_score

    ae, pca = [], []
    xe = torch.from_numpy(x_test)
    b = x_test.reshape(len(x_test), -1).astype(np.float64)
    for c in range(classes):
        normal = x_train[y_train == c]
        xt = torch.from_numpy(normal)
        model = _train(DenseAE(), _mse_loss, xt, xt, epochs)
        is_anomaly = y_test != c
        ae.append(roc_auc_score(is_anomaly, _per_image_mse(model, xe, xe)))
        a = normal.reshape(len(normal), -1).astype(np.float64)
        mean = a.mean(0)
        comps = np.linalg.svd(a - mean, full_matrices=False)[2][:32]
        rec = np.clip((b - mean) @ comps.T @ comps + mean, 0, 1)
        pca.append(roc_auc_score(is_anomaly, ((rec - b) ** 2).mean(1)))
    return 100 * float(np.mean(ae)), 100 * float(np.mean(pca))
