"""The Questions guide (no Qt): course questions, each answered by a small experiment.

    from aestudio.core.questions import QUESTIONS, get_question, run_question
    for q in QUESTIONS:
        print(q.number, q.title)
    answer = run_question(7, budget="normal", progress=None, control=None)
    answer.numbers, answer.figure, answer.text

Each question names its topic, the lab or view of the studio that explores it further, and how
many models its experiment trains (for one progress bar over all of them). `report.write_answer`
writes answer.md, figure.png and numbers.json (and optionally one HTML page).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..training import Control
from . import experiments as ex
from .base import Answer, BUDGETS, Cancelled, Context, Numbers, Progress


@dataclass(frozen=True)
class Question:
    number: int
    key: str
    title: str  # short, for lists
    question: str  # the full question, in our words
    topic: str
    experiment: Callable[[Context], Answer]
    trainings: int = 1  # models the experiment trains
    lab: str | None = None  # the Labs window tab that explores it further
    view: str | None = None  # a studio panel to show ("Latent map", "Loss curves", ...)
    requires: Callable[[], bool] | None = None  # a model feature the experiment needs

    @property
    def available(self) -> bool:
        return self.requires is None or bool(self.requires())

    def line(self) -> str:
        return f"{self.number:>2}. {self.title} [{self.topic}]"


def _has_aae() -> bool:
    from ..config import KINDS

    try:
        from ..training import Trainer

        from ..adversarial import AdversarialStep  # noqa: F401

        return "aae" in KINDS and Trainer is not None
    except ImportError:  # pragma: no cover
        return False


def _has_linear() -> bool:
    from ..presets import linear_activation_supported, no_hidden_layers_supported

    return linear_activation_supported() and no_hidden_layers_supported()


_Q = Question
QUESTIONS: tuple[Question, ...] = (
    _Q(1, "what-is", "What does an autoencoder learn?",
       "What does an autoencoder learn when it is trained only to reproduce its input through a small code?",
       "basics", ex.q_what_is, 1, view="Image grid"),
    _Q(2, "code-size", "How small can the code be?",
       "What happens as the bottleneck shrinks, and what is the risk of a code that is too small?",
       "undercomplete", ex.q_code_size, 3, lab="PCA vs autoencoder"),
    _Q(3, "perfect", "Is perfect reconstruction a good sign?",
       "If an autoencoder reconstructs its inputs almost perfectly, is it a good autoencoder?",
       "overcomplete", ex.q_perfect, 2),
    _Q(4, "overcomplete-fixes", "How do you stop an over-complete model copying?",
       "A code larger than the input can learn the identity. Which regularisers make it learn structure instead?",
       "overcomplete", ex.q_overcomplete_fixes, 4),
    _Q(5, "pca", "How is an autoencoder different from PCA?",
       "PCA and an autoencoder both compress data. What does the non-linear network gain over PCA at the same size?",
       "PCA", ex.q_pca, 1, lab="PCA vs autoencoder"),
    _Q(6, "linear-pca", "Does a linear autoencoder learn PCA?",
       "With no non-linearity, what does an autoencoder trained on squared error converge to?",
       "PCA", ex.q_linear_pca, 1, lab="PCA vs autoencoder", requires=_has_linear),
    _Q(7, "denoising", "What does a denoising autoencoder learn?",
       "How does training on corrupted inputs change what an autoencoder learns, and how much noise does it remove?",
       "denoising", ex.q_denoising, 2, lab="Denoising lab"),
    _Q(8, "sparse", "What does a sparsity penalty do?",
       "What does a sparse autoencoder's penalty do to its code, and what does it cost in reconstruction?",
       "sparse", ex.q_sparse, 2),
    _Q(9, "robust", "Why are contractive and denoising codes robust?",
       "Why do contractive and denoising autoencoders give codes that move less under small input changes?",
       "contractive", ex.q_robust, 3),
    _Q(10, "anomaly", "How does an autoencoder find anomalies?",
       "How can a model trained only on normal data flag unusual inputs, and how well does it separate them?",
       "anomalies", ex.q_anomaly, 1, lab="Anomaly lab"),
    _Q(11, "few-labels", "Many images, few labels: how does it help?",
       "With plenty of unlabelled images but few labelled ones, how can an autoencoder help a classifier?",
       "pretraining", ex.q_few_labels, 1, lab="Few labels"),
    _Q(12, "sampling", "Can a plain autoencoder generate images?",
       "What makes a VAE a generative model, and what happens when you decode random codes of a plain autoencoder?",
       "VAE", ex.q_sampling, 2, lab="Traversal"),
    _Q(13, "beta", "What does β change in a β-VAE?",
       "What does weighting the KL term more (β > 1) do to reconstructions and to the code?",
       "VAE", ex.q_beta, 2, lab="Latent health"),
    _Q(14, "kl", "What does the KL term measure?",
       "What is the KL divergence in a VAE's loss for, and why is the prior a Gaussian?",
       "VAE", ex.q_kl, 1, lab="Latent health"),
    _Q(15, "warmup", "What is posterior collapse, and does KL warm-up help?",
       "Why do some VAE dimensions stop carrying information, and what does ramping up the KL weight do?",
       "VAE", ex.q_warmup, 2, lab="Latent health"),
    _Q(16, "interpolate", "Is the latent space smooth?",
       "What is the latent space, and what do you see when you walk between two codes?",
       "latent space", ex.q_interpolate, 2, lab="Traversal"),
    _Q(17, "conv", "When is a convolutional autoencoder better?",
       "When are convolutional autoencoders preferred over dense ones?",
       "architectures", ex.q_conv, 2, view="Image grid"),
    _Q(18, "recurrent", "How does a recurrent autoencoder work?",
       "How does a recurrent autoencoder differ from a feed-forward one, and when is it the right tool?",
       "architectures", ex.q_recurrent, 2),
    _Q(19, "stacked", "Does layer-wise pretraining help?",
       "What is a stacked autoencoder, and does greedy layer-by-layer pretraining beat end-to-end training?",
       "stacked", ex.q_stacked, 2, view="Loss curves"),
    _Q(20, "tied", "Why tie the decoder's weights?",
       "How are weights tied in an autoencoder, and what does it buy?",
       "stacked", ex.q_tied, 2),
    _Q(21, "map", "How does an autoencoder reduce dimensions?",
       "How can an autoencoder reduce images to two numbers for a map of the data, and how does it compare with PCA?",
       "dimensionality reduction", ex.q_map, 1, view="Latent map"),
    _Q(22, "regularise", "What does regularisation do?",
       "What role does regularisation play when an autoencoder has little data?",
       "regularisation", ex.q_regularise, 3, view="Loss curves"),
    _Q(23, "factors", "What does each latent dimension control?",
       "On data made from known factors, does each code dimension of a β-VAE follow one factor?",
       "disentanglement", ex.q_factors, 1, lab="Traversal"),
    _Q(24, "vae-draws", "Does a VAE give the same output twice?",
       "How does a VAE's encoding differ from a plain autoencoder's, and what does that do to its outputs?",
       "VAE", ex.q_vae_draws, 2),
    _Q(25, "aae", "What is adversarial training, and why is it hard?",
       "What does a GAN's adversarial game look like inside an autoencoder, and why is it unstable to train?",
       "GAN", ex.q_aae, 2, view="Loss curves", requires=_has_aae),
)


def get_question(number: int | str) -> Question:
    """The question with this number (or key); KeyError with a readable message otherwise."""
    for q in QUESTIONS:
        if str(number) in (str(q.number), q.key):
            return q
    raise KeyError(f"there is no question {number}; choose 1 to {len(QUESTIONS)} (`aestudio questions --list`)")


def run_question(number: int | str, budget: str = "normal", progress: Progress | None = None,
                 control: Control | None = None, seed: int = 0) -> Answer:
    """Run one question's experiment and return its answer (raises Cancelled when `control` stops)."""
    q = get_question(number)
    if not q.available:
        raise RuntimeError(f"question {q.number} needs a model feature this build does not have")
    ctx = Context(budget, progress, control, seed, q.trainings)
    answer = q.experiment(ctx)
    if progress is not None:
        progress(1000, 1000)
    return answer


__all__ = ["Answer", "BUDGETS", "Cancelled", "Context", "Numbers", "QUESTIONS", "Question", "get_question",
           "run_question"]
