"""Small real data sets: sklearn's bundled digits at ci scale; MNIST/CIFAR only at full scale.

``digits`` never touches the network (the 1,797 8x8 images ship inside scikit-learn). The
downloads in :func:`torchvision_dataset` happen at full scale only; offline they fail with a
message that says so, and under ``HILD_MAX_STEPS`` (the smoke test of the full-scale path) they
return a synthetic stand-in of the same shape instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import config

__all__ = ["Split", "digits", "torchvision_dataset"]


@dataclass(frozen=True)
class Split:
    """Features and integer labels of a train/test split (torch tensors on one device).

    Attributes:
        x_train: (n_train, d) float features.   y_train: (n_train,) int64 labels.
        x_test:  (n_test, d) float features.    y_test:  (n_test,) int64 labels.
        n_classes: number of classes.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int

    def to(self, device: torch.device | str) -> "Split":
        return Split(*(t.to(device) for t in (self.x_train, self.y_train, self.x_test, self.y_test)), self.n_classes)

    def one_hot(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Train and test labels as one-hot float targets (for the squared loss)."""
        eye = torch.eye(self.n_classes, dtype=self.x_train.dtype, device=self.x_train.device)
        return eye[self.y_train], eye[self.y_test]


def digits(
    n_train: int | None = None,
    *,
    n_test: int | None = None,
    seed: int | None = None,
    standardize: bool = True,
    shuffle: bool = True,
    classes: tuple[int, ...] | None = None,
    dtype: torch.dtype = torch.float32,
) -> Split:
    """sklearn's 8x8 handwritten digits (1,797 images, 64 features, 10 classes), no download.

    Args:
        n_train: training examples (default: all but ``n_test``).
        n_test: test examples (default: all that are left after ``n_train``; 397 if both are None).
        seed: the shuffle's seed (default: the run's seed). ``shuffle=False`` keeps sklearn's order,
            so ``digits(500, shuffle=False)`` is "the first 500 digits".
        standardize: zero mean, unit variance per pixel, with statistics from the training part
            (constant pixels are left at 0).
        classes: keep only these labels (relabelled 0..k-1 in the given order).
        dtype: floating dtype of the features.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = bunch.data.astype(np.float64)
    y = bunch.target.astype(np.int64)
    if classes is not None:
        keep = np.isin(y, classes)
        x, y = x[keep], y[keep]
        remap = {c: i for i, c in enumerate(classes)}
        y = np.array([remap[v] for v in y], dtype=np.int64)
    n = len(y)
    if shuffle:
        perm = np.random.default_rng(config.SEED if seed is None else seed).permutation(n)
        x, y = x[perm], y[perm]
    if n_train is None and n_test is None:
        n_test = min(397, n // 4)
    if n_train is None:
        n_train = n - n_test  # type: ignore[operator]
    if n_test is None:
        n_test = n - n_train
    if n_train <= 0 or n_test < 0 or n_train + n_test > n:
        raise ValueError(f"digits has {n} examples: cannot take n_train={n_train} and n_test={n_test}")
    xtr, ytr = x[:n_train], y[:n_train]
    xte, yte = x[n_train : n_train + n_test], y[n_train : n_train + n_test]
    if standardize:
        mean, std = xtr.mean(0), xtr.std(0)
        std[std == 0] = 1.0
        xtr, xte = (xtr - mean) / std, (xte - mean) / std
    as_t = lambda a, dt: torch.as_tensor(a, dtype=dt)  # noqa: E731
    return Split(as_t(xtr, dtype), as_t(ytr, torch.int64), as_t(xte, dtype), as_t(yte, torch.int64),
                 int(len(classes) if classes is not None else 10))


def torchvision_dataset(name: str, *, train: bool, root: str = "~/.cache/hild", transform=None):
    """MNIST / CIFAR-10 / CIFAR-100 via torchvision, for full-scale runs only.

    Under ``HILD_MAX_STEPS`` (smoke tests) it returns a small random stand-in of the same shapes,
    so the full-scale code path runs on a CPU without a download.
    """
    shapes = {"MNIST": ((1, 28, 28), 10), "CIFAR10": ((3, 32, 32), 10), "CIFAR100": ((3, 32, 32), 100)}
    if name not in shapes:
        raise ValueError(f"unknown data set {name!r}: use one of {sorted(shapes)}")
    if config.SMOKE:
        shape, k = shapes[name]
        g = torch.Generator().manual_seed(0)
        x = torch.rand((256, *shape), generator=g)
        y = torch.randint(0, k, (256,), generator=g)
        return torch.utils.data.TensorDataset(x, y)
    if config.SCALE != "full":
        raise RuntimeError(f"{name} is downloaded at full scale only (HILD_SCALE=full); ci runs use digits")
    try:
        import torchvision  # imported lazily: it is not needed (and not installed) at ci scale
    except ImportError as exc:
        raise RuntimeError("full-scale runs on real images need torchvision: pip install torchvision") from exc
    import os

    cls = getattr(torchvision.datasets, name)
    try:
        return cls(os.path.expanduser(root), train=train, download=True,
                   transform=transform or torchvision.transforms.ToTensor())
    except Exception as exc:  # no network: say so instead of a urllib traceback
        raise RuntimeError(
            f"could not download {name} to {root}: {exc}. Full-scale runs need the network once; "
            f"copy the data set there by hand on an offline machine."
        ) from exc
