"""The rank and the stability of what a network learns: singular values of weight changes, and
Slingshot events (norm steps with loss spikes).

Abbe, Boix-Adserà, Littwin et al. (NeurIPS 2023) watch the difference between a trained weight
matrix and its initial value, ΔW(t) = W(t) − W(0), and see its singular values switch on one at a
time. This module records them during :func:`hild.train.train` and reads the stages off::

    tracker = rank.SingularValueTracker({"QK": lambda m: m.logit_matrix()}, top=5, every=10)
    history = train.train(model, loss_fn, data, optimizer=opt, steps=3000, callbacks=[tracker])
    tracker.steps, tracker.values["QK"]          # (n,) steps and (n, 5) singular values of ΔW
    rank.activation_steps(tracker.steps, tracker.values["QK"][:, :3])
    rank.numerical_rank(tracker.values["QK"][-1], rtol=0.01)

The tracked matrix is any function of the model (a weight, a product such as W_Q W_Kᵀ, one head's
slice); its value when training starts is the reference unless ``relative_to_init=False``.

:func:`slingshot_events` finds the cycles Thilak et al. (2022) call the Slingshot mechanism in a
run's loss and last-layer norm: windows in which the norm steps up while the loss spikes::

    events = rank.slingshot_events(history.steps, history["loss"], history["norm"], window=300)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .train import Callback, TrainState

__all__ = ["singular_values", "numerical_rank", "activation_steps", "SingularValueTracker",
           "SlingshotEvent", "slingshot_events"]

MatrixFn = Callable[[torch.nn.Module], torch.Tensor]


def singular_values(matrix: torch.Tensor | np.ndarray, *, top: int | None = None) -> np.ndarray:
    """The singular values of a matrix, largest first, as a float64 NumPy array.

    Args:
        matrix: (m, n) tensor or array.
        top: keep only the ``top`` largest (all ``min(m, n)`` by default).
    """
    m = torch.as_tensor(matrix).detach().to("cpu", torch.float64)
    if m.ndim != 2:
        raise ValueError(f"singular_values needs a matrix, got shape {tuple(m.shape)}")
    s = torch.linalg.svdvals(m).numpy()
    return s if top is None else s[:top]


def numerical_rank(svals: Sequence[float] | np.ndarray, *, rtol: float = 0.01, atol: float = 0.0) -> int:
    """How many singular values exceed ``max(rtol · σ₁, atol)``.

    ``rtol`` is relative to the largest singular value, so the count does not depend on the
    matrix's scale; ``atol`` guards an all-but-zero matrix (whose σ₁ is itself noise).

    Args:
        svals: singular values (any order; negative entries are not singular values and raise).
    """
    s = np.asarray(svals, dtype=np.float64).ravel()
    if s.size == 0:
        return 0
    if np.any(s < 0):
        raise ValueError(f"singular values are non-negative, got {s[s < 0][:3]}")
    if not rtol >= 0 or not atol >= 0:
        raise ValueError(f"rtol and atol must be non-negative, got rtol={rtol}, atol={atol}")
    threshold = max(rtol * float(s.max()), atol)
    if s.max() <= atol:
        return 0
    return int(np.sum(s > threshold))


def activation_steps(steps: Sequence[int] | np.ndarray, values: np.ndarray, *,
                     fraction: float = 0.5) -> np.ndarray:
    """For each column k, the first step at which σ_k reaches ``fraction`` of its final value.

    Args:
        steps: (n,) the steps at which ``values`` were recorded, increasing.
        values: (n, k) singular values per record (a column per σ_k).
        fraction: of the last recorded value; 0.5 marks the middle of an S-shaped rise.

    Returns:
        (k,) int64 steps; -1 for a column whose final value is 0 (it never switched on).
    """
    steps = np.asarray(steps)
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 1:
        v = v[:, None]
    if v.ndim != 2 or len(steps) != v.shape[0]:
        raise ValueError(f"values must be (n, k) with n = len(steps) = {len(steps)}, got shape {v.shape}")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    out = np.full(v.shape[1], -1, dtype=np.int64)
    for k in range(v.shape[1]):
        final = v[-1, k]
        if final <= 0:
            continue
        out[k] = int(steps[int(np.argmax(v[:, k] >= fraction * final))])
    return out


class SingularValueTracker(Callback):
    """Records the top singular values of tracked matrices (minus their initial value) in training.

    ``values[name]`` is an (n, top) array and ``steps`` the n steps it was recorded at (step 0,
    before training, included); ``on_step`` also returns them as metrics ``"<name>_sv1"``,
    ``"<name>_sv2"``, ... so that :func:`hild.train.train` records them in its history at the steps
    where both record (give the tracker the same ``every`` as ``train``).

    Args:
        matrices: name → function of the model returning a 2-D tensor.
        top: how many singular values to keep per matrix.
        every: record every ``every`` steps.
        relative_to_init: track W(t) − W(0) (the default) or W(t) itself.
    """

    def __init__(self, matrices: Mapping[str, MatrixFn], *, top: int = 5, every: int = 1,
                 relative_to_init: bool = True):
        if not matrices:
            raise ValueError("give at least one matrix to track, e.g. {'W': lambda m: m.weight}")
        if top < 1 or every < 1:
            raise ValueError(f"top and every must be positive, got top={top}, every={every}")
        self.matrices = dict(matrices)
        self.top = int(top)
        self.every = int(every)
        self.relative_to_init = relative_to_init
        self.initial: dict[str, torch.Tensor] = {}
        self.steps: np.ndarray = np.zeros(0, dtype=np.int64)
        self._steps: list[int] = []
        self._values: dict[str, list[np.ndarray]] = {k: [] for k in self.matrices}

    @property
    def values(self) -> dict[str, np.ndarray]:
        """name → (n, top) singular values, one row per recorded step."""
        return {k: np.array(v).reshape(len(v), -1) for k, v in self._values.items()}

    def _matrix(self, name: str, model: torch.nn.Module) -> torch.Tensor:
        with torch.no_grad():
            m = self.matrices[name](model).detach()
        if m.ndim != 2:
            raise ValueError(f"tracked matrix {name!r} must be 2-D, got shape {tuple(m.shape)}")
        return m

    def record(self, step: int, model: torch.nn.Module) -> dict[str, float]:
        """Record the singular values now (the callback calls this; usable by hand too)."""
        out: dict[str, float] = {}
        for name in self.matrices:
            m = self._matrix(name, model)
            if self.relative_to_init:
                if name not in self.initial:
                    self.initial[name] = m.clone()
                m = m - self.initial[name]
            s = singular_values(m, top=self.top)
            s = np.pad(s, (0, self.top - len(s)))
            self._values[name].append(s)
            out.update({f"{name}_sv{k + 1}": float(v) for k, v in enumerate(s)})
        self._steps.append(int(step))
        self.steps = np.asarray(self._steps)
        return out

    def on_train_begin(self, state: TrainState) -> None:
        if not self._steps:  # the reference W(0) is the model as training starts
            self.record(state.step, state.model)

    def on_step(self, state: TrainState) -> Mapping[str, float] | None:
        if state.step % self.every:
            return None
        return self.record(state.step, state.model)


@dataclass(frozen=True)
class SlingshotEvent:
    """One Slingshot: the loss spikes while the norm steps up.

    Attributes:
        step: where the loss peaks.
        loss_before, loss_peak: the loss half a window before the peak, and at the peak.
        norm_before, norm_after: the norm half a window before and after the peak.
    """

    step: int
    loss_before: float
    loss_peak: float
    norm_before: float
    norm_after: float

    @property
    def norm_jump(self) -> float:
        """Relative norm step across the event, norm_after / norm_before − 1."""
        return self.norm_after / self.norm_before - 1.0

    @property
    def loss_rise(self) -> float:
        """How many times the loss grew, loss_peak / loss_before."""
        return self.loss_peak / self.loss_before


def slingshot_events(steps: Sequence[int] | np.ndarray, loss: Sequence[float] | np.ndarray,
                     norm: Sequence[float] | np.ndarray, *, window: int = 300, norm_rise: float = 0.01,
                     loss_factor: float = 10.0) -> list[SlingshotEvent]:
    """Find Slingshot events: windows where the norm rises and the loss spikes.

    A window of ``window`` steps starting at a record ``i`` is a hit when, by its last record
    ``j``, the norm has grown by more than ``norm_rise`` (relative: 0.01 is 1%) and the largest
    loss in ``i..j`` exceeds ``loss_factor`` times the loss at ``i``. A hit's event sits at the
    loss peak inside the window; hits whose peaks lie within ``window`` steps of the previous
    event's are the same event.

    Args:
        steps: (n,) increasing steps of the records.
        loss, norm: (n,) the training loss and the tracked norm (e.g. the last layer's weight norm).

    Returns:
        The events in order of their steps.
    """
    steps = np.asarray(steps, dtype=np.int64)
    loss = np.asarray(loss, dtype=np.float64)
    norm = np.asarray(norm, dtype=np.float64)
    if not (len(steps) == len(loss) == len(norm)):
        raise ValueError(f"steps, loss and norm must have one entry per record, got {len(steps)}, "
                         f"{len(loss)}, {len(norm)}")
    if window < 1 or norm_rise < 0 or loss_factor < 1:
        raise ValueError("need window ≥ 1, norm_rise ≥ 0 and loss_factor ≥ 1")
    if np.any(np.diff(steps) <= 0):
        raise ValueError("steps must be strictly increasing")
    ends = np.searchsorted(steps, steps + window, side="right") - 1  # last record inside each window
    peaks: list[int] = []
    for i, j in enumerate(ends):
        if j <= i or steps[i] + window > steps[-1]:
            continue  # the window runs past the end of the run
        if norm[j] > (1 + norm_rise) * norm[i] and loss[i:j + 1].max() > loss_factor * loss[i]:
            k = i + int(np.argmax(loss[i:j + 1]))
            if peaks and steps[k] - steps[peaks[-1]] <= window:
                if loss[k] > loss[peaks[-1]]:  # the same event: keep its highest peak
                    peaks[-1] = k
                continue
            peaks.append(k)

    def at(step: float) -> int:
        return int(np.clip(np.searchsorted(steps, step), 0, len(steps) - 1))

    events = []
    for k in peaks:
        b, a = at(steps[k] - window / 2), at(steps[k] + window / 2)
        events.append(SlingshotEvent(step=int(steps[k]), loss_before=float(loss[b]), loss_peak=float(loss[k]),
                                     norm_before=float(norm[b]), norm_after=float(norm[a])))
    return events
