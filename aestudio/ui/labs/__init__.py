"""Exploration labs: the questions people bring to autoencoders, answered on their own data."""
from __future__ import annotations

from .anomaly_lab import AnomalyLab
from .denoising_lab import DenoisingLab
from .few_labels_lab import FewLabelsLab
from .health_lab import LatentHealthLab
from .pca_lab import PcaVsAutoencoderLab
from .robustness_lab import RobustnessLab
from .traversal_lab import TraversalLab
from .vae_lab import VaeToolsLab

#: (class, one-line description for the Labs menu), in menu order
LABS = [
    (DenoisingLab, "Does it denoise? Noise sliders, PSNR and SSIM, plain vs denoising autoencoder."),
    (AnomalyLab, "Which images are anomalous? Error histogram, threshold, ROC, score a folder."),
    (PcaVsAutoencoderLab, "Does it beat PCA at the same size? Error against code size, maps side by side."),
    (FewLabelsLab, "Do its codes help a classifier with few labels? Accuracy against labels per class."),
    (TraversalLab, "What does each dimension do? Traversals, interpolation, samples, disentanglement."),
    (LatentHealthLab, "Is the latent space well-formed? Silhouette, k-NN, per-dimension KL, collapse."),
    (VaeToolsLab, "How does a VAE differ? Sampled reconstructions, KL per dimension over training, AE vs VAE samples."),
    (RobustnessLab, "Which codes resist input noise? Plain vs denoising vs contractive, same size."),
]

__all__ = ["LABS", "AnomalyLab", "DenoisingLab", "FewLabelsLab", "LatentHealthLab", "PcaVsAutoencoderLab",
           "RobustnessLab", "TraversalLab", "VaeToolsLab"]
