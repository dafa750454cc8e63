"""hild.hessian against exact answers.

References: dense float64 Hessians from explicit double loops of autograd (one backward pass per
row, independent of the operator's code), closed forms (least squares: H = (2/N) XᵀX; a quadratic
½ θᵀAθ: H = A), and matrices with a chosen spectrum (A = U diag(λ) Uᵀ).
"""

from __future__ import annotations

import copy
import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hild import hessian, train
from hild.models import MLP

f64 = torch.float64
CE = train.supervised(F.cross_entropy)


# ----------------------------------------------------------------------------- references
def double_loop_hessian(model: nn.Module, loss_fn, batch) -> torch.Tensor:
    """The exact Hessian, row by row: H[i, :] = ∇_θ (∂L/∂θ_i), one backward pass per row."""
    params = [p for p in model.parameters() if p.requires_grad]
    loss = loss_fn(model, batch)
    g = torch.cat([t.reshape(-1) for t in torch.autograd.grad(loss, params, create_graph=True)])
    rows = []
    for i in range(g.numel()):
        r = torch.autograd.grad(g[i], params, retain_graph=True, allow_unused=True)
        rows.append(torch.cat([(t if t is not None else torch.zeros_like(p)).reshape(-1) for t, p in zip(r, params)]))
    return torch.stack(rows)


def small_mlp(seed=0, sizes=(6, 5, 3)):
    torch.manual_seed(seed)
    model = MLP(list(sizes), activation="tanh", dtype=f64)
    g = torch.Generator().manual_seed(seed + 100)
    x = torch.randn(40, sizes[0], generator=g, dtype=f64)
    y = torch.randint(0, sizes[-1], (40,), generator=g)
    return model, (x, y)


class TinyCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, dtype=f64)
        self.fc = nn.Linear(2 * 4 * 4, 3, dtype=f64)

    def forward(self, x):
        return self.fc(torch.tanh(self.conv(x)).flatten(1))


def tiny_cnn(seed=0):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed + 7)
    return TinyCNN(), (torch.randn(16, 1, 6, 6, generator=g, dtype=f64), torch.randint(0, 3, (16,), generator=g))


def spectrum_matrix(values, seed=0) -> torch.Tensor:
    n = len(values)
    U, _ = torch.linalg.qr(torch.randn(n, n, generator=torch.Generator().manual_seed(seed), dtype=f64))
    return U @ torch.diag(torch.as_tensor(values, dtype=f64)) @ U.T


class Quadratic(nn.Module):
    """Loss ½ θᵀ A θ of one parameter vector: its Hessian is exactly A."""

    def __init__(self, A):
        super().__init__()
        self.A = A
        self.theta = nn.Parameter(torch.randn(A.shape[0], dtype=A.dtype, generator=torch.Generator().manual_seed(3)))

    def forward(self, batch=None):
        return 0.5 * self.theta @ self.A @ self.theta


def quad_loss(model, batch):
    return model(batch)


# ----------------------------------------------------------------------------- the operator
@pytest.mark.parametrize("build", [small_mlp, tiny_cnn], ids=["mlp", "cnn"])
def test_dense_hessian_equals_double_loop(build):
    model, batch = build()
    ref = double_loop_hessian(model, CE, batch)
    for kw in ({}, {"vectorize": True}, {"hvp": "forward"}, {"hvp": "forward", "vectorize": True}):
        H = hessian.dense_hessian(model, CE, batch, chunk=16, **kw)
        torch.testing.assert_close(H, ref, rtol=0, atol=1e-12)


def test_least_squares_hessian_closed_form():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(30, 4, generator=g, dtype=f64), torch.randn(30, 1, generator=g, dtype=f64)
    model = nn.Linear(4, 1, dtype=f64)
    H = hessian.dense_hessian(model, train.supervised(F.mse_loss), (x, y))
    xa = torch.cat([x, torch.ones(30, 1, dtype=f64)], 1)  # parameters in order: weight (1x4), bias
    torch.testing.assert_close(H, 2 / 30 * xa.T @ xa, rtol=0, atol=1e-13)


def test_loader_is_averaged_like_the_loss_and_other_options_agree():
    model, (x, y) = small_mlp()
    full = hessian.HessianOperator(model, CE, (x, y))
    sizes = [7, 13, 20]  # unequal batches: weighted by size, as the full-batch mean is
    idx = np.cumsum([0] + sizes)
    loader = [(x[a:b], y[a:b]) for a, b in zip(idx[:-1], idx[1:])]
    H = hessian.HessianOperator(model, CE, loader)
    V = torch.randn(full.size, 3, dtype=f64)
    torch.testing.assert_close(H @ V, full @ V, rtol=0, atol=1e-13)
    uncached = hessian.HessianOperator(model, CE, (x, y), cache=False)
    assert full.cache and not uncached.cache and not H.cache  # the graph is kept for one batch only
    torch.testing.assert_close(uncached @ V, full @ V, rtol=0, atol=1e-14)
    assert H.loss() == pytest.approx(float(CE(model, (x, y)).detach()), rel=1e-13)
    summed = hessian.HessianOperator(model, train.supervised(lambda o, t: F.cross_entropy(o, t, reduction="sum")),
                                     loader, reduction="sum")
    torch.testing.assert_close(summed @ V, 40 * (full @ V), rtol=1e-12, atol=1e-11)
    # the gradient, and no side effect on .grad
    g = torch.autograd.grad(CE(model, (x, y)), list(model.parameters()))
    torch.testing.assert_close(H.gradient(), hessian.flatten(g), rtol=0, atol=1e-14)
    assert all(p.grad is None for p in model.parameters())
    assert H.products == 3


def test_float64_operator_of_a_float32_model():
    model, (x, y) = small_mlp()
    m32 = MLP([6, 5, 3], activation="tanh")
    m32.load_state_dict({k: v.float() for k, v in model.state_dict().items()})
    x32 = x.float()
    m64 = MLP([6, 5, 3], activation="tanh", dtype=f64)
    m64.load_state_dict({k: v.double() for k, v in m32.state_dict().items()})  # the same rounded weights
    H = hessian.HessianOperator(m32, CE, (x32, y), dtype=f64)
    assert H.dtype == f64
    torch.testing.assert_close(hessian.dense(H), double_loop_hessian(m64, CE, (x32.double(), y)), rtol=0, atol=1e-12)


def test_flatten_unflatten_and_operator_checks():
    model, batch = small_mlp()
    H = hessian.HessianOperator(model, CE, batch)
    v = torch.randn(H.size, dtype=f64)
    parts = H.to_params(v)
    assert [p.shape for p in parts] == [p.shape for p in model.parameters()]
    torch.testing.assert_close(H.from_params(parts), v)
    blk = hessian.unflatten(torch.randn(H.size, 2, dtype=f64), H.params)
    assert blk[0].shape == (*H.params[0].shape, 2)
    with pytest.raises(ValueError, match="shape"):
        H @ torch.randn(H.size + 1, dtype=f64)
    with pytest.raises(ValueError, match="dtype"):
        H @ torch.randn(H.size)
    with pytest.raises(TypeError, match="iterator"):
        hessian.HessianOperator(model, CE, iter([batch]))


def test_any_symmetric_operator_and_scipy_export():
    A = spectrum_matrix(np.linspace(1, 10, 30))
    ops = [
        A,
        A.numpy(),
        hessian.as_operator(lambda v: A @ v, size=30, dtype=f64),
        hessian.as_operator(lambda V: A @ V, size=30, dtype=f64, block=True),
    ]

    class MatvecOnly:
        shape, dtype, device = (30, 30), f64, torch.device("cpu")

        def matvec(self, v):
            return A @ v

    ops.append(MatvecOnly())
    V = torch.randn(30, 4, dtype=f64)
    for op in ops:
        o = hessian.as_operator(op)
        torch.testing.assert_close(o @ V, A @ V)
        torch.testing.assert_close(o @ V[:, 0], A @ V[:, 0])
        assert isinstance(o, hessian.Operator)
    with pytest.raises(ValueError, match="size"):
        hessian.as_operator(lambda v: v)
    with pytest.raises(ValueError, match="not symmetric"):
        hessian.as_operator(torch.triu(A))
    from scipy.sparse.linalg import eigsh

    vals = eigsh(hessian.as_operator(A).to_scipy(), k=3, which="LA", return_eigenvectors=False)
    np.testing.assert_allclose(np.sort(vals), np.linspace(1, 10, 30)[-3:], rtol=1e-10)


# ----------------------------------------------------------------------------- eigenpairs
def _check_eigs(res, evals, evecs, order, rtol=1e-8, max_sin=1e-6):
    k = res.k
    want = evals[order[:k]]
    torch.testing.assert_close(res.values, want, rtol=rtol, atol=0)
    # each eigenvector, by the angle between spans (sign-free)
    for i in range(k):
        sin = hessian.Subspace(res.vectors[:, i]).angles(evecs[:, order[i]]).max()
        assert float(sin) < max_sin, f"eigenvector {i}: angle {float(sin):.2e}"
    assert res.converged and res.hvps > 0


def test_top_eigs_on_an_mlp_hessian_float64():
    model, batch = small_mlp(sizes=(12, 16, 8, 4))  # 380 parameters: Lanczos does not exhaust the space
    ref = double_loop_hessian(model, CE, batch)
    evals, evecs = torch.linalg.eigh(ref)
    H = hessian.HessianOperator(model, CE, batch)
    n = H.size
    res = hessian.top_eigs(H, 10, seed=1)
    _check_eigs(res, evals, evecs, torch.argsort(evals, descending=True))
    assert res.hvps < n / 2
    res = hessian.top_eigs(H, 3, which="SA")
    _check_eigs(res, evals, evecs, torch.argsort(evals))
    res = hessian.top_eigs(H, 4, which="LM", block_size=2)
    _check_eigs(res, evals, evecs, torch.argsort(evals.abs(), descending=True))
    true_res = torch.linalg.vector_norm(ref @ res.vectors - res.vectors * res.values, dim=0)
    torch.testing.assert_close(res.residuals, true_res, rtol=1e-3, atol=1e-14)


def test_top_eigs_on_a_cnn_hessian_float64():
    model, batch = tiny_cnn()
    ref = double_loop_hessian(model, CE, batch)
    evals, evecs = torch.linalg.eigh(ref)
    res = hessian.top_eigs(hessian.HessianOperator(model, CE, batch), 5)
    _check_eigs(res, evals, evecs, torch.argsort(evals, descending=True))


def test_quadratic_with_known_clustered_and_repeated_spectrum():
    # a triple eigenvalue on top, a tight cluster below it, then a bulk
    top = [10.0, 10.0, 10.0, 9.0, 8.999, 8.998]
    lam = torch.tensor(top + list(np.linspace(-1, 5, 194)), dtype=f64)
    A = spectrum_matrix(lam, seed=2)
    H = hessian.HessianOperator(Quadratic(A), quad_loss, torch.zeros(1))
    torch.testing.assert_close(hessian.dense(H), A, rtol=0, atol=1e-13)
    with pytest.warns(RuntimeWarning, match="nearly equal"):  # the repeated eigenvalue's vectors are not unique
        res = hessian.top_eigs(H, 6, block_size=3)
    torch.testing.assert_close(res.values, torch.tensor(top, dtype=f64), rtol=1e-10, atol=0)
    # the triple eigenvalue's eigenspace is determined even though its vectors are not
    U = torch.linalg.eigh(A).eigenvectors
    top3 = hessian.Subspace(U[:, -3:])
    assert float(top3.angles(res.vectors[:, :3]).max()) < 1e-6
    assert res.converged
    # the clustered (distinct) ones are resolved individually
    for i, j in ((3, -4), (4, -5), (5, -6)):
        assert float(hessian.Subspace(res.vectors[:, i]).angles(U[:, j]).max()) < 1e-5


def test_nearly_equal_top_eigenvalues_report_residuals():
    lam = [5.0, 5.0 - 1e-12] + list(np.linspace(0, 4, 48))
    A = spectrum_matrix(lam, seed=4)
    with pytest.warns(RuntimeWarning, match="nearly equal"):
        res = hessian.top_eigs(A, 2, block_size=2)
    assert float(res.vector_errors.max()) > 0.1  # said, not hidden
    torch.testing.assert_close(res.values, torch.tensor(lam[:2], dtype=f64), rtol=1e-12, atol=0)
    with pytest.warns(RuntimeWarning, match="stopped after"):
        res = hessian.top_eigs(spectrum_matrix(np.linspace(0, 1, 300)), 5, max_hvps=10)
    assert not res.converged and res.hvps == 10 and torch.isfinite(res.residuals).all()


def test_warm_start_takes_fewer_products_than_a_cold_start():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(200, 10, generator=g), torch.randint(0, 4, (200,), generator=g)
    model = MLP([10, 32, 4], activation="tanh")
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    train.train(model, CE, (x, y), optimizer=opt, steps=30)
    prev = hessian.top_eigs(hessian.HessianOperator(model, CE, (x, y)), 5)
    train.train(model, CE, (x, y), optimizer=opt, steps=1)
    H = hessian.HessianOperator(model, CE, (x, y))
    cold = hessian.top_eigs(H, 5)
    warm = hessian.top_eigs(H, 5, warm_start=prev)
    torch.testing.assert_close(warm.values, cold.values, rtol=1e-6, atol=0)
    assert warm.hvps < 0.75 * cold.hvps, (warm.hvps, cold.hvps)
    k1 = hessian.top_eigs(H, 1, warm_start=prev.vectors[:, 0])
    assert k1.hvps < hessian.top_eigs(H, 1).hvps


# ----------------------------------------------------------------------------- trace and density
def test_trace_estimators():
    lam = 1.0 / np.arange(1, 201) ** 1.5  # decaying spectrum: where Hutch++ shines
    A = spectrum_matrix(lam, seed=5)
    exact = lam.sum()
    err = {m: np.mean([abs(hessian.trace(A, method=m, n_hvps=60, seed=s).value - exact) for s in range(8)])
           for m in ("hutch++", "hutchinson")}
    assert err["hutch++"] < 0.25 * err["hutchinson"], err
    assert err["hutch++"] < 0.01 * exact
    low_rank = spectrum_matrix([3.0, 2.0, 1.0] + [0.0] * 97, seed=6)  # rank 3 ≤ sketch: exact
    est = hessian.trace(low_rank, n_hvps=30, seed=0)
    assert est.value == pytest.approx(6.0, abs=1e-10) and est.hvps == 30
    est = hessian.trace(A, method="hutchinson", n_hvps=2000, seed=0)
    assert abs(est.value - exact) < 4 * est.std_error


def test_lanczos_quadrature_is_gauss_quadrature():
    model, batch = small_mlp()  # 53 parameters
    Hd = double_loop_hessian(model, CE, batch)
    V = torch.randn(Hd.shape[0], 3, dtype=f64, generator=torch.Generator().manual_seed(0))
    nodes, weights = hessian.lanczos_quadrature(Hd, V, 6)
    for i in range(3):  # exact for polynomials of degree < 2 · 6
        v = V[:, i] / V[:, i].norm()
        for p in range(12):
            exact = float(v @ torch.linalg.matrix_power(Hd, p) @ v)
            assert np.sum(weights[i] * nodes[i] ** p) == pytest.approx(exact, rel=1e-9, abs=1e-12)
    # run to the end, the rule is the spectral measure of v itself: nodes λ_i, weights (u_iᵀv)²/‖v‖²
    lam = np.linspace(-1, 3, 40)
    A = spectrum_matrix(lam, seed=1)
    U = torch.linalg.eigh(A).eigenvectors
    v = V[:40, 0]
    nodes, weights = hessian.lanczos_quadrature(A, v[:, None], 100)
    np.testing.assert_allclose(nodes[0], lam, atol=1e-10)
    np.testing.assert_allclose(weights[0], ((U.T @ v) ** 2 / (v @ v)).numpy(), atol=1e-10)


def test_spectral_density_against_the_dense_spectrum():
    model, batch = tiny_cnn()  # 119 parameters
    evals = torch.linalg.eigvalsh(double_loop_hessian(model, CE, batch)).numpy()
    sd = hessian.spectral_density(hessian.HessianOperator(model, CE, batch), n_probes=30, n_steps=40, seed=0)
    exact = np.exp(-0.5 * ((sd.grid[:, None] - evals[None, :]) / sd.sigma) ** 2).sum(1)
    exact /= len(evals) * sd.sigma * math.sqrt(2 * math.pi)
    dx = sd.grid[1] - sd.grid[0]
    assert np.sum(sd.density) * dx == pytest.approx(1.0, abs=1e-3)
    l1 = np.sum(np.abs(sd.density - exact)) * dx
    assert l1 < 0.2, l1  # a random estimate: 30 probes of a 119-dimensional spectrum
    assert sd.moment(1) * sd.size == pytest.approx(sd.trace())
    assert sd.nodes.max() == pytest.approx(evals.max(), rel=1e-8)  # the extreme node converges
    assert sd.hvps == 30 * 40


# ----------------------------------------------------------------------------- subspaces
def test_subspace_projections_and_overlap():
    g = torch.Generator().manual_seed(0)
    B = torch.randn(50, 4, generator=g, dtype=f64)
    S = hessian.Subspace(B)
    v = torch.randn(50, generator=g, dtype=f64)
    torch.testing.assert_close(S.project(v) + S.project_out(v), v)
    assert float(S.Q.T @ S.project_out(v) @ torch.ones(4, dtype=f64)) == pytest.approx(0, abs=1e-12)
    assert S.overlap(B[:, 2]) == pytest.approx(1.0)
    assert S.overlap(S.project_out(v)) == pytest.approx(0.0, abs=1e-12)
    c = S.overlap(v)
    assert c**2 == pytest.approx(float(S.project(v) @ S.project(v) / (v @ v)))
    assert S.random_overlap == pytest.approx(math.sqrt(4 / 50))
    assert float(S.angles(B[:, [1, 3, 0, 2]] @ torch.randn(4, 4, generator=g, dtype=f64)).max()) < 1e-7
    model = MLP([3, 4, 2], dtype=f64)
    params = list(model.parameters())
    n = sum(p.numel() for p in params)
    S = hessian.Subspace(torch.randn(n, 2, generator=g, dtype=f64))
    parts = S.project(params)
    assert [t.shape for t in parts] == [p.shape for p in params]
    torch.testing.assert_close(hessian.flatten(parts), S.project(hessian.flatten(params)))


# ----------------------------------------------------------------------------- the callback
def test_sharpness_callback_tracks_the_exact_top_eigenvalue():
    model, (x, y) = small_mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    cb = hessian.SharpnessCallback(CE, (x, y), every=5, tol=1e-9, k=2)
    hist = train.train(model, CE, (x, y), optimizer=opt, steps=20, every=5, callbacks=[cb])
    assert cb.steps == [0, 5, 10, 15, 20]
    exact = torch.linalg.eigvalsh(double_loop_hessian(model, CE, (x, y)))
    assert hist["sharpness"][-1] == pytest.approx(float(exact[-1]), rel=1e-8)
    assert hist["sharpness_2"][-1] == pytest.approx(float(exact[-2]), rel=1e-8)
    assert len(hist["sharpness"]) == 4 and cb.sharpness.shape == (5,)
    assert max(cb.hvps[1:]) < cb.hvps[0]  # warm starts
    assert hessian.sharpness(model, CE, (x, y)) == pytest.approx(float(exact[-1]), rel=1e-9)


# ----------------------------------------------------------------------------- the traps
def test_batchnorm_in_train_mode_is_refused_until_a_mode_is_chosen():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 3)).double()
    x, y = torch.randn(32, 5, dtype=f64), torch.randint(0, 3, (32,))
    train.train(model, CE, (x, y), optimizer=torch.optim.SGD(model.parameters(), lr=0.1), steps=3)
    with pytest.raises(ValueError, match="train mode with BatchNorm.*model.eval\\(\\).*mode='train'"):
        hessian.HessianOperator(model, CE, (x, y))
    stats = {k: v.clone() for k, v in model.state_dict().items()}
    H_train = hessian.HessianOperator(model, CE, (x, y), mode="train")
    H_eval = hessian.HessianOperator(model, CE, (x, y), mode="eval")
    lt, le = hessian.top_eigs(H_train, 1).values[0], hessian.top_eigs(H_eval, 1).values[0]
    assert model.training  # the mode is restored
    for k, v in model.state_dict().items():  # running statistics untouched by train-mode products
        torch.testing.assert_close(v, stats[k], rtol=0, atol=0)
    assert abs(float(lt / le) - 1) > 0.05  # the two Hessians differ
    model.eval()
    ref = double_loop_hessian(model, CE, (x, y))
    torch.testing.assert_close(hessian.dense(hessian.HessianOperator(model, CE, (x, y))), ref, rtol=0, atol=1e-12)


def test_active_dropout_is_refused():
    model = nn.Sequential(nn.Linear(4, 6), nn.Dropout(0.3), nn.Linear(6, 2)).double()
    batch = (torch.randn(8, 4, dtype=f64), torch.randint(0, 2, (8,)))
    with pytest.raises(ValueError, match="active dropout.*model.eval\\(\\)"):
        hessian.HessianOperator(model, CE, batch)
    with pytest.raises(ValueError, match="active dropout.*mode='eval'"):
        hessian.HessianOperator(model, CE, batch, mode="train")
    H = hessian.HessianOperator(model, CE, batch, mode="eval")
    v = torch.randn(H.size, dtype=f64)
    torch.testing.assert_close(H @ v, H @ v, rtol=0, atol=0)  # deterministic: dropout is off


def test_tf32_is_off_inside_products_and_restored_after():
    seen = []

    def loss_fn(model, batch):
        seen.append(torch.get_float32_matmul_precision())
        return CE(model, batch)

    model, batch = small_mlp()
    before = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("high")  # allows TF32 matmuls on GPUs
        hessian.HessianOperator(model, loss_fn, batch) @ torch.randn(53, dtype=f64)
        assert seen == ["highest"]
        assert torch.get_float32_matmul_precision() == "high"
    finally:
        torch.set_float32_matmul_precision(before)


def test_non_scalar_loss_and_frozen_parameters():
    model, batch = small_mlp()
    per_example = train.supervised(lambda o, t: F.cross_entropy(o, t, reduction="none"))
    with pytest.raises(ValueError, match="not a scalar"):
        hessian.HessianOperator(model, per_example, batch) @ torch.randn(53, dtype=f64)
    model[0].weight.requires_grad_(False)
    with pytest.warns(UserWarning, match="do not require grad"):
        H = hessian.HessianOperator(model, CE, batch)
    assert H.size == 53 - 30
    full = double_loop_hessian(model, CE, batch)  # over the parameters that require grad
    torch.testing.assert_close(hessian.dense(H), full, rtol=0, atol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hessian.HessianOperator(model, CE, batch, params=[model[2].weight])  # explicit: no warning
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="no parameter requires grad"):
        hessian.HessianOperator(model, CE, batch)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_the_gpu_the_same_answers_with_tf32_requested():
    model, batch = small_mlp(sizes=(12, 16, 8, 4))
    ref = hessian.top_eigs(hessian.HessianOperator(model, CE, batch), 5)
    gpu_model = copy.deepcopy(model).cuda().float()
    gpu_batch = (batch[0].cuda().float(), batch[1].cuda())
    before = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("high")  # TF32 allowed: the operator must switch it off
        H = hessian.HessianOperator(gpu_model, CE, gpu_batch)
        res = hessian.top_eigs(H, 5)
    finally:
        torch.set_float32_matmul_precision(before)
    assert res.vectors.is_cuda and H.vectorize
    torch.testing.assert_close(res.values, ref.values, rtol=1e-4, atol=0)
