"""Symmetric linear operators: the protocol every Hessian tool accepts, and the loss Hessian.

Every tool in :mod:`hild.hessian` (eigensolver, trace, density) takes an *operator*, never a model:
anything with ``shape``, ``dtype``, ``device`` and ``matvec``/``matmat`` (:class:`Operator`), or
a dense symmetric tensor, wrapped by :func:`as_operator`. :class:`HessianOperator` is the one
for a network's loss; a kernel matrix or a quadratic's matrix works the same way.

Conventions: a vector has shape ``(n,)``, a block of vectors ``(n, b)`` (one vector per column,
as in SciPy), and an operator returns its products on its own device in its own dtype.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

__all__ = [
    "Operator",
    "SymmetricOperator",
    "DenseOperator",
    "FunctionOperator",
    "HessianOperator",
    "as_operator",
    "dense",
    "dense_hessian",
    "flatten",
    "unflatten",
]

LossFn = Callable[[nn.Module, Any], torch.Tensor]


@runtime_checkable
class Operator(Protocol):
    """What the Hessian tools need of a symmetric ``n x n`` operator ``A``.

    ``matvec(v)`` maps ``(n,) → (n,)`` and ``matmat(V)`` maps ``(n, b) → (n, b)``, both ``A @ ·``
    on ``device`` in ``dtype``. :class:`SymmetricOperator` implements one from the other.
    """

    shape: tuple[int, int]
    dtype: torch.dtype
    device: torch.device

    def matvec(self, v: torch.Tensor) -> torch.Tensor: ...

    def matmat(self, V: torch.Tensor) -> torch.Tensor: ...


class SymmetricOperator:
    """Base class: ``A @ v`` (vector), ``A @ V`` (block), SciPy export and a product counter.

    Subclasses set ``shape``, ``dtype``, ``device`` and implement ``_matmat(V)`` for a validated
    ``(n, b)`` block (or ``_matvec``; each falls back on the other).

    Attributes:
        products: the number of vectors multiplied so far (a block of ``b`` counts ``b``); for a
            :class:`HessianOperator` this is the number of Hessian-vector products (HVPs).
    """

    shape: tuple[int, int]
    dtype: torch.dtype
    device: torch.device

    def __init__(self) -> None:
        self.products = 0

    @property
    def size(self) -> int:
        """``n``, the number of rows (and columns)."""
        return self.shape[0]

    # Subclasses override at least one of these two.
    def _matmat(self, V: torch.Tensor) -> torch.Tensor:
        return torch.stack([self._matvec(V[:, i]) for i in range(V.shape[1])], dim=1)

    def _matvec(self, v: torch.Tensor) -> torch.Tensor:
        return self._matmat(v[:, None])[:, 0]

    def _check(self, x: torch.Tensor, ndim: int) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"expected a torch.Tensor, got {type(x).__name__}")
        if x.ndim != ndim or x.shape[0] != self.size:
            want = f"({self.size},)" if ndim == 1 else f"({self.size}, b)"
            raise ValueError(f"operator of size {self.size} got a tensor of shape {tuple(x.shape)}; expected {want}")
        if x.device != self.device:
            raise ValueError(f"tensor is on {x.device}, the operator on {self.device}: move it with .to(op.device)")
        if x.dtype != self.dtype:
            raise ValueError(f"tensor has dtype {x.dtype}, the operator {self.dtype}: cast it with .to(op.dtype)")
        return x

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """``A v`` for ``v`` of shape ``(n,)``."""
        out = self._matvec(self._check(v, 1))
        self.products += 1
        return out

    def matmat(self, V: torch.Tensor) -> torch.Tensor:
        """``A V`` for ``V`` of shape ``(n, b)``: one product per column, batched where possible."""
        V = self._check(V, 2)
        if V.shape[1] == 0:
            return V.clone()
        out = self._matmat(V)
        self.products += V.shape[1]
        return out

    def __matmul__(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(x, torch.Tensor) and x.ndim == 1:
            return self.matvec(x)
        if isinstance(x, torch.Tensor) and x.ndim == 2:
            return self.matmat(x)
        raise TypeError(f"A @ x needs a vector (n,) or a block (n, b) tensor, got {type(x).__name__}"
                        f"{tuple(x.shape) if isinstance(x, torch.Tensor) else ''}")

    def to_scipy(self) -> Any:
        """A ``scipy.sparse.linalg.LinearOperator`` (NumPy in, NumPy out, one host round trip per call).

        For SciPy's solvers (``eigsh``, ``cg``); this library's own solvers stay on the device.
        """
        from scipy.sparse.linalg import LinearOperator

        np_dtype = np.float64 if self.dtype == torch.float64 else np.float32

        def mv(x: np.ndarray) -> np.ndarray:
            t = torch.as_tensor(np.ascontiguousarray(x).reshape(-1), dtype=self.dtype, device=self.device)
            return self.matvec(t).detach().cpu().numpy().astype(np_dtype, copy=False)

        def mm(X: np.ndarray) -> np.ndarray:
            t = torch.as_tensor(np.ascontiguousarray(X), dtype=self.dtype, device=self.device)
            return self.matmat(t).detach().cpu().numpy().astype(np_dtype, copy=False)

        return LinearOperator(self.shape, matvec=mv, rmatvec=mv, matmat=mm, rmatmat=mm, dtype=np_dtype)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size}, dtype={self.dtype}, device={self.device})"


class DenseOperator(SymmetricOperator):
    """A dense symmetric matrix as an operator (tests, quadratics, small kernels)."""

    def __init__(self, A: torch.Tensor, *, check_symmetric: bool = True):
        super().__init__()
        if A.ndim != 2 or A.shape[0] != A.shape[1]:
            raise ValueError(f"a dense operator needs a square matrix, got shape {tuple(A.shape)}")
        if check_symmetric and A.numel():
            asym = float((A - A.T).abs().max()) / max(float(A.abs().max()), 1e-300)
            if asym > 1e-6:
                raise ValueError(f"matrix is not symmetric (max |A − Aᵀ| / max |A| = {asym:.2g}): "
                                 "the Hessian tools assume a symmetric operator; pass (A + A.T) / 2")
        self.A = A
        self.shape = (A.shape[0], A.shape[0])
        self.dtype = A.dtype
        self.device = A.device

    def _matmat(self, V: torch.Tensor) -> torch.Tensor:
        return self.A @ V


class FunctionOperator(SymmetricOperator):
    """An operator from a function: ``fn(v)`` for vectors, or ``fn(V)`` for blocks if ``block=True``.

    ``FunctionOperator(lambda v: K @ v, size=n)`` runs Lanczos on a kernel without forming it.
    """

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], *, size: int, dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None, block: bool = False):
        super().__init__()
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")
        self.fn = fn
        self.shape = (int(size), int(size))
        self.dtype = dtype or torch.get_default_dtype()
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.block = block

    def _matvec(self, v: torch.Tensor) -> torch.Tensor:
        if self.block:
            return self.fn(v[:, None])[:, 0]
        return self.fn(v)

    def _matmat(self, V: torch.Tensor) -> torch.Tensor:
        if self.block:
            return self.fn(V)
        return torch.stack([self.fn(V[:, i]) for i in range(V.shape[1])], dim=1)


class _Wrapped(SymmetricOperator):
    """Any object with shape/dtype/device and matvec and/or matmat, given the base class's methods."""

    def __init__(self, op: Any):
        super().__init__()
        self.op = op
        self.shape = tuple(int(s) for s in op.shape)  # type: ignore[assignment]
        self.dtype = op.dtype
        self.device = torch.device(op.device)

    def _matvec(self, v: torch.Tensor) -> torch.Tensor:
        if hasattr(self.op, "matvec"):
            return self.op.matvec(v)
        return self.op.matmat(v[:, None])[:, 0]

    def _matmat(self, V: torch.Tensor) -> torch.Tensor:
        if hasattr(self.op, "matmat"):
            return self.op.matmat(V)
        return torch.stack([self.op.matvec(V[:, i]) for i in range(V.shape[1])], dim=1)


def as_operator(A: Any, *, size: int | None = None, dtype: torch.dtype | None = None,
                device: torch.device | str | None = None, block: bool = False) -> SymmetricOperator:
    """Anything symmetric as a :class:`SymmetricOperator`.

    Args:
        A: a :class:`SymmetricOperator` (returned as is), an object with ``shape``, ``dtype``,
            ``device`` and ``matvec``/``matmat``, a dense symmetric tensor or NumPy array, or a
            function ``v ↦ A v`` (then ``size`` is required).
        size, dtype, device: for a function: its size, and the dtype and device of its vectors.
        block: for a function: it maps ``(n, b)`` blocks, not single vectors.

    Raises:
        TypeError: for anything else; ValueError for a non-square or non-symmetric matrix.
    """
    if isinstance(A, SymmetricOperator):
        return A
    if isinstance(A, np.ndarray):
        A = torch.as_tensor(A)
    if isinstance(A, torch.Tensor):
        return DenseOperator(A)
    if all(hasattr(A, a) for a in ("shape", "dtype", "device")) and (hasattr(A, "matvec") or hasattr(A, "matmat")):
        return _Wrapped(A)
    if callable(A):
        if size is None:
            raise ValueError("a function operator needs its size: as_operator(fn, size=n) "
                             "(and dtype=, device= if not float32 on the CPU)")
        return FunctionOperator(A, size=size, dtype=dtype, device=device, block=block)
    raise TypeError(f"cannot use a {type(A).__name__} as an operator: pass a tensor, a function with size=, "
                    "or an object with shape, dtype, device and matvec/matmat")


def dense(A: Any, *, chunk: int = 64, symmetrize: bool = True) -> torch.Tensor:
    """The dense ``n x n`` matrix of an operator, from products with the identity in blocks of ``chunk``.

    Costs ``n`` products; meant for operators with at most a few thousand rows.
    """
    op = as_operator(A)
    n = op.size
    out = torch.empty(n, n, dtype=op.dtype, device=op.device)
    for j in range(0, n, chunk):
        m = min(chunk, n - j)
        E = torch.zeros(n, m, dtype=op.dtype, device=op.device)
        E[j + torch.arange(m), torch.arange(m)] = 1
        out[:, j : j + m] = op.matmat(E)
    return (out + out.T) / 2 if symmetrize else out


# --------------------------------------------------------------------------------------------
# Flat vectors and parameter lists
# --------------------------------------------------------------------------------------------


def flatten(tensors: Iterable[torch.Tensor]) -> torch.Tensor:
    """Concatenate tensors (parameters, gradients) into one flat vector, in order."""
    return torch.cat([t.reshape(-1) for t in tensors])


def unflatten(vector: torch.Tensor, like: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Split a flat vector (or a ``(n, b)`` block) into views shaped like ``like``.

    A block gives tensors of shape ``(*p.shape, b)``.
    """
    n = sum(p.numel() for p in like)
    if vector.shape[0] != n:
        raise ValueError(f"vector has {vector.shape[0]} entries, the parameters {n}")
    out, i = [], 0
    extra = tuple(vector.shape[1:])
    for p in like:
        out.append(vector[i : i + p.numel()].reshape(*p.shape, *extra))
        i += p.numel()
    return out


# --------------------------------------------------------------------------------------------
# The loss Hessian
# --------------------------------------------------------------------------------------------


def _where(name: str, m: nn.Module) -> str:
    return f"{type(m).__name__} at {name!r}" if name else type(m).__name__


def _bn_modules(model: nn.Module) -> list[str]:
    return [_where(name, m) for name, m in model.named_modules()
            if isinstance(m, nn.modules.batchnorm._NormBase)
            and not isinstance(m, nn.modules.instancenorm._InstanceNorm)]


def _dropout_modules(model: nn.Module) -> list[str]:
    found = []
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0:
            found.append(f"{_where(name, m)}, p={m.p:g}")
        elif isinstance(m, nn.MultiheadAttention) and m.dropout > 0:
            found.append(f"{_where(name, m)}, attention dropout {m.dropout:g}")
    return found


def _is_batch(data: Any) -> bool:
    """One batch (a tensor, or a tuple/list/dict of tensors) rather than an iterable of batches."""
    if isinstance(data, torch.Tensor):
        return True
    if isinstance(data, Mapping):
        return True
    if isinstance(data, (tuple, list)):
        return len(data) > 0 and all(isinstance(t, (torch.Tensor, int, float, str)) for t in data)
    return False


def _batch_len(batch: Any) -> int:
    if isinstance(batch, torch.Tensor):
        return batch.shape[0] if batch.ndim else 1
    items = batch.values() if isinstance(batch, Mapping) else batch
    for t in items:
        if isinstance(t, torch.Tensor) and t.ndim:
            return t.shape[0]
    raise ValueError("cannot tell the batch size (no tensor with a batch dimension): pass reduction='sum'")


def _move(batch: Any, device: torch.device, dtype: torch.dtype | None) -> Any:
    """Tensors of a batch onto ``device``; floating ones cast to ``dtype`` (if given)."""
    if isinstance(batch, torch.Tensor):
        if dtype is not None and batch.is_floating_point():
            return batch.to(device=device, dtype=dtype)
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {k: _move(v, device, dtype) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(_move(v, device, dtype) for v in batch)
    return batch


@contextlib.contextmanager
def _highest_precision() -> Iterator[None]:
    """Full float32 precision inside (no TF32 matmuls or convolutions), the previous setting after.

    TF32 rounds inputs to 10 mantissa bits: Hessian-vector products lose about three digits, and
    Lanczos, which needs products accurate to the tolerance, stalls or converges to wrong values.
    """
    prev = torch.get_float32_matmul_precision()
    if prev != "highest":
        torch.set_float32_matmul_precision("highest")
    conv = getattr(torch.backends.cudnn, "conv", None)
    new_api = conv is not None and hasattr(conv, "fp32_precision")
    prev_conv = conv.fp32_precision if new_api else torch.backends.cudnn.allow_tf32
    changed_conv = prev_conv in ("tf32", True)
    if changed_conv:
        if new_api:
            conv.fp32_precision = "ieee"
        else:
            torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        if prev != "highest":
            torch.set_float32_matmul_precision(prev)
        if changed_conv:
            if new_api:
                conv.fp32_precision = prev_conv
            else:
                torch.backends.cudnn.allow_tf32 = prev_conv


class _LossModule(nn.Module):
    """``loss_fn(model, batch)`` as a module, so ``torch.func.functional_call`` can swap the parameters."""

    def __init__(self, model: nn.Module, loss_fn: LossFn):
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, batch: Any) -> torch.Tensor:
        return self.loss_fn(self.model, batch)


class HessianOperator(SymmetricOperator):
    """The Hessian of a model's loss as a linear operator: ``H @ v``, ``H @ V``, never the matrix.

    ``H = ∇²_θ L(θ)`` at the parameters ``θ`` the model has when the operator is built (a
    snapshot: build a new operator after a training step). ``L`` is ``loss_fn(model, batch)`` on
    one batch, or over a loader the average of the batch losses weighted by batch size, which
    equals the loss of the concatenated data when ``loss_fn`` averages over its batch::

        H = hessian.HessianOperator(model, train.supervised(F.cross_entropy), (x, y))
        Hv = H @ v                     # v: (n,), n = H.size = number of parameters
        eigs = hessian.top_eigs(H, k=10)

    Products are double backward (reverse-over-reverse) by default: about 1.5-2.5x a gradient with
    the gradient's graph kept, against 6-9x for ``torch.func`` forward-over-reverse
    (``hvp="forward"``) on a CPU (``bench/hessian.py``).

    Args:
        model: the network; its parameters define ``θ``.
        loss_fn: ``loss_fn(model, batch)`` → scalar (``hild.train.supervised(F.cross_entropy)``).
        data: one batch (a tensor, or a tuple/list/dict of tensors), or an iterable of batches
            that can be iterated again (a list of batches, a ``DataLoader``; not a generator).
        mode: ``"eval"`` runs the model in eval mode inside every product (BatchNorm uses its
            running statistics, dropout is off) and restores the model's mode after;
            ``"train"`` uses train mode (BatchNorm uses batch statistics; products see copies of
            the running statistics, so the model's own are left untouched). ``None`` (default) keeps the model's mode, and
            refuses a model in train mode with BatchNorm or active dropout, where the two differ.
        dtype: compute in this dtype (e.g. ``torch.float64`` for exact checks of a float32
            model); floating tensors of the data are cast to it. Default: the parameters' dtype.
        params: the parameters to differentiate (default: all that require grad).
        reduction: ``"mean"``: batches weighted by size, as above; ``"sum"``: batch losses added.
        hvp: ``"reverse"`` (double backward) or ``"forward"`` (forward-over-reverse).
        vectorize: multiply a block with one vmapped backward (``True``) or one backward per
            column reusing the gradient's graph (``False``); default: True on CUDA or with
            ``hvp="forward"``, False for double backward on a CPU (where vmap measured no faster).
        cache: keep the gradient's graph between products (one batch, double backward only; the
            default there). Each product is then one backward pass through it instead of a
            forward and two backward passes, for the memory of one ``create_graph`` gradient held
            while the operator lives. Off for loaders, where each batch's graph is rebuilt.

    Raises:
        ValueError: train mode with BatchNorm or dropout (see ``mode``), no parameter that
            requires grad, a non-scalar loss (at the first product).
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        data: Any,
        *,
        mode: Literal["eval", "train"] | None = None,
        dtype: torch.dtype | None = None,
        params: Sequence[torch.Tensor] | None = None,
        reduction: Literal["mean", "sum"] = "mean",
        hvp: Literal["reverse", "forward"] = "reverse",
        vectorize: bool | None = None,
        cache: bool | None = None,
    ):
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        if not callable(loss_fn):
            raise TypeError("loss_fn must be a function loss_fn(model, batch) -> scalar, e.g. "
                            "hild.train.supervised(F.cross_entropy)")
        if mode not in (None, "eval", "train"):
            raise ValueError(f"mode must be 'eval', 'train' or None, got {mode!r}")
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        if hvp not in ("reverse", "forward"):
            raise ValueError(f"hvp must be 'reverse' (double backward) or 'forward' "
                             f"(forward-over-reverse), got {hvp!r}")
        self.model, self.loss_fn, self.reduction, self.hvp = model, loss_fn, reduction, hvp
        self.mode = self._choose_mode(model, mode)

        named = dict(model.named_parameters())
        if params is None:
            frozen = [n for n, p in named.items() if not p.requires_grad]
            chosen = [(n, p) for n, p in named.items() if p.requires_grad]
            if frozen and chosen:
                warnings.warn(
                    f"{len(frozen)} parameter tensor(s) do not require grad and are left out of the Hessian "
                    f"({', '.join(frozen[:4])}{', ...' if len(frozen) > 4 else ''}); pass params=[...] to choose "
                    "the parameters explicitly", UserWarning, stacklevel=2)
        else:
            ids = {id(p): n for n, p in named.items()}
            missing = [i for i, p in enumerate(params) if id(p) not in ids]
            if missing:
                raise ValueError(f"params[{missing[0]}] is not a parameter of the model")
            chosen = [(ids[id(p)], p) for p in params]
        if not chosen:
            raise ValueError("no parameter requires grad, so the Hessian is empty: call "
                             "p.requires_grad_(True) on the parameters you want, or pass params=[...]")
        self.names = [n for n, _ in chosen]
        self.params = [p for _, p in chosen]
        base_dtype = self.params[0].dtype
        self.dtype = dtype or base_dtype
        self.device = self.params[0].device
        self._cast = self.dtype != base_dtype
        n = sum(p.numel() for p in self.params)
        self.shape = (n, n)
        if vectorize is None:  # measured: vmap pays on GPUs, and always for torch.func's transforms
            vectorize = self.device.type == "cuda" or hvp == "forward"
        self.vectorize = bool(vectorize)
        # θ: a snapshot of the parameters (in the operator's dtype), the point the Hessian is taken at
        self._theta = [p.detach().to(self.dtype).clone() for p in self.params]
        chosen_ids = {id(p) for p in self.params}
        # with a cast, every other tensor of the model must be cast too, or the forward pass mixes dtypes
        self._fixed: dict[str, torch.Tensor] = {}
        if self._cast:
            for name, p in named.items():
                if id(p) not in chosen_ids:
                    self._fixed["model." + name] = p.detach().to(self.dtype) if p.is_floating_point() else p.detach()
            for name, b in model.named_buffers():
                cast = b.detach().to(self.dtype) if b.is_floating_point() else b.detach().clone()
                self._fixed["model." + name] = cast
        self._wrapper = _LossModule(model, loss_fn)
        self._data = data
        single = _is_batch(data)
        self.cache = (single and hvp == "reverse") if cache is None else bool(cache and single and hvp == "reverse")
        self._graph: tuple[list[torch.Tensor], torch.Tensor] | None = None
        if not single:
            if not isinstance(data, Iterable):
                raise TypeError(f"data must be a batch or an iterable of batches, got {type(data).__name__}")
            if iter(data) is data:
                raise TypeError("data is an iterator (it can be read only once); "
                                "pass a list of batches or a DataLoader")

    @staticmethod
    def _choose_mode(model: nn.Module, mode: str | None) -> str:
        bn, drop = _bn_modules(model), _dropout_modules(model)
        if mode is None:
            if model.training and bn:
                raise ValueError(
                    f"model is in train mode with BatchNorm ({', '.join(bn[:3])}): its Hessian differs "
                    "between train mode (batch statistics) and eval mode (running statistics), the top "
                    "eigenvalue by about 2x at initialisation. Call model.eval() or pass mode='eval' for the "
                    "Hessian with running statistics, or pass mode='train' for the Hessian of the training "
                    "loss (batch statistics; the running statistics are left untouched)")
            if model.training and drop:
                raise ValueError(
                    f"model is in train mode with active dropout ({', '.join(drop[:3])}): every Hessian-vector "
                    "product would draw new dropout masks, so the operator is not one symmetric matrix. Call "
                    "model.eval() or pass mode='eval' (dropout off)")
            return "train" if model.training else "eval"
        if mode == "train" and drop:
            raise ValueError(
                f"mode='train' with active dropout ({', '.join(drop[:3])}): every Hessian-vector product would "
                "draw new dropout masks, so the operator is not one symmetric matrix. Pass mode='eval' (dropout "
                "off) or set the dropout probabilities to 0")
        return mode

    # ---------------------------------------------------------------- batches and the context
    def _batches(self) -> Iterator[tuple[Any, float]]:
        """(batch on the device, its weight n_b) pairs; the weights are normalised by the caller."""
        source = [self._data] if _is_batch(self._data) else self._data
        cast = self.dtype if self._cast else None
        for batch in source:
            weight = float(_batch_len(batch)) if self.reduction == "mean" else 1.0
            yield _move(batch, self.device, cast), weight

    @contextlib.contextmanager
    def _context(self) -> Iterator[None]:
        model = self.model
        was_training = model.training
        model.train(self.mode == "train")
        try:
            with _highest_precision():
                yield
        finally:
            model.train(was_training)

    def _loss(self, theta: Sequence[torch.Tensor], batch: Any) -> torch.Tensor:
        tensors = dict(self._fixed)
        if self.mode == "train" and not self._cast:
            # BatchNorm in train mode updates its running statistics in place: give it copies, so
            # the model's own are left untouched (and the cached graph never sees them change)
            tensors.update(("model." + n, b.detach().clone()) for n, b in self.model.named_buffers())
        tensors.update(("model." + n, t) for n, t in zip(self.names, theta))
        loss = torch.func.functional_call(self._wrapper, tensors, (batch,), strict=False)
        if not isinstance(loss, torch.Tensor):
            raise TypeError(f"loss_fn must return a tensor, got {type(loss).__name__}")
        if loss.ndim != 0:
            raise ValueError(
                f"loss_fn returned shape {tuple(loss.shape)}, not a scalar: the Hessian is of one number. "
                "Reduce it (e.g. F.cross_entropy(..., reduction='mean') or loss.mean()); with reduction='none' "
                "the per-example losses would need one Hessian each")
        return loss

    def _leaves(self) -> list[torch.Tensor]:
        return [t.detach().requires_grad_(True) for t in self._theta]

    # ---------------------------------------------------------------- products
    def _gradient_graph(self, batch: Any) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The flat gradient with its graph (``create_graph``), kept between products on one batch."""
        if self._graph is not None:
            return self._graph
        leaves = self._leaves()
        loss = self._loss(leaves, batch)
        g = flatten(torch.autograd.grad(loss, leaves, create_graph=True, materialize_grads=True))
        if self.cache:
            self._graph = (leaves, g)
        return leaves, g

    def _block_reverse(self, batch: Any, V: torch.Tensor) -> torch.Tensor:
        leaves, g = self._gradient_graph(batch)
        out = torch.zeros_like(V)
        if not g.requires_grad:  # the loss is linear in θ: its Hessian is zero
            return out
        b = V.shape[1]
        keep = self.cache
        if self.vectorize and b > 1:
            hs = torch.autograd.grad(g, leaves, V.T, is_grads_batched=True, retain_graph=keep,
                                     materialize_grads=True)
            return torch.cat([h.reshape(b, -1) for h in hs], dim=1).T
        for i in range(b):  # one backward per column through the same gradient graph
            # grad of the scalar gᵀv rather than grad_outputs=v: the same product, without the
            # 1.7 s import that autograd's grad_outputs check triggers on first use (torch 2.13)
            hs = torch.autograd.grad(g @ V[:, i], leaves, retain_graph=keep or i < b - 1,
                                     materialize_grads=True)
            out[:, i] = flatten(hs)
        return out

    def _block_forward(self, batch: Any, V: torch.Tensor) -> torch.Tensor:
        theta = tuple(t.detach() for t in self._theta)
        grad_fn = torch.func.grad(lambda th: self._loss(th, batch))

        def hvp(v: torch.Tensor) -> torch.Tensor:
            tangents = tuple(unflatten(v, theta))
            return flatten(torch.func.jvp(grad_fn, (theta,), (tangents,))[1])

        if self.vectorize and V.shape[1] > 1:
            return torch.func.vmap(hvp)(V.T).T
        return torch.stack([hvp(V[:, i]) for i in range(V.shape[1])], dim=1)

    def _matmat(self, V: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(V)
        total = 0.0
        block = self._block_reverse if self.hvp == "reverse" else self._block_forward
        with self._context():
            for batch, w in self._batches():
                out += w * block(batch, V)
                total += w
        if total == 0:
            raise ValueError("data has no batches")
        return out / total if self.reduction == "mean" else out

    # ---------------------------------------------------------------- loss, gradient, helpers
    def loss(self) -> float:
        """The loss at ``θ``, averaged over the data as the Hessian is."""
        total, acc = 0.0, 0.0
        with self._context(), torch.no_grad():
            for batch, w in self._batches():
                acc += w * float(self._loss(self._theta, batch))
                total += w
        return acc / total if self.reduction == "mean" else acc

    def gradient(self) -> torch.Tensor:
        """The flat gradient ``∇L(θ)`` (shape ``(n,)``), averaged over the data as the Hessian is."""
        out = torch.zeros(self.size, dtype=self.dtype, device=self.device)
        total = 0.0
        with self._context():
            for batch, w in self._batches():
                leaves = self._leaves()
                out += w * flatten(torch.autograd.grad(self._loss(leaves, batch), leaves, materialize_grads=True))
                total += w
        return out / total if self.reduction == "mean" else out

    def to_params(self, vector: torch.Tensor) -> list[torch.Tensor]:
        """A flat vector as tensors shaped like the parameters (views)."""
        return unflatten(vector, self.params)

    def from_params(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        """Parameter-shaped tensors (e.g. ``[p.grad for p in H.params]``) as one flat vector."""
        if len(tensors) != len(self.params):
            raise ValueError(f"expected {len(self.params)} tensors, got {len(tensors)}")
        return flatten(tensors).to(device=self.device, dtype=self.dtype)

    def __repr__(self) -> str:
        return (f"HessianOperator(size={self.size}, params={len(self.params)} tensors, mode={self.mode!r}, "
                f"dtype={self.dtype}, device={self.device}, hvp={self.hvp!r})")


def dense_hessian(model_or_op: Any, loss_fn: LossFn | None = None, data: Any = None, *, chunk: int = 64,
                  **operator_kwargs: Any) -> torch.Tensor:
    """The dense Hessian ``(n, n)`` from batched Hessian-vector products, for models up to a few
    thousand parameters (``torch.autograd.functional.hessian`` is 10-100x slower).

    ``dense_hessian(model, loss_fn, data, dtype=torch.float64)`` or ``dense_hessian(H)``.
    """
    if isinstance(model_or_op, nn.Module):
        if loss_fn is None or data is None:
            raise ValueError("dense_hessian(model, loss_fn, data, ...) needs the loss and the data")
        op = HessianOperator(model_or_op, loss_fn, data, **operator_kwargs)
    else:
        op = as_operator(model_or_op)
    return dense(op, chunk=chunk)
