"""The book's Hessian toolkit: Hessian-vector products as a linear operator, and what to do with one.

::

    from hild import hessian, train

    H = hessian.HessianOperator(model, train.supervised(F.cross_entropy), (x, y))
    eigs = hessian.top_eigs(H, k=10)                  # block Lanczos, full re-orthogonalisation
    eigs.values, eigs.vectors, eigs.residuals, eigs.hvps
    hessian.trace(H, n_hvps=60)                       # Hutch++
    rho = hessian.spectral_density(H)                 # stochastic Lanczos quadrature
    hessian.Subspace(eigs).overlap(H.gradient())      # the gradient's share in the top eigenspace

Every tool takes any symmetric operator (a ``HessianOperator``, a dense tensor, a function with
``as_operator(fn, size=n)``, or an object with ``shape``/``dtype``/``device``/``matvec``/``matmat``),
so the same Lanczos runs on a kernel matrix. The traps (BatchNorm or dropout in train mode, TF32,
non-scalar losses, frozen parameters, nearly equal eigenvalues) are refused or warned about with a
message that says what to do.

============  ==========================================================================
operator      ``Operator`` protocol, ``HessianOperator``, ``as_operator``, ``dense_hessian``,
              ``flatten``/``unflatten``
eigs          ``top_eigs`` → ``Eigs`` (values, vectors, residuals, hvps, converged)
estimate      ``trace`` (Hutch++, Hutchinson), ``spectral_density`` (SLQ)
subspace      ``Subspace``: project, project out, overlap, principal angles
callback      ``SharpnessCallback`` for ``hild.train.train``; ``sharpness`` (λ₁ in one call)
============  ==========================================================================
"""

from .callback import SharpnessCallback, sharpness
from .eigs import Eigs, top_eigs
from .estimate import SpectralDensity, TraceEstimate, lanczos_quadrature, spectral_density, trace
from .operator import (
    DenseOperator,
    FunctionOperator,
    HessianOperator,
    Operator,
    SymmetricOperator,
    as_operator,
    dense,
    dense_hessian,
    flatten,
    unflatten,
)
from .subspace import Subspace

__all__ = [
    "DenseOperator",
    "Eigs",
    "FunctionOperator",
    "HessianOperator",
    "Operator",
    "SharpnessCallback",
    "SpectralDensity",
    "Subspace",
    "SymmetricOperator",
    "TraceEstimate",
    "as_operator",
    "dense",
    "dense_hessian",
    "flatten",
    "lanczos_quadrature",
    "sharpness",
    "spectral_density",
    "top_eigs",
    "trace",
    "unflatten",
]
