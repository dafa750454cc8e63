"""hild: the shared library of the executable book on the training dynamics of neural networks.

A chapter shows the idea and calls the machinery::

    import hild
    from hild import optim, data, plot, checks

    cfg = hild.by_scale(ci=Config(...), full=Config(...))
    hild.seed_everything()

Modules (imported on first use, so ``import hild`` stays light):

========  ==============================================================================
config    scale (``ci``/``full``), device, seed, step caps, progress bars
data      synthetic generators and small real data sets
models    the networks the chapters train
optim     the optimizers and samplers the papers study
hessian   Hessian-vector products, top eigenpairs, trace, spectral density
ntk       neural tangent kernels: empirical, analytic, linearised model, kernel dynamics
train     one small training loop with callbacks
plot      the book's figure style and recurring figure kinds
checks    exercise checks that print a verdict and raise on a wrong answer
classify  fit and evaluate a classifier on tensors (early stopping, augmentation, batched eval)
metrics   calibration (NLL, ECE) and ensemble diversity (disagreement, symmetric KL)
rank      singular values and ranks of weights and their changes; Slingshot events
results   machine-readable claim numbers, for seed sweeps and the results page
========  ==============================================================================
"""

from __future__ import annotations

import importlib
from typing import Any

from .config import by_scale, describe, device, is_full, scale, seed, seed_everything, steps
from .results import report
from .train import progress

__version__ = "0.1.0"

_SUBMODULES = frozenset(
    {"config", "data", "models", "optim", "hessian", "ntk", "train", "plot", "checks", "results", "book", "assign",
     "metrics", "rank", "classify", "fisher"}
)

__all__ = [
    "__version__",
    "by_scale",
    "describe",
    "device",
    "is_full",
    "progress",
    "report",
    "scale",
    "seed",
    "seed_everything",
    "steps",
    *sorted(_SUBMODULES),
]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'hild' has no attribute {name!r}")
