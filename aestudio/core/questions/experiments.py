"""The experiments behind the questions (no Qt). Each is `experiment(ctx) -> Answer`.

Every experiment trains small models on a seeded subset of a bundled data set, measures what the
question is about, and writes an answer that quotes this run's numbers (stored through
`Numbers.put`, so numbers.json and the text agree). The wording adapts to the outcome: when a run
does not show the textbook effect, the answer says so instead of claiming it.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from ..config import ModelConfig
from ..evaluation import (anomaly_auroc, as_float_images, decode_codes, encode_images, inactive_dims,
                          knn_accuracy, mean_image_mse, pca_reconstruct, per_dim_kl, probe_accuracy,
                          reconstruct_images, silhouette)
from ..labs.denoising import corrupt, denoise_report
from ..latent import interpolate_codes, sample_codes
from ..models import count_parameters
from ..presets import get_preset, linear_activation_supported, no_hidden_layers_supported
from . import figures as fg
from .base import Context, Numbers

FASHION = "fashion-10k"
SHOW = 8


# ---- small helpers ---------------------------------------------------------------------------------
def dense(latent: int, hidden: list[int] | None = None, **kw) -> ModelConfig:
    return replace(ModelConfig(), arch="dense", latent=int(latent), hidden=[256] if hidden is None else list(hidden),
                   **kw)


def mse(model, x: np.ndarray, x_in: np.ndarray | None = None) -> float:
    x = as_float_images(x)
    rec = np.clip(reconstruct_images(model, x if x_in is None else x_in), 0.0, 1.0)
    return float(np.mean((rec - x).astype(np.float64) ** 2))


def recons(model, x: np.ndarray) -> np.ndarray:
    return np.clip(reconstruct_images(model, as_float_images(x)), 0.0, 1.0)


def fit_pca(train_x: np.ndarray, k: int, seed: int = 0):
    """PCA with k components by randomized SVD (seeded): a fraction of a second where the exact
    eigendecomposition of a 784 x 784 covariance takes seconds on a busy 2-core machine."""
    from sklearn.decomposition import PCA

    flat = as_float_images(train_x).reshape(len(train_x), -1)
    k = int(max(1, min(k, flat.shape[0], flat.shape[1])))
    return PCA(n_components=k, svd_solver="randomized", n_oversamples=20, iterated_power=7,
               random_state=seed).fit(flat)


def pca_mse(train_x: np.ndarray, val_x: np.ndarray, k: int) -> tuple[float, np.ndarray]:
    pca = fit_pca(train_x, k)
    rec = pca_reconstruct(pca, val_x)
    return float(np.mean((rec - as_float_images(val_x)).astype(np.float64) ** 2)), rec


def val_curve(t) -> tuple[list[float], list[float]]:
    """(steps, validation reconstruction error per image) at each epoch end of the last stage."""
    rows = [h for h in t.history if "val_recon" in h]
    if rows:
        stage = rows[-1].get("stage")
        rows = [h for h in rows if h.get("stage") == stage]
    spe = t.training.steps_per_epoch
    return [float((i + 1) * spe) for i in range(len(rows))], [float(h["val_recon"]) for h in rows]


def noise_images(n: int, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed + 99).random((n, *shape)).astype(np.float32)


def code_shift(model, x: np.ndarray, sigma: float = 0.05, seed: int = 0) -> float:
    """How far codes move when inputs get Gaussian noise of `sigma`, relative to the codes' own spread:
    mean ||z(x + e) - z(x)|| / sqrt(mean ||z(x) - mean z||^2)."""
    x = as_float_images(x)
    g = np.random.default_rng(seed + 7)
    xn = np.clip(x + sigma * g.standard_normal(x.shape).astype(np.float32), 0.0, 1.0)
    z, zn = encode_images(model, x), encode_images(model, xn)
    spread = float(np.sqrt(np.mean(np.sum((z - z.mean(0)) ** 2, axis=1)))) or 1.0
    return float(np.mean(np.linalg.norm(zn - z, axis=1)) / spread)


def frechet(samples: np.ndarray, real: np.ndarray, pca) -> float:
    """Fréchet distance between two sets of images, in the space of a PCA fitted on real images:
    |mean difference|^2 + Tr(C1 + C2 - 2 (C1 C2)^1/2). Low when the samples are spread like real images
    (blurry average-looking samples score badly although each is close to some real image)."""
    from scipy import linalg

    a = pca.transform(as_float_images(samples).reshape(len(samples), -1)).astype(np.float64)
    b = pca.transform(as_float_images(real).reshape(len(real), -1)).astype(np.float64)
    c1, c2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(c1 @ c2)
    root = np.real(root)
    return float(np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(c1 + c2 - 2.0 * root))


def times(a: float, b: float) -> float:
    """a / b, guarded."""
    return float(a / b) if b > 0 else float("inf")


# ---- 1. what an autoencoder learns ---------------------------------------------------------------------
def q_what_is(ctx: Context):
    train, val = ctx.images(FASHION, 3000)
    cfg = get_preset("hands-on").model_config(train.shape)
    t = ctx.train("hands-on", cfg, train, val, steps=1500)
    vx = val.as_float()
    n = Numbers()
    ae = n.put("val_mse", mse(t.model, vx))
    base = n.put("mean_image_mse", mean_image_mse(train.as_float(), vx))
    ratio = n.put("error_vs_mean_image", times(n["val_mse"], n["mean_image_mse"]))
    comp = n.put("compression", cfg.input_dim / cfg.latent)
    params = n.put("parameters", count_parameters(t.model))
    xs, ys = val_curve(t)
    fig = fg.stack([
        fg.image_rows([("original", vx[:SHOW]), ("reconstruction", recons(t.model, vx[:SHOW]))],
                      title=f"Unseen images through a {cfg.latent}-number code"),
        fg.lines("Validation error while training", [("reconstruction error per image", xs, ys)], xlabel="step"),
    ])
    text = (f"The encoder squeezed each 784-pixel image into {cfg.latent} numbers ({comp}× fewer) and the decoder "
            f"rebuilt it from them alone. On images it never trained on, the error per pixel is {ae}, "
            f"{ratio}× the error of always answering with the average image ({base}). Nobody told the model "
            f"what a shoe or a shirt is: with {params} parameters it found which few numbers describe an image "
            "of this data set, which is what an autoencoder learns.")
    nxt = "Question 2: shrink the code and see which details disappear first."
    return ctx.answer(n, fig, text, nxt, data_spec=FASHION)


# ---- 2. code size -------------------------------------------------------------------------------------
def q_code_size(ctx: Context):
    train, val = ctx.images(FASHION, 3000)
    vx, tx = val.as_float(), train.as_float()
    n = Numbers()
    sizes = [2, 8, 32]
    rows = [("original", vx[:SHOW])]
    ae, pc = [], []
    for k in sizes:
        t = ctx.train(f"code {k}", dense(k), train, val, steps=1000)
        ae.append(mse(t.model, vx))
        pc.append(pca_mse(tx, vx, k)[0])
        n.put(f"ae_mse_{k}", ae[-1])
        n.put(f"pca_mse_{k}", pc[-1])
        rows.append((f"code {k}", recons(t.model, vx[:SHOW])))
    gain = n.put("error_ratio_2_to_32", times(ae[0], ae[-1]))
    fig = fg.stack([fg.image_rows(rows, title="Reconstructions by code size"),
                    fg.lines("Validation error per pixel", [("autoencoder", sizes, ae), ("PCA", sizes, pc)],
                             xlabel="code size", logy=True)])
    text = (f"With 2 numbers the error per pixel is {fmt(n, 'ae_mse_2')}, with 8 it is {fmt(n, 'ae_mse_8')} and "
            f"with 32 it is {fmt(n, 'ae_mse_32')}: the smallest code loses {gain}× more. A tight bottleneck keeps "
            "only the coarse shape and brightness (the figure's top rows) and drops texture and small parts, so an "
            "excessively undercomplete code underfits. PCA at the same sizes gives "
            f"{fmt(n, 'pca_mse_2')}, {fmt(n, 'pca_mse_8')} and {fmt(n, 'pca_mse_32')}: the non-linear network "
            + ("gains most where the code is smallest." if ae[0] < pc[0] else "did not beat it at 2 numbers on this budget."))
    nxt = "Open the PCA vs autoencoder lab to sweep every size, or go the other way: question 3 makes the code larger than the image."
    return ctx.answer(n, fig, text, nxt, setup=ctx.trained[1], data_spec=FASHION)


def fmt(n: Numbers, key: str) -> str:
    from .base import fmt_num

    return fmt_num(n[key])


# ---- 3. perfect reconstruction ---------------------------------------------------------------------------
def foreign_images(ctx: Context, n: int, size: int = 28) -> np.ndarray:
    """Images of kinds a Fashion-MNIST model never saw: handwritten digits and drawn shapes, half each."""
    k = max(4, ctx.count(n) // 2)
    digits = ctx.dataset("digits", image_size=size)
    shapes = ctx.dataset("shapes", image_size=size)
    rng = np.random.default_rng(ctx.seed + 3)
    a = digits.as_float()[np.sort(rng.choice(digits.n, size=min(k, digits.n), replace=False))]
    b = shapes.as_float()[np.sort(rng.choice(shapes.n, size=min(k, shapes.n), replace=False))]
    out = np.empty((len(a) + len(b), *a.shape[1:]), np.float32)
    out[0::2], out[1::2] = a[: len(out[0::2])], b[: len(out[1::2])]
    return out


def q_perfect(ctx: Context):
    train, val = ctx.images(FASHION, 3000)
    vx = val.as_float()
    other = foreign_images(ctx, 400)
    noise = noise_images(len(vx), vx.shape[1:], ctx.seed)
    copier = ctx.train("over-complete", get_preset("overcomplete").model_config(train.shape), train, val, steps=1500)
    small = ctx.train("bottleneck", dense(32), train, val, steps=1500)
    n = Numbers()
    cv = n.put("overcomplete_own_images_mse", mse(copier.model, vx))
    co = n.put("overcomplete_other_images_mse", mse(copier.model, other))
    bv = n.put("bottleneck_own_images_mse", mse(small.model, vx))
    bo = n.put("bottleneck_other_images_mse", mse(small.model, other))
    n.put("overcomplete_noise_mse", mse(copier.model, noise))
    n.put("bottleneck_noise_mse", mse(small.model, noise))
    ratio = n.put("other_images_error_ratio", times(n["bottleneck_other_images_mse"], n["overcomplete_other_images_mse"]))
    fig = fg.stack([
        fg.image_rows([("digits, shapes", other[:SHOW]), ("over-complete", recons(copier.model, other[:SHOW])),
                       ("bottleneck 32", recons(small.model, other[:SHOW]))],
                      title="Images of kinds neither model saw in training"),
        fg.image_rows([("clothes (unseen)", vx[:SHOW]), ("over-complete", recons(copier.model, vx[:SHOW])),
                       ("bottleneck 32", recons(small.model, vx[:SHOW]))], title="Validation images of the data set"),
        fg.bars("Error per pixel", ["over-complete: clothes", "over-complete: digits & shapes", "bottleneck: clothes",
                                    "bottleneck: digits & shapes"],
                [n["overcomplete_own_images_mse"], n["overcomplete_other_images_mse"], n["bottleneck_own_images_mse"],
                 n["bottleneck_other_images_mse"]], width=600),
    ])
    copies = n["overcomplete_other_images_mse"] < n["bottleneck_other_images_mse"]
    text = (f"No. The over-complete model (a 1024-number code for 784 pixels, nothing else to constrain it) rebuilds "
            f"unseen clothes with error {cv} per pixel, far better than the 32-number bottleneck ({bv}). But it "
            f"rebuilds handwritten digits and drawn shapes, which it never saw, just as well: error {co}, "
            f"{ratio}× {'lower' if copies else 'no lower'} than the bottleneck's {bo}. "
            + ("A model that reconstructs whatever it is shown has learned to copy pixels, not what clothes look "
               "like. " if copies else "On this run it had not learned to copy. ")
            + f"(Pure random noise is the exception, {fmt(n, 'overcomplete_noise_mse')} against "
              f"{fmt(n, 'bottleneck_noise_mse')}: the copy only covers pixel patterns that varied in the training "
              "images.) Judge an autoencoder by what its code is for: how it treats inputs unlike the data, how "
              "well its codes separate classes (questions 11 and 21), or how well it denoises.")
    nxt = "Question 4 adds noise, sparsity or contraction to the same over-complete model."
    return ctx.answer(n, fig, text, nxt, setup=copier, data_spec=FASHION)


# ---- 4. over-complete fixes ---------------------------------------------------------------------------
def q_overcomplete_fixes(ctx: Context):
    train, val = ctx.images(FASHION, 2400)
    vx = val.as_float()
    other = foreign_images(ctx, 300)
    base = get_preset("overcomplete").model_config(train.shape)
    variants = [
        ("plain", base, "none"),
        ("denoising", base, "gaussian:0.5"),
        ("sparse", replace(base, kind="sparse", sparsity="kl", sparsity_target=0.05, sparsity_weight=0.1), "none"),
        ("contractive", replace(base, kind="contractive", contractive_weight=0.1), "none"),
    ]
    n = Numbers()
    labels, ratios, rows = [], [], [("digits, shapes", other[:SHOW])]
    for name, cfg, nz in variants:
        t = ctx.train(name, cfg, train, val, steps=800, noise=nz)
        own, foreign = mse(t.model, vx), mse(t.model, other)
        n.put(f"{name}_own_images_mse", own)
        n.put(f"{name}_other_images_mse", foreign)
        r = n.put(f"{name}_other_to_own_ratio", times(foreign, own))
        labels.append(name)
        ratios.append(float(r))
        rows.append((name, recons(t.model, other[:SHOW])))
    best = labels[int(np.argmax(ratios[1:])) + 1]
    fig = fg.stack([fg.image_rows(rows, title="Digits and shapes through each over-complete model (trained on clothes)"),
                    fg.bars("Error on digits & shapes ÷ error on clothes (higher: learned clothes, not a copy)",
                            labels, ratios, width=620)])
    text = (f"All four models have the same 1024-number code and never saw digits or shapes. The plain one rebuilds "
            f"them with error {fmt(n, 'plain_other_images_mse')} per pixel against {fmt(n, 'plain_own_images_mse')} on "
            f"clothes, a ratio of {fmt(n, 'plain_other_to_own_ratio')}: it copies. Training on noisy inputs raises "
            f"that ratio to {fmt(n, 'denoising_other_to_own_ratio')}, a sparsity penalty to "
            f"{fmt(n, 'sparse_other_to_own_ratio')} and a contractive penalty to "
            f"{fmt(n, 'contractive_other_to_own_ratio')}. A higher ratio means the model rebuilds images of its own "
            "kind much better than anything else, that is, it learned their structure instead of the identity. "
            f"Here {best} did that most.")
    nxt = "Raise each penalty (sparsity or contractive weight, noise σ) in the builder and watch the ratio and the clothes' error trade off."
    return ctx.answer(n, fig, text, nxt, setup=ctx.trained[1], data_spec=FASHION)


# ---- 5. PCA vs autoencoder -----------------------------------------------------------------------------
def q_pca(ctx: Context):
    train, val = ctx.images(FASHION, 3000)
    vx, tx = val.as_float(), train.as_float()
    k = 4
    t = ctx.train("non-linear", dense(k, [256, 64]), train, val, steps=1500)
    n = Numbers()
    a = n.put("ae_mse", mse(t.model, vx))
    p_mse, p_rec = pca_mse(tx, vx, k)
    p = n.put("pca_mse", p_mse)
    r = n.pct("ae_error_below_pca_pct", 1 - times(n["ae_mse"], n["pca_mse"]))
    fig = fg.stack([fg.image_rows([("original", vx[:SHOW]), (f"PCA-{k}", p_rec[:SHOW]),
                                   (f"autoencoder-{k}", recons(t.model, vx[:SHOW]))], title=f"Both with {k} numbers"),
                    fg.bars("Error per pixel", [f"PCA-{k}", f"autoencoder-{k}"], [n["pca_mse"], n["ae_mse"]])])
    better = n["ae_mse"] < n["pca_mse"]
    text = (f"PCA projects images onto the {k} straight directions of largest variance; the autoencoder learns a "
            f"curved map through ReLU layers. With {k} numbers each, PCA's error per pixel is {p} and the "
            f"autoencoder's is {a}, " + (f"{r} lower" if better else "no lower") + ". A linear autoencoder can at best "
            "match PCA (question 6); the non-linearity is what lets a small code follow the curved set of real "
            "images. The price: it must be trained, its directions are not ordered or orthogonal, and with "
            "little data or training it can lose to PCA.")
    nxt = "The PCA vs autoencoder lab sweeps the code size; try sizes 2 and 32 to see where the gap opens and closes."
    return ctx.answer(n, fig, text, nxt, data_spec=FASHION)


# ---- 6. linear autoencoder = PCA -------------------------------------------------------------------------
def subspace_angle(model, pca) -> float:
    """Mean principal angle (degrees) between the decoder's column space and PCA's components."""
    try:
        from ..evaluation import subspace_angle_deg  # the evaluation module's own measure, where it exists

        return float(subspace_angle_deg(model, pca.components_))
    except (ImportError, TypeError):
        pass
    w = decoder_matrix(model)
    qa, _ = np.linalg.qr(w)
    qb, _ = np.linalg.qr(np.asarray(pca.components_, np.float64).T)
    s = np.clip(np.linalg.svd(qa.T @ qb, compute_uv=False), -1.0, 1.0)
    return float(np.degrees(np.arccos(s)).mean())


def decoder_matrix(model) -> np.ndarray:
    """The linear decoder's (pixels, k) matrix, from its response to unit codes."""
    k = model.config.latent
    with torch.no_grad():
        model.eval()
        z = torch.cat([torch.zeros(1, k), torch.eye(k)])
        out = model.decode_logits(z).reshape(k + 1, -1).double().numpy()
    return (out[1:] - out[:1]).T


def q_linear_pca(ctx: Context):
    train, val = ctx.images(FASHION, 3000)
    vx, tx = val.as_float(), train.as_float()
    k = 16
    cfg = replace(get_preset("linear-pca").model_config(train.shape), latent=k)
    t = ctx.train("linear", cfg, train, val, steps=2000, lr=1e-3)
    n = Numbers()
    a = n.put("linear_ae_mse", mse(t.model, vx))
    pca = fit_pca(tx, k)
    rec = pca_reconstruct(pca, vx)
    p = n.put("pca_mse", float(np.mean((rec - vx).astype(np.float64) ** 2)))
    gap = n.pct("gap_to_pca_pct", times(n["linear_ae_mse"], n["pca_mse"]) - 1)
    ang = n.put("subspace_angle_deg", subspace_angle(t.model, pca))
    fig = fg.stack([fg.image_rows([("original", vx[:SHOW]), (f"PCA-{k}", rec[:SHOW]),
                                   (f"linear AE-{k}", recons(t.model, vx[:SHOW]))], title="Linear autoencoder vs PCA"),
                    fg.bars("Error per pixel", [f"PCA-{k}", f"linear AE-{k}"], [n["pca_mse"], n["linear_ae_mse"]])])
    shallow = no_hidden_layers_supported() and linear_activation_supported()
    text = (f"A {'784 → 16 → 784 model with no non-linearity' if shallow else 'linear model'} trained by gradient "
            f"descent reaches error {a} per pixel; PCA-16 gets {p} ({gap} apart). The mean principal angle between "
            f"the decoder's 16 directions and PCA's top 16 components is {ang}°: "
            + ("small, so the network found PCA's subspace, though its individual directions are mixtures of the "
               "components rather than the components themselves." if n["subspace_angle_deg"] < 20 else
               "not yet small; more steps bring it down.")
            + " A linear autoencoder minimising squared error can do no better than PCA, which is why the "
              "non-linear layers matter (question 5).")
    nxt = "Open the PCA vs autoencoder lab with this model; then switch the activation to ReLU and add a hidden layer."
    return ctx.answer(n, fig, text, nxt, data_spec=FASHION)


# ---- 7. denoising -------------------------------------------------------------------------------------
def q_denoising(ctx: Context):
    train, val = ctx.images(FASHION, 3000)
    vx = val.as_float()
    spec = "gaussian:0.5"
    cfg = dense(32)
    plain = ctx.train("plain", cfg, train, val, steps=1500)
    den = ctx.train("denoising", cfg, train, val, steps=1500, noise=spec)
    noisy = corrupt(vx, spec, ctx.seed + 5)
    rp = denoise_report(plain.model, vx, spec, noisy=noisy, labels=val.labels)
    rd = denoise_report(den.model, vx, spec, noisy=noisy, labels=val.labels)
    n = Numbers()
    pn = n.put("psnr_noisy_db", rp.psnr_noisy_mean)
    pp = n.put("psnr_plain_db", rp.psnr_out_mean)
    pd = n.put("psnr_denoising_db", rd.psnr_out_mean)
    gain = n.put("denoising_gain_db", rd.psnr_out_mean - rp.psnr_out_mean)
    fig = fg.stack([fg.image_rows([("clean", rp.clean), ("noisy input", rp.noisy),
                                   ("plain AE", rp.outputs), ("denoising AE", rd.outputs)],
                                  title="Gaussian noise σ 0.5, the same inputs for both"),
                    fg.bars("PSNR to the clean image (dB, higher is better)", ["noisy input", "plain AE", "denoising AE"],
                            [n["psnr_noisy_db"], n["psnr_plain_db"], n["psnr_denoising_db"]])])
    text = (f"A denoising autoencoder sees a corrupted image and is scored against the clean one. On the same noisy "
            f"inputs (PSNR {pn} dB), the plain model trained on clean images reaches {pp} dB and the denoising "
            f"model {pd} dB, {gain} dB {'better' if n['denoising_gain_db'] > 0 else 'worse'}. Because the noise "
            "cannot be predicted, the only way to lower its loss is to learn what clean images look like and pull "
            "the input back towards them.")
    nxt = "Open the Denoising lab: try salt-and-pepper or masking noise, and a stronger σ."
    return ctx.answer(n, fig, text, nxt, setup=den, data_spec=FASHION)


# ---- 8. sparsity ----------------------------------------------------------------------------------------
def q_sparse(ctx: Context):
    train, val = ctx.images(FASHION, 3000)
    vx = val.as_float()
    base = get_preset("sparse").model_config(train.shape)
    free = ctx.train("no penalty", replace(base, sparsity_weight=0.0), train, val, steps=1200)
    sp = ctx.train("sparse", base, train, val, steps=1200)
    n = Numbers()
    out = {}
    for name, t in (("free", free), ("sparse", sp)):
        z = encode_images(t.model, vx)
        out[name] = np.sort(z.mean(0))[::-1]
        n.put(f"{name}_mean_activation", float(z.mean()))
        n.pct(f"{name}_units_on_pct", float(np.mean(z > 0.1)))
        n.put(f"{name}_mse", mse(t.model, vx))
    fig = fg.stack([
        fg.lines("Mean activation of each code unit (sorted)", [("no penalty", range(len(out["free"])), out["free"]),
                                                                ("sparse", range(len(out["sparse"])), out["sparse"])],
                 xlabel="unit (by activity)", markers=False),
        fg.image_rows([("original", vx[:SHOW]), ("no penalty", recons(free.model, vx[:SHOW])),
                       ("sparse", recons(sp.model, vx[:SHOW]))], title="Reconstructions"),
    ])
    text = (f"Both models have 64 code units with a sigmoid (0 to 1). Without a penalty a unit's mean activation is "
            f"{fmt(n, 'free_mean_activation')} and {fmt(n, 'free_units_on_pct')}% of units are above 0.1 for a typical "
            f"image. With a KL penalty pulling each unit's average towards 5%, the mean drops to "
            f"{fmt(n, 'sparse_mean_activation')} and {fmt(n, 'sparse_units_on_pct')}% of units are on, at an error of "
            f"{fmt(n, 'sparse_mse')} per pixel (vs {fmt(n, 'free_mse')}). "
            + ("Fewer active units describe each image, so each unit tends to stand for one recurring feature, and a "
               "wide code cannot simply copy (question 4)." if n["sparse_mean_activation"] < n["free_mean_activation"]
               else "On this run the penalty did not make the code sparser; it needs a larger weight or more steps.")
            + (" The average is still above the 5% target: the penalty's weight sets how hard it pulls."
               if n["sparse_mean_activation"] > 0.1 else ""))
    nxt = "Raise the sparsity weight or lower ρ in the builder; compare the L1 penalty, which drives activations to exactly zero."
    return ctx.answer(n, fig, text, nxt, setup=sp, data_spec=FASHION)


# ---- 9. robustness of codes ------------------------------------------------------------------------------
def q_robust(ctx: Context):
    train, val = ctx.images(FASHION, 3000)
    vx = val.as_float()
    base = dense(32)
    models = [
        ("plain", ctx.train("plain", base, train, val, steps=1000)),
        ("denoising", ctx.train("denoising", base, train, val, steps=1000, noise="gaussian:0.3")),
        ("contractive", ctx.train("contractive", get_preset("contractive").model_config(train.shape), train, val,
                                  steps=1000)),
    ]
    from ..labs.code_robustness import code_sensitivity

    n = Numbers()
    sigma = 0.05
    shifts = []
    for name, t in models:
        moved = code_sensitivity(t.model, vx, sigmas=[sigma], draws=1, seed=ctx.seed).at(sigma)[1]
        shifts.append(float(n.put(f"{name}_code_shift", moved)))
        n.put(f"{name}_mse", mse(t.model, vx))
    fig = fg.stack([fg.bars(f"Code sensitivity to noise σ {sigma} (code move ÷ input move, each in units of its spread)", [m[0] for m in models],
                            shifts, width=700),
                    fg.bars("Error per pixel", [m[0] for m in models], [n[f"{m[0]}_mse"] for m in models])])
    order = [models[i][0] for i in np.argsort(shifts)]
    text = (f"Three models of the same size (784 → 256 → 32) saw each validation image twice, once with faint "
            f"Gaussian noise (σ {sigma}). Measured relative to how spread out codes and images are, the code moved "
            f"{fmt(n, 'plain_code_shift')} times as far as the image for the plain model, {fmt(n, 'denoising_code_shift')} for the denoising one and {fmt(n, 'contractive_code_shift')} for the "
            f"contractive one (steadiest first: {', '.join(order)}). The contractive penalty directly shrinks the "
            "encoder's sensitivity to its input, and denoising training teaches it to ignore perturbations, so "
            "nearby inputs keep nearby codes. Reconstruction errors: "
            f"{fmt(n, 'plain_mse')}, {fmt(n, 'denoising_mse')}, {fmt(n, 'contractive_mse')}.")
    nxt = "Raise the contractive weight in the builder (the Contractive preset) until the reconstructions blur: that is the trade-off."
    return ctx.answer(n, fig, text, nxt, setup=models[2][1], data_spec=FASHION)


# ---- 10. anomalies -----------------------------------------------------------------------------------------
def q_anomaly(ctx: Context):
    full = ctx.dataset(FASHION)
    normal_classes = [0, 2, 3, 4, 6]  # tops and dresses; footwear, trousers and bags are the anomalies
    train, val = ctx.images(FASHION, 4000)
    is_normal_tr = np.isin(train.labels, normal_classes)
    normal_train = train.subset(np.flatnonzero(is_normal_tr))
    normal_val = val.subset(np.flatnonzero(np.isin(val.labels, normal_classes)))
    t = ctx.train("normal-class", dense(16), normal_train, normal_val, steps=1500)
    vx = val.as_float()
    err = np.mean((recons(t.model, vx) - vx).reshape(len(vx), -1).astype(np.float64) ** 2, axis=1)
    anomalous = ~np.isin(val.labels, normal_classes)
    pca = fit_pca(normal_train.as_float(), 16)
    perr = np.mean((pca_reconstruct(pca, vx) - vx).reshape(len(vx), -1).astype(np.float64) ** 2, axis=1)
    n = Numbers()
    auc = n.put("auroc_autoencoder", anomaly_auroc(err, anomalous))
    pauc = n.put("auroc_pca16", anomaly_auroc(perr, anomalous))
    n.put("mean_error_normal", float(err[~anomalous].mean()))
    n.put("mean_error_anomalous", float(err[anomalous].mean()))
    hi = np.percentile(err, 99)
    edges = np.linspace(0, hi, 31)
    hn = np.histogram(err[~anomalous], edges)[0]
    ha = np.histogram(err[anomalous], edges)[0]
    mid = (edges[:-1] + edges[1:]) / 2
    top = np.argsort(-err)[:SHOW]
    names = [full.class_names[c] for c in normal_classes]
    fig = fg.stack([fg.lines("Reconstruction error of validation images", [("normal classes", mid, hn),
                                                                            ("other classes", mid, ha)],
                             xlabel="error per pixel", markers=False),
                    fg.image_rows([("most unusual", vx[top]), ("reconstruction", recons(t.model, vx[top]))],
                                  title="Highest-error validation images")])
    text = (f"Trained only on {', '.join(names)}, the model rebuilds those classes with error "
            f"{fmt(n, 'mean_error_normal')} per pixel on average and the classes it never saw with "
            f"{fmt(n, 'mean_error_anomalous')}. Ranking validation images by that error separates the two with an "
            f"area under the ROC curve of {auc} (0.5 is chance, 1 perfect); PCA-16's error gives {pauc}. The recipe: "
            "learn what normal looks like, then flag what the model cannot rebuild.")
    nxt = "Open the Anomaly lab: drag the threshold and look at the error maps of the flagged images."
    return ctx.answer(n, fig, text, nxt, data_spec=FASHION)


# ---- 11. few labels ------------------------------------------------------------------------------------------
def q_few_labels(ctx: Context):
    train, val = ctx.images(FASHION, 4000)
    t = ctx.train("unsupervised", dense(16, [256, 64]), train, val, steps=1500)
    tx, vx = train.as_float(), val.as_float()
    per = 10 if not ctx.tiny else 3
    ztr, zva = encode_images(t.model, tx), encode_images(t.model, vx)
    pca = fit_pca(tx, 16)
    ptr, pva = pca.transform(tx.reshape(len(tx), -1)), pca.transform(vx.reshape(len(vx), -1))
    n = Numbers()
    n.put("labels_per_class", per)
    a = n.pct("accuracy_codes_pct", probe_accuracy(ztr, train.labels, zva, val.labels, per, ctx.seed))
    p = n.pct("accuracy_pca16_pct", probe_accuracy(ptr, train.labels, pva, val.labels, per, ctx.seed))
    x = n.pct("accuracy_pixels_pct", probe_accuracy(tx, train.labels, vx, val.labels, per, ctx.seed))
    fig = fg.bars(f"Linear classifier trained on {per} labelled images per class (validation accuracy, %)",
                  ["autoencoder codes (16)", "PCA (16)", "raw pixels (784)"],
                  [n["accuracy_codes_pct"], n["accuracy_pca16_pct"], n["accuracy_pixels_pct"]], width=620)
    text = (f"The autoencoder trained on {train.n} images without using a single label. A linear classifier then "
            f"saw only {per} labelled images per class: on the autoencoder's 16-number codes it is right {a} of the "
            f"time, on PCA's 16 numbers {p}, and on the 784 raw pixels {x}. "
            + ("With so few labels a compact code that already groups similar images helps the classifier more than "
               "raw pixels do. " if n["accuracy_codes_pct"] > n["accuracy_pixels_pct"] + 2 else
               "Here the codes did not beat the pixels by much: on clothing images a linear classifier on pixels is "
               "already strong, and the codes' advantage shows with even fewer labels and longer-trained encoders. ")
            + "With many labels the encoder is fine-tuned together with the classifier instead.")
    nxt = "Open the Few labels lab: it sweeps 1 to all labels per class and can fine-tune the encoder."
    return ctx.answer(n, fig, text, nxt, data_spec=FASHION)


# ---- 12. sampling: AE vs VAE ------------------------------------------------------------------------------
def q_sampling(ctx: Context):
    train, val = ctx.images(FASHION, 3000)
    vx = val.as_float()
    k = 8
    ae = ctx.train("plain", dense(k), train, val, steps=1500)
    vae = ctx.train("VAE", dense(k, kind="vae"), train, val, steps=1500)
    m = 256 if not ctx.tiny else 32
    tx = train.as_float()
    codes = encode_images(ae.model, tx)
    s_naive = decode_codes(ae.model, sample_codes(ae.model, m, ctx.seed))  # N(0, I) in the AE's code space
    s_fit = decode_codes(ae.model, sample_codes(ae.model, m, ctx.seed, codes=codes))
    s_vae = decode_codes(vae.model, sample_codes(vae.model, m, ctx.seed))
    pca = fit_pca(tx, 8, ctx.seed)
    half = len(vx) // 2
    n = Numbers()
    n.put("ae_code_std_mean", float(codes.std(0).mean()))
    a0 = n.put("frechet_ae_standard_normal", frechet(s_naive, vx, pca))
    a1 = n.put("frechet_ae_fitted_gaussian", frechet(s_fit, vx, pca))
    v = n.put("frechet_vae_prior", frechet(s_vae, vx, pca))
    ref = n.put("frechet_real_halves", frechet(vx[:half], vx[half:], pca))
    fig = fg.stack([fg.image_rows([("AE, N(0, I)", s_naive[:SHOW]), ("AE, fitted", s_fit[:SHOW]),
                                   ("VAE prior", s_vae[:SHOW])], title="Decoded random codes"),
                    fg.bars("Distance of the samples' spread from real images' (Fréchet, PCA-8; lower: more real)",
                            ["AE, N(0, I) codes", "AE, Gaussian fitted to its codes", "VAE, N(0, I) prior",
                             "real vs real (floor)"], [n["frechet_ae_standard_normal"], n["frechet_ae_fitted_gaussian"],
                                                       n["frechet_vae_prior"], n["frechet_real_halves"]], width=680)])
    best = min(("the VAE's prior samples", n["frechet_vae_prior"]), ("the fitted-Gaussian samples", n["frechet_ae_fitted_gaussian"]),
               ("the standard-normal samples", n["frechet_ae_standard_normal"]), key=lambda t: t[1])[0]
    text = (f"A plain autoencoder's codes follow no known distribution (here their spread per dimension averages "
            f"{fmt(n, 'ae_code_std_mean')}), so a random code may land where the decoder was never trained. "
            f"We decoded {m} random codes each way and compared how the images spread with how real images spread "
            f"(a Fréchet distance; two halves of the real images score {ref}). Standard-normal codes in the plain "
            f"model's code space score {a0}, codes from a Gaussian fitted to its codes {a1}, and the VAE's prior "
            f"samples {v}; {best} come closest. The VAE's KL term pulls its codes onto N(0, I), so the prior is a "
            "map of where valid codes are: that is what makes it a generative model. A plain autoencoder can only "
            "be sampled after the fact, by guessing the distribution of its codes.")
    nxt = "Open the Traversal lab on the VAE and draw prior samples; raise β (question 13) for smoother but blurrier samples."
    return ctx.answer(n, fig, text, nxt, setup=vae, data_spec=FASHION)


# ---- 13. beta ---------------------------------------------------------------------------------------------------
def q_beta(ctx: Context):
    train, val = ctx.images(FASHION, 3000)
    vx = val.as_float()
    n = Numbers()
    rows = [("original", vx[:SHOW])]
    for beta in (1.0, 4.0):
        t = ctx.train(f"β={beta:g}", dense(10, kind="vae", beta=beta), train, val, steps=1500)
        kl = per_dim_kl(t.model, vx)
        n.put(f"beta{beta:g}_mse", mse(t.model, vx))
        n.put(f"beta{beta:g}_kl_nats", float(kl.sum()))
        n.put(f"beta{beta:g}_active_dims", int(len(kl) - len(inactive_dims(kl))))
        rows.append((f"β = {beta:g}", recons(t.model, vx[:SHOW])))
    fig = fg.stack([fg.image_rows(rows, title="Reconstructions"),
                    fg.bars("KL to the prior (nats per image)", ["β = 1", "β = 4"], [n["beta1_kl_nats"], n["beta4_kl_nats"]]),
                    fg.bars("Error per pixel", ["β = 1", "β = 4"], [n["beta1_mse"], n["beta4_mse"]])])
    text = (f"β weighs the KL term against reconstruction. With β = 1 the code carries {fmt(n, 'beta1_kl_nats')} nats "
            f"of information per image over {fmt(n, 'beta1_active_dims')} active dimensions and the error is "
            f"{fmt(n, 'beta1_mse')}; with β = 4 it carries {fmt(n, 'beta4_kl_nats')} nats over "
            f"{fmt(n, 'beta4_active_dims')} dimensions and the error rises to {fmt(n, 'beta4_mse')}. A larger β squeezes "
            "the code towards the prior: blurrier reconstructions, but smoother, more regular codes, which is what "
            "β-VAEs trade for disentangled factors (question 23).")
    nxt = "Open the Latent health lab on each model, or try β = 0.5 with the β-VAE preset."
    return ctx.answer(n, fig, text, nxt, setup=ctx.trained[1], data_spec=FASHION)


# ---- 14. KL per dimension ----------------------------------------------------------------------------------------
def q_kl(ctx: Context):
    train, val = ctx.images(FASHION, 3000)
    vx = val.as_float()
    t = ctx.train("VAE", dense(24, kind="vae"), train, val, steps=1500)
    kl = per_dim_kl(t.model, vx)
    order = np.argsort(-kl)
    n = Numbers()
    total = n.put("kl_total_nats", float(kl.sum()))
    active = n.put("active_dims", int(len(kl) - len(inactive_dims(kl))))
    top = n.put("kl_largest_dim_nats", float(kl[order[0]]))
    n.put("kl_smallest_dim_nats", float(kl[order[-1]]))
    codes = encode_images(t.model, vx)
    n.put("code_mean_abs", float(np.abs(codes.mean(0)).mean()))
    fig = fg.bars("KL of each latent dimension (nats per image), largest first",
                  [f"z{d + 1}" for d in order], [float(kl[d]) for d in order], bar_h=14, width=560)
    low = fmt(n, "kl_smallest_dim_nats")
    dims = len(kl)
    rest = (f"The other {dims - n['active_dims']} stay at the prior for every image (posterior collapse of those "
            f"dimensions): the model had enough with {active}. " if n["active_dims"] < dims else
            f"All {dims} are in use, the quietest with {low} nats; with a larger β or a larger code some would collapse "
            "onto the prior (question 15). ")
    text = (f"The KL divergence measures how far the encoder's distribution for an image, a Gaussian with its own "
            f"mean and spread, lies from the N(0, I) prior; it is what the code costs. Summed over the {dims} "
            f"dimensions it is {total} nats per image. It is not spread evenly: the busiest dimension carries {top} "
            f"nats, and {active} of {dims} carry more than 0.01 nats. " + rest
            + "The prior is a standard Gaussian because its KL to the encoder's Gaussians has a closed form and it is "
              "easy to sample from.")
    nxt = "Open the Latent health lab for the per-dimension KL and collapse warnings; question 15 shows KL warm-up."
    return ctx.answer(n, fig, text, nxt, data_spec=FASHION)


# ---- 15. posterior collapse & warm-up -------------------------------------------------------------------------------
def q_warmup(ctx: Context):
    train, val = ctx.images(FASHION, 3000)
    vx = val.as_float()
    cfg = dense(16, kind="vae", beta=2.0)
    n = Numbers()
    res = []
    for name, warm in (("no warm-up", 0.0), ("warm-up", 0.5)):
        t = ctx.train(name, cfg, train, val, steps=1200, kl_warmup=warm)
        kl = per_dim_kl(t.model, vx)
        key = "warmup" if warm else "no_warmup"
        res.append((name, t, np.sort(kl)[::-1]))
        n.put(f"{key}_active_dims", int(len(kl) - len(inactive_dims(kl))))
        n.put(f"{key}_kl_nats", float(kl.sum()))
        n.put(f"{key}_mse", mse(t.model, vx))
    fig = fg.lines("KL per dimension, sorted (nats)", [(r[0], range(1, len(r[2]) + 1), r[2]) for r in res],
                   xlabel="dimension (by KL)")
    more = n["warmup_active_dims"] - n["no_warmup_active_dims"]
    text = (f"Two VAEs with β = 2: one feels the full KL weight from the first step, the other ramps it up over the "
            f"first half of training. Without warm-up {fmt(n, 'no_warmup_active_dims')} of 16 dimensions stay in use "
            f"(KL {fmt(n, 'no_warmup_kl_nats')} nats, error {fmt(n, 'no_warmup_mse')}); with warm-up "
            f"{fmt(n, 'warmup_active_dims')} (KL {fmt(n, 'warmup_kl_nats')} nats, error {fmt(n, 'warmup_mse')}). "
            + ("Warm-up kept more dimensions alive: early on, the decoder learns to use the code before the KL term "
               "pushes unused dimensions onto the prior, which is posterior collapse. " if more > 0 else
               "Here warm-up changed little; collapse is stronger with a larger β, a powerful decoder or sparse data. ")
            + "Free bits (a KL allowance per dimension that is not penalised) is the other common remedy.")
    nxt = "Raise β to 4 or 8 and rerun both; the Latent health lab marks collapsed dimensions."
    return ctx.answer(n, fig, text, nxt, setup=res[1][1], data_spec=FASHION)


# ---- 16. interpolation -------------------------------------------------------------------------------------------
def q_interpolate(ctx: Context):
    train, val = ctx.images(FASHION, 3000)
    vx = val.as_float()
    ae = ctx.train("plain", dense(8), train, val, steps=1500)
    vae = ctx.train("VAE", dense(8, kind="vae"), train, val, steps=1500)
    rng = np.random.default_rng(ctx.seed)
    pairs = rng.choice(len(vx), size=(256 if not ctx.tiny else 32, 2), replace=True)
    pca = fit_pca(train.as_float(), 8, ctx.seed)
    n = Numbers()
    strips = {}
    for name, t in (("ae", ae), ("vae", vae)):
        z = encode_images(t.model, vx)
        mids = decode_codes(t.model, 0.5 * (z[pairs[:, 0]] + z[pairs[:, 1]]))
        strips[name] = np.clip(decode_codes(t.model, interpolate_codes(z[pairs[0, 0]], z[pairs[0, 1]], 9)), 0, 1)
        n.put(f"{name}_midpoint_frechet", frechet(mids, vx, pca))
        n.put(f"{name}_endpoint_frechet", frechet(recons(t.model, vx), vx, pca))
    fig = fg.stack([fg.image_rows([("plain AE", strips["ae"]), ("VAE", strips["vae"])],
                                  title="Walking in a straight line between two codes"),
                    fg.bars("Midpoint images vs real images (Fréchet, PCA-8; lower: more real)", ["plain AE", "VAE"],
                            [n["ae_midpoint_frechet"], n["vae_midpoint_frechet"]], width=600)])
    smoother = n["vae_midpoint_frechet"] < n["ae_midpoint_frechet"]
    text = (f"The latent space is where the codes live; walking between two codes and decoding each step shows "
            f"whether the space between images means something. We decoded the midpoints of {len(pairs)} such walks "
            f"and measured how far their spread is from real images' (a Fréchet distance): "
            f"{fmt(n, 'ae_midpoint_frechet')} for the plain autoencoder and {fmt(n, 'vae_midpoint_frechet')} for the "
            f"VAE (their plain reconstructions score {fmt(n, 'ae_endpoint_frechet')} and "
            f"{fmt(n, 'vae_endpoint_frechet')}). "
            + ("The VAE's midpoints look more like real images: its training fills the space around each code, so "
               "the path between two codes stays among valid images." if smoother else
               "On this run the plain model's midpoints were as realistic: its space between codes can be smooth "
               "too, it is just not trained to be."))
    nxt = "Open the Traversal lab: interpolate any two images and compare linear and spherical paths."
    return ctx.answer(n, fig, text, nxt, setup=vae, data_spec=FASHION)


# ---- 17. conv vs dense --------------------------------------------------------------------------------------------
def q_conv(ctx: Context):
    train, val = ctx.images(FASHION, 3000)
    vx = val.as_float()
    d = ctx.train("dense", dense(16), train, val, steps=1000)
    # the conv layers alone (no dense layer before the code), so the comparison shows what sharing filters saves
    c = ctx.train("conv", replace(ModelConfig(), arch="conv", latent=16, dense_layers=[]), train, val, steps=1000)
    n = Numbers()
    dm = n.put("dense_mse", mse(d.model, vx))
    cm = n.put("conv_mse", mse(c.model, vx))
    dp = n.put("dense_parameters", count_parameters(d.model))
    cp = n.put("conv_parameters", count_parameters(c.model))
    fig = fg.stack([fg.image_rows([("original", vx[:SHOW]), ("dense", recons(d.model, vx[:SHOW])),
                                   ("conv", recons(c.model, vx[:SHOW]))], title="Same code size (16), same steps"),
                    fg.bars("Error per pixel", ["dense", "conv"], [n["dense_mse"], n["conv_mse"]]),
                    fg.bars("Parameters", ["dense", "conv"], [n["dense_parameters"], n["conv_parameters"]])])
    text = (f"Both compress to 16 numbers and trained for the same steps. The dense model, whose first layer connects "
            f"every pixel to every unit, has {dp} parameters and error {dm}; the convolutional one, which slides "
            f"small shared filters over the image, has {cp} parameters and error {cm}. Convolutions build in that "
            "nearby pixels belong together and that a pattern means the same wherever it appears, so they suit "
            "images and scale to large ones; dense layers suit short vectors with no spatial layout.")
    nxt = "Load the shapes data set and compare again; then try 3-channel images from a folder."
    return ctx.answer(n, fig, text, nxt, setup=c, data_spec=FASHION)


# ---- 18. recurrent -----------------------------------------------------------------------------------------------
def q_recurrent(ctx: Context):
    train, val = ctx.images(FASHION, 2400)
    vx = val.as_float()
    r = ctx.train("recurrent", replace(ModelConfig(), arch="recurrent", latent=16, hidden=[96], rnn_cell="gru"),
                  train, val, steps=700)
    d = ctx.train("dense", dense(16), train, val, steps=700)
    n = Numbers()
    rm = n.put("recurrent_mse", mse(r.model, vx))
    dm = n.put("dense_mse", mse(d.model, vx))
    n.put("recurrent_parameters", count_parameters(r.model))
    n.put("dense_parameters", count_parameters(d.model))
    fig = fg.stack([fg.image_rows([("original", vx[:SHOW]), ("recurrent (GRU)", recons(r.model, vx[:SHOW])),
                                   ("dense", recons(d.model, vx[:SHOW]))], title="A sequence model reading rows"),
                    fg.bars("Error per pixel", ["recurrent", "dense"], [n["recurrent_mse"], n["dense_mse"]])])
    text = (f"The recurrent autoencoder reads an image as a sequence, one 28-pixel row per step; its final state "
            f"becomes the 16-number code and a second GRU writes the rows back. With "
            f"{fmt(n, 'recurrent_parameters')} parameters it reaches error {rm} per pixel, against {dm} for a dense "
            f"model with {fmt(n, 'dense_parameters')}. Images are not its strength: recurrent autoencoders are "
            "meant for sequences of varying length (sensor traces, sentences, sounds), where a dense layer "
            "cannot take the input at all.")
    nxt = "Switch the builder to LSTM cells or more units; a recurrent model needs more steps than a dense one."
    return ctx.answer(n, fig, text, nxt, setup=r, data_spec=FASHION)


# ---- 19. stacked ---------------------------------------------------------------------------------------------------
def q_stacked(ctx: Context):
    train, val = ctx.images(FASHION, 3000)
    vx = val.as_float()
    cfg = get_preset("stacked").model_config(train.shape)
    s = ctx.train("stacked", cfg, train, val, steps=1500)
    e = ctx.train("end-to-end", replace(cfg, stacked=False), train, val, steps=1500)
    n = Numbers()
    sm = n.put("stacked_mse", mse(s.model, vx))
    em = n.put("end_to_end_mse", mse(e.model, vx))
    n.put("stacked_steps", s.steps)
    n.put("end_to_end_steps", e.steps)
    fig = fg.stack([fg.image_rows([("original", vx[:SHOW]), ("stacked", recons(s.model, vx[:SHOW])),
                                   ("end-to-end", recons(e.model, vx[:SHOW]))], title="784 → 256 → 64 → 16"),
                    fg.bars("Error per pixel", ["stacked + fine-tuning", "end-to-end"], [n["stacked_mse"], n["end_to_end_mse"]])])
    text = (f"A stacked autoencoder is trained one layer pair at a time: the outer pair learns to rebuild pixels, the "
            f"next pair to rebuild the outer pair's features, and so on, before everything is fine-tuned together. "
            f"With about the same number of steps in all ({fmt(n, 'stacked_steps')} and {fmt(n, 'end_to_end_steps')}), "
            f"the stacked model's error is {sm} and the end-to-end model's {em}. "
            + ("Here the greedy start helped. " if n["stacked_mse"] < n["end_to_end_mse"] else
               "With ReLUs, good initialisation and Adam, end-to-end training needs no greedy start on a network this "
               "shallow; pretraining mattered when deep networks with sigmoids could not be trained otherwise. ")
            + "Tying weights (question 20) is often combined with stacking.")
    nxt = "Use the Stacked preset and raise Pretraining epochs in the Training panel; watch the stages in the loss curves."
    return ctx.answer(n, fig, text, nxt, setup=s, data_spec=FASHION)


# ---- 20. tied weights ------------------------------------------------------------------------------------------------
def q_tied(ctx: Context):
    train, val = ctx.images(FASHION, 3000)
    vx, tx = val.as_float(), train.as_float()
    cfg = dense(32)
    tied = ctx.train("tied", replace(cfg, tied=True), train, val, steps=1200)
    free = ctx.train("untied", cfg, train, val, steps=1200)
    n = Numbers()
    for name, t in (("tied", tied), ("untied", free)):
        n.put(f"{name}_parameters", count_parameters(t.model))
        n.put(f"{name}_val_mse", mse(t.model, vx))
        n.put(f"{name}_train_mse", mse(t.model, tx[: len(vx)]))
    saved = n.pct("parameters_saved_pct", 1 - times(n["tied_parameters"], n["untied_parameters"]))
    fig = fg.stack([fg.bars("Parameters", ["tied", "untied"], [n["tied_parameters"], n["untied_parameters"]]),
                    fg.bars("Error per pixel (validation)", ["tied", "untied"], [n["tied_val_mse"], n["untied_val_mse"]])])
    text = (f"With tied weights each decoder layer reuses the transposed weight matrix of its mirror encoder layer. "
            f"That cuts the parameters from {fmt(n, 'untied_parameters')} to {fmt(n, 'tied_parameters')} ({saved} "
            f"fewer). Validation error: {fmt(n, 'tied_val_mse')} tied, {fmt(n, 'untied_val_mse')} untied (training "
            f"error {fmt(n, 'tied_train_mse')} and {fmt(n, 'untied_train_mse')}). Fewer parameters mean faster "
            "training and less room to overfit, and the encoder and decoder stay mirror images of each other.")
    nxt = "Tick Tied weights in the builder on a dense model; compare on a small folder where overfitting shows."
    return ctx.answer(n, fig, text, nxt, setup=tied, data_spec=FASHION)


# ---- 21. 2-D maps --------------------------------------------------------------------------------------------------
def q_map(ctx: Context):
    train, val = ctx.images(FASHION, 3000)
    vx, tx = val.as_float(), train.as_float()
    t = ctx.train("2-D code", dense(2, [256, 64]), train, val, steps=1500)
    z = encode_images(t.model, vx)
    pca = fit_pca(tx, 2)
    p = pca.transform(vx.reshape(len(vx), -1))
    n = Numbers()
    sa = n.put("silhouette_autoencoder", silhouette(z, val.labels))
    sp = n.put("silhouette_pca", silhouette(p, val.labels))
    ka = n.pct("knn_accuracy_autoencoder_pct", knn_accuracy(encode_images(t.model, tx), train.labels, z, val.labels, None))
    kp = n.pct("knn_accuracy_pca_pct", knn_accuracy(pca.transform(tx.reshape(len(tx), -1)), train.labels, p, val.labels, None))
    fig = fg.side_by_side([fg.scatter("autoencoder, 2-D code", z, val.labels),
                           fg.scatter("PCA, first 2 components", p, val.labels)])
    text = (f"An autoencoder with a 2-number code draws a map of the data set directly: each image is a point. "
            f"Coloured by class (labels the model never saw), the classes separate with a silhouette of {sa} for the "
            f"autoencoder and {sp} for PCA's two components (1 is perfect, 0 is overlapping), and a 5-nearest-"
            f"neighbour vote on the map is right {ka} vs {kp} of the time. Unlike t-SNE, the encoder gives a "
            "position to new images instantly, and the decoder turns any point of the map back into an image.")
    nxt = "Train a 2-D model in the studio and click the Latent map: each click decodes that spot."
    return ctx.answer(n, fig, text, nxt, data_spec=FASHION)


# ---- 22. regularisation and overfitting -------------------------------------------------------------------------------
def q_regularise(ctx: Context):
    train, val = ctx.images(FASHION, 400, val_fraction=0.5)
    vx, tx = val.as_float(), train.as_float()
    cfg = dense(64, [512])
    variants = [("unregularised", "plain", cfg), ("weight decay 1e-3", "weight_decay", replace(cfg, weight_decay=1e-3)),
                ("dropout 0.2", "dropout", replace(cfg, dropout=0.2))]
    n = Numbers()
    curves, trained = [], {}
    for title, key, c in variants:
        t = ctx.train(title, c, train, val, steps=1500)
        trained[key] = t
        n.put(f"{key}_train_mse", mse(t.model, tx))
        n.put(f"{key}_val_mse", mse(t.model, vx))
        n.put(f"{key}_gap", times(mse(t.model, vx), mse(t.model, tx)))
        curves.append((title, *val_curve(t)))
    fig = fg.lines(f"Validation error while training on {train.n} images", curves, xlabel="step", markers=False)
    helped = [title for title, key, _ in variants[1:] if n[f"{key}_val_mse"] < n["plain_val_mse"]]
    best_key = min(("weight_decay", "dropout"), key=lambda k: n[f"{k}_val_mse"])
    text = (f"With only {train.n} training images and a wide model, the unregularised autoencoder reaches error "
            f"{fmt(n, 'plain_train_mse')} on its own images but {fmt(n, 'plain_val_mse')} on new ones "
            f"({fmt(n, 'plain_gap')}× worse): it memorises. With weight decay the numbers are "
            f"{fmt(n, 'weight_decay_train_mse')} and {fmt(n, 'weight_decay_val_mse')}, with dropout "
            f"{fmt(n, 'dropout_train_mse')} and {fmt(n, 'dropout_val_mse')}. "
            + (f"Here {' and '.join(helped)} lowered the error on new images. " if helped else
               "Here neither lowered the error on new images at this strength. ")
            + "A regulariser limits what the model can fit to the few training images so that what it learns carries "
              "over; how much it helps depends on its strength and the budget, so measure it on held-out images. For "
              "an autoencoder it also keeps a wide code from merely copying (question 4).")
    nxt = "Open a small image folder, train, and watch the training doctor's overfitting warning; then add weight decay."
    return ctx.answer(n, fig, text, nxt, setup=trained[best_key], data_spec=FASHION)


# ---- 23. factors on shapes -----------------------------------------------------------------------------------------
def q_factors(ctx: Context):
    from ..labs.traversal import traversal_experiment

    full = ctx.dataset("shapes")
    train, val = ctx.images("shapes", 3000, data=full)
    t = ctx.train("β-VAE", replace(ModelConfig(), arch="dense", hidden=[256], kind="vae", latent=6, beta=4.0),
                  train, val, steps=1500)
    res = traversal_experiment(t.model, val.images, val.factors, val.factor_names, max_rows=6, steps=7,
                               n_samples=8, seed=ctx.seed)
    s = res.factor_summary
    n = Numbers()
    for name, d, sc in zip(s.factor_names, s.best_dim, s.best_score):
        n.put(f"{name}_best_score", float(sc))
    gap = n.put("mean_gap", s.gap_score)
    grid = np.transpose(res.grid, (1, 2, 0))
    tiles = []
    h, w = res.image_size
    for r, d in enumerate(res.dims):
        row = res.grid[:, r * (h + res.pad): r * (h + res.pad) + h, :]
        imgs = [row[:, :, c * (w + res.pad): c * (w + res.pad) + w] for c in range(len(res.values))]
        tiles.append((f"z{d + 1}", np.stack(imgs)))
    del grid
    fig = fg.image_rows(tiles, title="Each row moves one code dimension from -3σ to +3σ", size=40)
    parts = [f"{name} → z{d + 1} ({fmt(n, name + '_best_score')})" for name, d in zip(s.factor_names, s.best_dim)]
    text = (f"The shapes data set is drawn from known factors, so we can check what each code dimension tracks. "
            f"After training a β-VAE (β = 4, 6 dimensions), the dimension that follows each factor best, with its "
            f"rank correlation: {'; '.join(parts)}. The mean gap between the best and second-best dimension is "
            f"{gap} (1 would mean one dimension per factor). {s.verdict}")
    nxt = "Open the Traversal lab with the shapes data: compare β = 1 and β = 8 and the factor read-out."
    return ctx.answer(n, fig, text, nxt, data_spec="shapes")


# ---- 24. VAE output varies --------------------------------------------------------------------------------------------
def q_vae_draws(ctx: Context):
    train, val = ctx.images(FASHION, 3000)
    vx = val.as_float()
    vae = ctx.train("VAE", dense(8, kind="vae"), train, val, steps=1500)
    ae = ctx.train("plain", dense(8), train, val, steps=1500)
    draws = 8
    m = vae.model.eval()
    x = torch.from_numpy(np.ascontiguousarray(vx[:64]))
    g = torch.Generator().manual_seed(ctx.seed)
    with torch.no_grad():
        code = m.encode(x)
        outs = torch.stack([m.decode(code.mu + torch.randn(code.mu.shape, generator=g) * torch.exp(0.5 * code.logvar))
                            for _ in range(draws)])
    outs = outs.clamp(0, 1).numpy()
    n = Numbers()
    sd = n.put("vae_pixel_std_across_draws", float(outs.std(0).mean()))
    sig = n.put("vae_mean_posterior_sigma", float(torch.exp(0.5 * code.logvar).mean()))
    a1 = recons(ae.model, vx[:64])
    a2 = recons(ae.model, vx[:64])
    n.put("ae_pixel_difference_between_runs", float(np.abs(a1 - a2).mean()))
    fig = fg.image_rows([("input", np.repeat(vx[:1], draws, 0)), ("VAE draws", outs[:, 0]),
                         ("plain AE", np.repeat(a1[:1], draws, 0))], title="One input, eight decodes")
    text = (f"A VAE's encoder returns a distribution, not a point: here the spread of its Gaussians averages {sig} "
            f"per dimension. Decoding eight codes drawn from it gives eight different images; the pixels vary by "
            f"{sd} on average (standard deviation over draws). The plain autoencoder maps an input to one code and "
            f"always returns the same output (difference between two runs: {fmt(n, 'ae_pixel_difference_between_runs')}). "
            "Studio views show the VAE's mean code, which is why its reconstructions look deterministic there.")
    nxt = "Raise β in the builder and rerun: the posterior spreads widen and the draws vary more."
    return ctx.answer(n, fig, text, nxt, setup=vae, data_spec=FASHION)


# ---- 25. adversarial autoencoder ----------------------------------------------------------------------------
def q_aae(ctx: Context):
    train, val = ctx.images(FASHION, 3000)
    vx = val.as_float()
    k = 8
    aae = ctx.train("adversarial", dense(k, kind="aae"), train, val, steps=1500)
    ae = ctx.train("plain", dense(k), train, val, steps=1500)
    rows = [h for h in aae.history if "train_disc" in h]
    ep = list(range(1, len(rows) + 1))
    disc = [float(h["train_disc"]) for h in rows]
    gen = [float(h["train_gen"]) for h in rows]
    za, zp = encode_images(aae.model, vx), encode_images(ae.model, vx)
    n = Numbers()
    n.put("final_discriminator_loss", disc[-1])
    n.put("final_generator_loss", gen[-1])
    n.put("chance_discriminator_loss", 2 * np.log(2))
    n.put("aae_code_std_mean", float(za.std(0).mean()))
    n.put("plain_code_std_mean", float(zp.std(0).mean()))
    n.put("aae_code_mean_abs", float(np.abs(za.mean(0)).mean()))
    swings = np.abs(np.diff(gen)) if len(gen) > 1 else np.zeros(1)
    n.put("generator_loss_swing", float(swings.mean()))
    m = 256 if not ctx.tiny else 32
    s_aae = decode_codes(aae.model, sample_codes(aae.model, m, ctx.seed))
    s_ae = decode_codes(ae.model, np.random.default_rng(ctx.seed).standard_normal((m, k)).astype(np.float32))
    pca = fit_pca(train.as_float(), 8, ctx.seed)
    n.put("frechet_aae_prior_samples", frechet(s_aae, vx, pca))
    n.put("frechet_plain_prior_samples", frechet(s_ae, vx, pca))
    n.put("aae_mse", mse(aae.model, vx))
    prior = np.random.default_rng(ctx.seed + 1).standard_normal((min(len(za), 400), 2))
    both = np.concatenate([za[: len(prior), :2], prior])
    lab = np.r_[np.zeros(min(len(za), len(prior)), int), np.ones(len(prior), int)]
    fig = fg.stack([
        fg.lines("The two players' losses, per epoch", [("discriminator", ep, disc), ("generator (encoder)", ep, gen)],
                 xlabel="epoch", markers=len(ep) <= 40),
        fg.side_by_side([fg.scatter("AAE codes (z1, z2; blue) vs prior (orange)", both, lab),
                         fg.image_rows([("AAE, prior", s_aae[:4]), ("plain, N(0,I)", s_ae[:4])], title="Decoded prior samples")]),
    ])
    matched = (abs(n["final_discriminator_loss"] - n["chance_discriminator_loss"]) < 0.35
               and abs(n["aae_code_std_mean"] - 1.0) < 0.5)
    text = (f"A GAN pits two networks against each other: a generator makes samples and a discriminator tries to tell "
            f"them from real ones. The adversarial autoencoder plays that game on the code: a discriminator learns to "
            f"tell the encoder's codes from draws of N(0, I), and the encoder learns to fool it while still "
            f"reconstructing (error {fmt(n, 'aae_mse')} per pixel). At the end the discriminator's loss is "
            f"{fmt(n, 'final_discriminator_loss')} (a coin flip scores {fmt(n, 'chance_discriminator_loss')}) and the "
            f"encoder's {fmt(n, 'final_generator_loss')}. "
            + (f"The discriminator can barely tell codes from prior samples, and the codes spread like the prior (std "
               f"{fmt(n, 'aae_code_std_mean')} per dimension, against {fmt(n, 'plain_code_std_mean')} for a plain "
               f"autoencoder), so decoded prior samples spread like real images to a Fréchet distance of "
               f"{fmt(n, 'frechet_aae_prior_samples')}, against {fmt(n, 'frechet_plain_prior_samples')} for the plain "
               "model's. " if matched else
               f"The discriminator won this game: it still tells codes from prior samples easily, and the codes' "
               f"spread (std {fmt(n, 'aae_code_std_mean')} per dimension; the prior's is 1, a plain autoencoder's "
               f"{fmt(n, 'plain_code_std_mean')}) was not pulled onto the prior, so prior samples decode no better "
               f"(Fréchet distance {fmt(n, 'frechet_aae_prior_samples')} against "
               f"{fmt(n, 'frechet_plain_prior_samples')} for the plain model). That is the instability in action: "
               "once one player overpowers the other, the loser's gradient carries little information. ")
            + f"Why such training is hard in general: the two losses chase each other instead of falling together "
              f"(here the encoder's loss moved by {fmt(n, 'generator_loss_swing')} per epoch on average), one player "
              "can overpower the other, and a generator may cover only part of its target (mode collapse).")
    nxt = ("Build the Adversarial kind in the builder and watch the disc and gen curves; change the learning rate or "
           "the code size and see who wins.")
    return ctx.answer(n, fig, text, nxt, setup=aae, data_spec=FASHION)
