"""How long the labs train, and whether that was long enough (no Qt).

The labs that train models (PCA vs autoencoder sizes, the anomaly lab's normal-class model, the
denoising lab's plain / denoising pair) budget their training in optimizer steps, not epochs: three
epochs of 60,000 images are 1,400 steps, three epochs of 500 images are 12, and a verdict drawn from
the second is an artefact of under-training. `lab_epochs` turns a step budget into epochs for the
data at hand.

After training, `still_improving(history)` looks at the validation loss over the last fifth of
training. When it was still falling clearly (by `MIN_FALL` or more), the model had not finished
learning and the lab says so next to its verdict:

    note = still_improving(trainer.history, steps_per_epoch=16, what="The autoencoder")
    # "The autoencoder was still improving when its step budget ran out (validation loss fell 6%
    #  over the last 320 steps); its verdict may understate it. Raise Training steps."

Why a fall over the last fifth of the steps, not per epoch: it does not depend on how many
images an epoch has. If the loss follows a power law L ~ t^-a, a 2 % fall over the last fifth
means a ≈ 0.09, and twice the steps would lower the loss by about another 6 %.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from ..doctor import at_full_rate
from ..training import steps_per_epoch, suggest_epochs  # noqa: F401 - the labs take steps_per_epoch from here

#: Default budgets, optimizer steps per trained model. Chosen so a lab run on about 2,000 small
#: images (the default conv autoencoder, batch 128) takes about a minute on 2 CPU cores, and long
#: enough that the models have mostly stopped improving on the bundled and held-out sets.
ANOMALY_STEPS = 1500  # one model
DENOISING_STEPS = 1000  # each of two models
SWEEP_STEPS = 600  # each latent size (five by default)
MIN_STEPS, MAX_STEPS = 10, 100_000

TAIL = 0.2  # the last fifth of training
MIN_FALL = 0.02  # a relative fall of the validation loss over the tail that counts as still improving
LEAST_EPOCHS = 2  # the check needs at least two epochs to compare


def lab_epochs(n_train: int, batch_size: int, steps: int) -> int:
    """Epochs that give about `steps` optimizer steps on `n_train` images (at least two)."""
    return suggest_epochs(n_train, batch_size, int(steps), least=LEAST_EPOCHS, most=MAX_STEPS)


@dataclass
class Improvement:
    """How much the validation loss fell over the last `tail_epochs` epochs of training."""

    fall: float  # relative: 0.06 is 6 % lower at the end
    tail_epochs: int
    tail_steps: int | None  # None when the steps per epoch are unknown
    epochs: int

    @property
    def improving(self) -> bool:
        return self.fall >= MIN_FALL

    def span(self) -> str:
        if self.tail_steps is not None:
            return f"the last {self.tail_steps:,} steps"
        return f"the last {self.tail_epochs} epoch" + ("s" if self.tail_epochs != 1 else "")


def _losses(history: Sequence[Mapping], key: str | None) -> list[float]:
    if not history:
        return []
    stage = history[-1].get("stage")
    rows = [h for h in history if h.get("stage") == stage]  # the last stage (fine-tuning after pretraining)
    keys = [key] if key else ["val_total", "train_total"]
    for k in keys:
        values = [float(h[k]) for h in rows if k in h]
        if values and all(math.isfinite(v) for v in values):
            return values
    return []


def improvement(history: Sequence[Mapping], steps_per_epoch: int | None = None, key: str | None = None,
                tail: float = TAIL, lr_decay: float = 0.0) -> Improvement | None:
    """The relative fall of the loss (`key`, default the validation total, else the training total)
    over the last `tail` of the epochs of the last stage: the best value before the tail against the
    best value in it (robust to a noisy or rising last epoch). None with fewer than two epochs.

    With a learning rate that falls over the run's last `lr_decay` share (`TrainConfig.lr_decay`),
    the epochs judged are those before it began (when there are three or more): the loss drops while
    the rate anneals whether or not more steps would help, as the training doctor reasons too."""
    v = at_full_rate(_losses(history, key), lr_decay)
    if len(v) < 2:
        return None
    w = min(len(v) - 1, max(1, int(round(tail * len(v)))))
    before, after = min(v[:-w]), min(v[-w:])
    fall = (before - after) / before if before > 0 else 0.0
    return Improvement(max(fall, 0.0), w, None if steps_per_epoch is None else int(w * steps_per_epoch), len(v))


def improving_note(what: str, found: Iterable[Improvement | None], remedy: str = "Raise Training steps.",
                   plural: bool = False) -> str | None:
    """The note for the models in `found` that were still improving (None if none was)."""
    falls = [f for f in found if f is not None and f.improving]
    if not falls:
        return None
    lo, hi = min(f.fall for f in falls), max(f.fall for f in falls)
    amount = f"{100 * lo:.0f}%" if round(100 * lo) == round(100 * hi) else f"{100 * lo:.0f}–{100 * hi:.0f}%"
    spans = {f.span() for f in falls}
    span = spans.pop() if len(spans) == 1 else "the last fifth of training"
    verb, its = ("were", "their") if plural else ("was", "its")
    return (f"{what} {verb} still improving when {its} step budget ran out (validation loss fell {amount} over "
            f"{span}); {its} verdict may understate {'them' if plural else 'it'}. {remedy}")


def still_improving(history: Sequence[Mapping], steps_per_epoch: int | None = None, what: str = "The model",
                    remedy: str = "Raise Training steps.") -> str | None:
    """A one-sentence note when the model was still clearly improving at the end of training
    (validation loss fell by `MIN_FALL` or more over the last fifth), else None."""
    return improving_note(what, [improvement(history, steps_per_epoch)], remedy)


__all__ = [
    "ANOMALY_STEPS", "DENOISING_STEPS", "Improvement", "MIN_FALL", "SWEEP_STEPS", "TAIL", "improvement",
    "improving_note", "lab_epochs", "steps_per_epoch", "still_improving",
]
