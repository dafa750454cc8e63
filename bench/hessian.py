"""Benchmark: hild.hessian against PyHessian, hessian-eigenthings, curvlinops + SciPy and torch.lobpcg.

    python bench/hessian.py                      # CPU suite: MLP on digits (a few CPU minutes)
    python bench/hessian.py --quick              # the same at a small setting (about 75 s of CPU)
    python bench/hessian.py --suite gpu          # GPU suite: ResNet-18-sized CNN + small transformer
    python bench/hessian.py --suite gpu --tiny   # the GPU suite's code at tiny sizes (CPU smoke test)

The peers are benchmark-only dependencies, not the book's: install them apart and put them on
the path, e.g. ``pip install --target /tmp/peers --no-deps pyhessian hessian-eigenthings
curvlinops-for-pytorch backpack-for-pytorch einops einconv linear_operator opt-einsum unfoldNd``
then ``PYTHONPATH=/tmp/peers python bench/hessian.py``. A peer that is not importable is skipped
and the table says so.

On the same model and batch, in one run:

1. one Hessian-vector product (HVP): time and peak memory as a ratio to one gradient;
2. the top-1 and top-10 eigenvalues to 1e-4 relative error: time and HVPs for each method, each at
   the cheapest of its own tolerance settings that reaches 1e-4 on every eigenvalue (against a
   float64 reference checked against the dense Hessian where it can be formed);
3. warm- against cold-started ``top_eigs`` along a short GD run;
4. the trace error at equal HVPs.

Times are CPU seconds of this process on a CPU (one thread) and wall seconds with CUDA
synchronisation on a GPU. The table goes to ``bench/results/hessian-<device>.md``; its header
names the device and, on a CPU, the machine's load while the benchmark ran (a shared machine
inflates every time, less so the CPU seconds than the wall-clock ones).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import math
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))

from hild import config, hessian, train  # noqa: E402
from hild.models import MLP  # noqa: E402

TARGET = 1e-4  # relative eigenvalue error every method must reach


# ----------------------------------------------------------------------------------- problems
@dataclass
class Problem:
    """One model and batch. ``loss_fn(model, batch)`` (hild's convention); ``criterion(out, y)``
    for the peers that want it; ``x, y`` the batch."""

    name: str
    model: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    note: str = ""

    @property
    def loss_fn(self):
        return train.supervised(self.criterion)

    @property
    def n(self) -> int:
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)


def digits_mlp(device: torch.device) -> Problem:
    from hild.data import digits

    d = digits(1500, n_test=0, seed=0)
    torch.manual_seed(0)
    model = MLP([64, 32, 32, 10], activation="tanh").to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = d.x_train.to(device), d.y_train.to(device)
    train.train(model, train.supervised(F.cross_entropy), (x, y), optimizer=opt, steps=300)
    return Problem("MLP 64-32-32-10 tanh, 1,500 digits, cross-entropy, after 300 GD steps", model, x, y,
                   nn.CrossEntropyLoss())


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.short = nn.Sequential()
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.b1(self.c1(x)))
        return F.relu(self.b2(self.c2(out)) + self.short(x))


class ResNet18(nn.Module):
    """ResNet-18 for 32x32 inputs (CIFAR layout: 3x3 stem, no max-pool), widths w, 2w, 4w, 8w."""

    def __init__(self, width: int = 64, classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        layers, cin = [], width
        for i, w in enumerate([width, 2 * width, 4 * width, 8 * width]):
            for j in range(2):
                layers.append(BasicBlock(cin, w, 2 if (i > 0 and j == 0) else 1))
                cin = w
        self.layers = nn.Sequential(*layers)
        self.head = nn.Linear(cin, classes)

    def forward(self, x):
        return self.head(F.adaptive_avg_pool2d(self.layers(self.stem(x)), 1).flatten(1))


class Block(nn.Module):
    """Pre-norm causal self-attention + MLP, attention written out (softmax(QKᵀ/√d)V) so that
    double backward works on every device (fused attention kernels lack second derivatives)."""

    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.n1, self.n2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(self.n1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(C // self.heads)
        causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
        att = att.masked_fill(~causal, float("-inf")).softmax(-1)
        x = x + self.proj((att @ v).transpose(1, 2).reshape(B, T, C))
        return x + self.mlp(self.n2(x))


class TinyGPT(nn.Module):
    """A small causal transformer language model (no dropout)."""

    def __init__(self, vocab: int, d: int, layers: int, heads: int, seq: int):
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(0.02 * torch.randn(seq, d))
        self.blocks = nn.Sequential(*[Block(d, heads) for _ in range(layers)])
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab)

    def forward(self, idx):
        return self.head(self.norm(self.blocks(self.tok(idx) + self.pos[: idx.shape[1]])))


class SequenceCE(nn.CrossEntropyLoss):
    """Next-token cross-entropy over (batch, time, vocab) logits, averaged over tokens."""

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return super().forward(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def resnet_problem(device: torch.device, tiny: bool) -> Problem:
    torch.manual_seed(0)
    width, batch, side = (4, 8, 16) if tiny else (64, 128, 32)
    model = ResNet18(width).to(device).eval()  # BatchNorm: the eval-mode Hessian for every method
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 3, side, side, generator=g).to(device)
    y = torch.randint(0, 10, (batch,), generator=g).to(device)
    return Problem(f"ResNet-18 (width {width}), {batch} random {side}x{side} images, eval mode", model, x, y,
                   nn.CrossEntropyLoss(), note="synthetic inputs and labels; BatchNorm in eval mode")


def transformer_problem(device: torch.device, tiny: bool) -> Problem:
    torch.manual_seed(0)
    vocab, d, layers, heads, seq, batch = (16, 16, 1, 2, 8, 4) if tiny else (128, 256, 4, 4, 64, 32)
    model = TinyGPT(vocab, d, layers, heads, seq).to(device)
    g = torch.Generator().manual_seed(2)
    tokens = torch.randint(0, vocab, (batch, seq + 1), generator=g).to(device)
    return Problem(f"transformer d={d}, {layers} layers, {heads} heads, {batch}x{seq} tokens", model,
                   tokens[:, :-1], tokens[:, 1:], SequenceCE(), note="random tokens, next-token cross-entropy")


# ----------------------------------------------------------------------------------- measuring
class Clock:
    """CPU seconds of this process on a CPU; wall seconds with CUDA synchronisation on a GPU."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def now(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
            return time.perf_counter()
        return time.process_time()

    def time(self, fn: Callable[[], Any], reps: int = 5) -> float:
        """Median seconds of ``fn()`` over ``reps`` calls, after one warm-up call."""
        fn()
        out = []
        for _ in range(reps):
            t0 = self.now()
            fn()
            out.append(self.now() - t0)
        return statistics.median(out)


def peak_bytes(fn: Callable[[], Any], device: torch.device) -> float:
    """Peak memory allocated by torch while ``fn()`` runs, above what was allocated before."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return float(torch.cuda.max_memory_allocated() - base)
    from torch.profiler import ProfilerActivity, profile

    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), profile(
            activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    cur = best = 0
    for e in sorted((e for e in prof.events() if e.self_cpu_memory_usage), key=lambda e: e.time_range.start):
        cur += e.self_cpu_memory_usage
        best = max(best, cur)
    return float(best)


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: Any) -> None:
        self.rows.append([c if isinstance(c, str) else fmt(c) for c in cells])
        print("   ", " | ".join(self.rows[-1]), flush=True)

    def markdown(self) -> str:
        lines = [f"### {self.title}", "", "| " + " | ".join(self.header) + " |",
                 "|" + "|".join("---" for _ in self.header) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in self.rows]
        if self.notes:
            lines += [""] + [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"


def fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        if math.isnan(v):
            return "—"
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
            return f"{v:.1e}"
        return f"{v:.3g}"
    return str(v)


# ----------------------------------------------------------------------------------- the peers
def peer(name: str):
    """The imported module, or None (and why) when it is not installed or fails to import."""
    try:
        if name == "pyhessian":
            import pyhessian.hessian  # noqa: F401  (the module; the package re-exports the class)

            return sys.modules["pyhessian.hessian"], ""
        if name == "hessian_eigenthings":
            import hessian_eigenthings as he

            return he, ""
        if name == "curvlinops":
            import curvlinops as cl

            return cl, ""
    except Exception as exc:  # ImportError, or a peer broken on this torch
        return None, f"{type(exc).__name__}: {str(exc)[:80]}"
    raise ValueError(name)


class Counter:
    def __init__(self):
        self.n = 0


@contextlib.contextmanager
def counting_pyhessian(counter: Counter):
    phh = sys.modules["pyhessian.hessian"]
    orig = phh.hessian_vector_product

    def counted(gradsH, params, v):
        counter.n += 1
        return orig(gradsH, params, v)

    phh.hessian_vector_product = counted
    try:
        yield
    finally:
        phh.hessian_vector_product = orig


def counted_scipy(L, counter: Counter):
    from scipy.sparse.linalg import LinearOperator

    def mv(x):
        counter.n += 1
        return L.matvec(x)

    def mm(X):
        counter.n += X.shape[1]
        return L.matmat(X)

    return LinearOperator(L.shape, matvec=mv, rmatvec=mv, matmat=mm, rmatmat=mm, dtype=L.dtype)


def scipy_eigsh(L, k: int, tol: float) -> tuple[np.ndarray, int]:
    """SciPy's ARPACK Lanczos on a LinearOperator: the top-k values and the products it took."""
    from scipy.sparse.linalg import eigsh

    c = Counter()
    vals = eigsh(counted_scipy(L, c), k=k, which="LA", tol=tol, return_eigenvectors=False)
    return vals, c.n


class _LobpcgProxy:
    """What ``torch.lobpcg`` reads of its matrix; the products are routed to an operator."""

    def __init__(self, op):
        self.op, self.shape, self.dtype, self.device = op, torch.Size(op.shape), op.dtype, op.device
        self.is_sparse, self.requires_grad, self.layout = False, False, torch.strided

    def size(self, i=None):
        return self.shape if i is None else self.shape[i]

    def dim(self):
        return 2


@contextlib.contextmanager
def lobpcg_on_operators():
    import torch._linalg_utils as lu

    orig = lu.matmul

    def matmul(A, B):
        return A.op.matmat(B) if isinstance(A, _LobpcgProxy) else orig(A, B)

    lu.matmul = matmul
    try:
        yield
    finally:
        lu.matmul = orig


# ----------------------------------------------------------------------------------- 1. HVP cost
def bench_hvp(p: Problem, device: torch.device, clock: Clock) -> Table:
    t = Table("One Hessian-vector product, as a ratio to one gradient (same model and batch)",
              ["method", "seconds", "x gradient", "peak MB", "x gradient (memory)"])
    params = [q for q in p.model.parameters() if q.requires_grad]
    batch = (p.x, p.y)

    def grad():
        return torch.autograd.grad(p.loss_fn(p.model, batch), params)

    t_grad, m_grad = clock.time(grad), peak_bytes(grad, device)
    t.add("one gradient (forward + backward)", t_grad, 1.0, m_grad / 1e6, 1.0)
    v = torch.randn(p.n, device=device)

    def row(name, setup, product, block=1):
        try:
            state = setup()
            secs = clock.time(lambda: product(state)) / block
            mem = peak_bytes(lambda: product(setup()), device)  # first product, incl. building any cached graph
            t.add(name, secs, secs / t_grad, mem / 1e6, mem / m_grad)
        except Exception as exc:
            t.add(name, f"failed: {type(exc).__name__}", "—", "—", "—")

    op = lambda **kw: hessian.HessianOperator(p.model, p.loss_fn, batch, **kw)  # noqa: E731
    row("hild, double backward, graph kept (default)", lambda: op(), lambda H: H @ v)
    row("hild, double backward, graph rebuilt per product", lambda: op(cache=False), lambda H: H @ v)
    row("hild, forward-over-reverse (torch.func)", lambda: op(hvp="forward"), lambda H: H @ v)
    V = torch.randn(p.n, 10, device=device)
    row("hild, block of 10 (per vector, vectorized)", lambda: op(vectorize=True), lambda H: H @ V, block=10)
    row("hild, block of 10 (per vector, loop)", lambda: op(vectorize=False), lambda H: H @ V, block=10)
    ph, why = peer("pyhessian")
    if ph is None:
        t.add("PyHessian", f"not installed ({why})", "—", "—", "—")
    else:
        from pyhessian.utils import hessian_vector_product

        def ph_setup():
            for q in params:
                q.grad = None
            hc = ph.hessian(p.model, p.criterion, data=batch, cuda=device.type == "cuda")
            return hc, [v[i : i + q.numel()].view_as(q) for i, q in zip(np.cumsum([0] + [q.numel() for q in params]), params)]

        row("PyHessian (graph kept)", ph_setup, lambda s: hessian_vector_product(s[0].gradsH, s[0].params, s[1]))
    he, why = peer("hessian_eigenthings")
    if he is None:
        t.add("hessian-eigenthings", f"not installed ({why})", "—", "—", "—")
    else:
        row("hessian-eigenthings (autograd)", lambda: he.HessianOperator(p.model, [batch], p.loss_fn),
            lambda H: H.matvec(v))
    cl, why = peer("curvlinops")
    if cl is None:
        t.add("curvlinops", f"not installed ({why})", "—", "—", "—")
    else:
        row("curvlinops HessianLinearOperator", lambda: cl.HessianLinearOperator(
            p.model, p.criterion, params, [batch], check_deterministic=False), lambda H: H @ v)
    return t


# ----------------------------------------------------------------------------------- 2. eigenvalues
@dataclass
class Attempt:
    setting: str
    seconds: float
    hvps: int
    err: float


def cheapest(attempts: list[Attempt]) -> tuple[Attempt | None, Attempt | None]:
    ok = [a for a in attempts if a.err <= TARGET]
    best = min(ok, key=lambda a: a.seconds) if ok else None
    closest = min(attempts, key=lambda a: a.err) if attempts else None
    return best, closest


def fmt_setting(setting: Any) -> str:
    return f"tol={setting:g}" if isinstance(setting, float) else f"max_iter={setting}"


def rel_err(vals: np.ndarray, ref: np.ndarray) -> float:
    vals = np.sort(np.asarray(vals, dtype=np.float64))[::-1][: len(ref)]
    if len(vals) < len(ref) or not np.all(np.isfinite(vals)):
        return math.inf
    return float(np.max(np.abs(vals - ref) / np.abs(ref)))


def warm_up(device: torch.device) -> None:
    """First calls of LAPACK, SciPy's ARPACK and torch.lobpcg, outside every timing."""
    from scipy.sparse.linalg import eigsh

    A = torch.diag(torch.linspace(1, 2, 60, device=device))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hessian.top_eigs(A, 3)
    eigsh(hessian.as_operator(A).to_scipy(), k=3, which="LA")
    with lobpcg_on_operators():
        torch.lobpcg(_LobpcgProxy(hessian.as_operator(A)), k=3, X=torch.randn(60, 3, device=device), niter=20)


def bench_eigs(p: Problem, device: torch.device, clock: Clock, ks=(1, 10), dense: torch.Tensor | None = None,
               fast: bool = False, repeats: int = 3, limit: float | None = None) -> tuple[Table, dict[str, Any]]:
    """``limit``: once one attempt of a method takes longer than this many seconds without reaching
    the target, its tighter settings are skipped (they only cost more); ``None``: no limit."""
    warm_up(device)
    batch = (p.x, p.y)
    params = [q for q in p.model.parameters() if q.requires_grad]
    H64 = hessian.HessianOperator(p.model, p.loss_fn, batch, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref_eigs = hessian.top_eigs(H64, max(ks), tol=1e-10, max_hvps=3000)
    ref = ref_eigs.values.numpy()
    notes = [f"reference: hild `top_eigs` in float64 to relative residual 1e-10 ({ref_eigs.hvps} HVPs)"]
    if dense is not None:
        exact = torch.linalg.eigvalsh(dense.cpu()).flip(0).numpy()[: max(ks)]
        notes.append(f"checked against the dense float64 Hessian: top-{max(ks)} agree to "
                     f"{float(np.max(np.abs(exact - ref) / np.abs(ref))):.1e} (relative)")
    t = Table(f"Top-k eigenvalues to {TARGET:g} relative error",
              ["k", "method", "seconds", "HVPs", "max rel. error", "setting (cheapest reaching the target)",
               "time vs hild"], notes=notes)
    results: dict[str, Any] = {}
    tols = [3e-2, 1e-2, 3e-3, 1e-3] if fast else [3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4]
    ph, ph_why = peer("pyhessian")
    he, he_why = peer("hessian_eigenthings")
    cl, cl_why = peer("curvlinops")
    for k in ks:
        refk = ref[:k]
        methods: dict[str, list[Attempt] | str] = {}

        def run(name, setting, fn) -> bool:
            """One attempt; True once the target is reached (tighter settings only cost more)."""
            t0 = clock.now()
            try:
                vals, hvps = fn()
            except Exception as exc:
                methods.setdefault(name, [])
                print(f"    {name} {setting}: failed {type(exc).__name__}: {str(exc)[:100]}")
                return False
            secs = clock.now() - t0
            a = Attempt(setting, secs, hvps, rel_err(vals, refk))
            methods.setdefault(name, []).append(a)
            return a.err <= TARGET

        def sweep(name, settings, fn):
            for setting in settings:
                reached = run(name, fmt_setting(setting), lambda: fn(setting))
                last = methods[name][-1] if methods.get(name) else None
                if not reached and limit is not None and last is not None and last.seconds > limit:
                    print(f"    {name}: {last.seconds:.1f} s at {last.setting} > {limit:g} s, tighter settings skipped")
                    t.notes.append(f"k={k}, {name}: settings tighter than {last.setting} skipped "
                                   f"(that attempt took {last.seconds:.1f} s > the {limit:g} s limit per attempt)")
                    break
                if reached:
                    # the setting that reached the target: time it again, keep the fastest run
                    # (a shared machine's noise only ever adds time)
                    for _ in range(repeats - 1):
                        t0 = clock.now()
                        fn(setting)
                        a = methods[name][-1]
                        a.seconds = min(a.seconds, clock.now() - t0)
                    break

        def ours(tol, **kw):
            H = hessian.HessianOperator(p.model, p.loss_fn, batch)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                r = hessian.top_eigs(H, k, tol=tol, max_hvps=4000, **kw)
            return r.values.numpy(), r.hvps

        sweep("hild top_eigs (Lanczos)", tols, ours)
        if k > 1:
            sweep(f"hild top_eigs, block {k}", tols, lambda tol: ours(tol, block_size=k))

        def power(tol):  # plain power iteration with deflation, residual-based stopping
            H = hessian.HessianOperator(p.model, p.loss_fn, batch)
            vals, vecs, hvps = [], [], 0
            g = torch.Generator(device=device).manual_seed(0)
            for _ in range(k):
                v = torch.randn(p.n, device=device, generator=g)
                for _ in range(50 if fast else 3000):
                    for u in vecs:
                        v = v - (u @ v) * u
                    v = v / v.norm()
                    Hv = H @ v
                    hvps += 1
                    lam = float(v @ Hv)
                    if float((Hv - lam * v).norm()) <= tol * abs(lam):
                        break
                    v = Hv
                vals.append(lam)
                vecs.append(v)
            return np.array(vals), hvps

        if k == 1:  # the reference for "a third of power iteration's HVPs"
            sweep("power iteration (residual stop)", tols, power)

        if ph is None:
            methods["PyHessian (power iteration)"] = f"not installed ({ph_why})"
        else:
            def pyh(tol):
                c = Counter()
                with counting_pyhessian(c):
                    hc = ph.hessian(p.model, p.criterion, data=batch, cuda=device.type == "cuda")
                    vals, _ = hc.eigenvalues(maxIter=50 if fast else 1000, tol=tol, top_n=k)
                for q in params:  # PyHessian leaves a create_graph gradient in .grad
                    q.grad = None
                return np.array(vals), c.n

            def pyh_seeded(tol):
                torch.manual_seed(0)
                return pyh(tol)

            sweep("PyHessian (power iteration)", [1e-3, 1e-4, 1e-5] if fast else [1e-3, 1e-4, 1e-5, 1e-6, 1e-7],
                  pyh_seeded)
        if he is None:
            methods["hessian-eigenthings lanczos"] = f"not installed ({he_why})"
        else:
            def hel(max_iter, **kw):
                op = he.HessianOperator(p.model, [batch], p.loss_fn)
                c = Counter()
                orig = op.matvec

                def mv(v):
                    c.n += 1
                    return orig(v)

                op.matvec = mv
                r = he.lanczos(op, k=k, max_iter=max_iter, which="LA", seed=0, **kw)
                return r.eigenvalues.detach().cpu().numpy(), c.n

            run("hessian-eigenthings lanczos, defaults", "max_iter=2k (default)", lambda: hel(None))
            sweep("hessian-eigenthings lanczos",
                  [m for m in (4 * k, 8 * k, 12 * k, 20 * k, 30 * k, 50 * k, 80 * k) if m <= min(p.n - 1, 400)],
                  lambda m: hel(m, reorthogonalize=True))
        if cl is None:
            methods["curvlinops + scipy eigsh"] = f"not installed ({cl_why})"
        else:
            sweep("curvlinops + scipy eigsh", tols, lambda tol: scipy_eigsh(cl.HessianLinearOperator(
                p.model, p.criterion, params, [batch], check_deterministic=False).to_scipy(), k, tol))
        sweep("hild operator + scipy eigsh", tols, lambda tol: scipy_eigsh(
            hessian.HessianOperator(p.model, p.loss_fn, batch).to_scipy(), k, tol))

        def lob(tol):
            H = hessian.HessianOperator(p.model, p.loss_fn, batch)
            X = torch.randn(p.n, max(k, 2), device=device, generator=torch.Generator(device=device).manual_seed(0))
            with lobpcg_on_operators():
                vals, _ = torch.lobpcg(_LobpcgProxy(H), k=max(k, 2), X=X, largest=True, tol=tol, niter=2000)
            return vals.detach().cpu().numpy()[:k], H.products

        sweep("torch.lobpcg (on the hild operator)", tols, lob)

        ours_best = cheapest(methods["hild top_eigs (Lanczos)"])[0]  # type: ignore[arg-type]
        for name, attempts in methods.items():
            if isinstance(attempts, str):
                t.add(k, name, attempts, "—", "—", "—", "—")
                continue
            best, closest = cheapest(attempts)
            if best is None:
                c = closest
                t.add(k, name, "did not reach the target", c.hvps if c else "—", c.err if c else "—",
                      f"best: {c.setting}" if c else "all failed", "—")
                results[(k, name)] = None
                continue
            ratio = best.seconds / ours_best.seconds if ours_best else math.nan
            t.add(k, name, best.seconds, best.hvps, best.err, best.setting,
                  "—" if math.isnan(ratio) else f"{ratio:.1f}x")
            results[(k, name)] = best
        for name, attempts in methods.items():  # what hessian-eigenthings' defaults give
            if name.endswith("defaults") and not isinstance(attempts, str) and attempts:
                t.notes.append(f"k={k}: hessian-eigenthings at its defaults (max_iter = 2k) has relative error "
                               f"{attempts[0].err:.2g}")
    return t, results


# ----------------------------------------------------------------------------------- 3. warm starts
def bench_warm(device: torch.device, clock: Clock, steps: int = 200) -> tuple[Table, dict[str, float]]:
    """GD at the edge of stability (first 500 digits, squared loss, η = 0.5): every step k=1,
    every 10 steps k=10, warm- and cold-started, on the same trajectory."""
    from hild.data import digits

    d = digits(500, n_test=0, shuffle=False)
    x, y = d.x_train.to(device), d.one_hot()[0].to(device)

    def loss_fn(model, batch):
        inputs, targets = batch
        return 0.5 * ((model(inputs) - targets) ** 2).sum(1).mean()

    torch.manual_seed(0)
    model = MLP([64, 32, 32, 10], activation="tanh").to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    states = []
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(model, (x, y)).backward()
        opt.step()
        states.append(copy.deepcopy(model.state_dict()))
    t = Table(f"Warm against cold starts along {steps} steps of GD (edge of stability, 500 digits, squared loss, η = 0.5)",
              ["what", "tol", "cold HVPs", "warm HVPs", "saved", "cold s", "warm s"])
    out = {}
    for k, every, tol in ((1, 1, 1e-3), (1, 1, 1e-4), (10, 1, 1e-3), (10, 10, 1e-3), (10, 10, 1e-4)):
        tot = {"cold": [0, 0.0], "warm": [0, 0.0]}
        prev = None
        for i, st in enumerate(states):
            if (i + 1) % every:
                continue
            model.load_state_dict(st)
            for mode in ("cold", "warm"):
                H = hessian.HessianOperator(model, loss_fn, (x, y))
                t0 = clock.now()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    r = hessian.top_eigs(H, k, tol=tol, warm_start=prev if mode == "warm" else None)
                tot[mode][1] += clock.now() - t0
                tot[mode][0] += r.hvps
                if mode == "warm":
                    prev = r
        saved = 1 - tot["warm"][0] / tot["cold"][0]
        out[f"k={k} every {every} tol={tol:g}"] = saved
        t.add(f"top-{k} every {every} step{'s' if every > 1 else ''}", f"{tol:g}", tot["cold"][0], tot["warm"][0],
              f"{saved:.0%}", tot["cold"][1], tot["warm"][1])
    return t, out


# ----------------------------------------------------------------------------------- 4. trace
def bench_trace(p: Problem, device: torch.device, exact: float | None, budgets=(30, 60, 120, 240),
                seeds: int = 10) -> Table:
    batch = (p.x, p.y)
    params = [q for q in p.model.parameters() if q.requires_grad]
    t = Table("Trace: median relative error over seeds at equal HVPs" if exact is not None
              else "Trace: spread (relative std over seeds) at equal HVPs (no exact trace at this size)",
              ["method", *[f"{b} HVPs" for b in budgets]])
    if exact is not None:
        t.notes.append(f"exact trace {exact:.6g} from the dense float64 Hessian; {seeds} seeds per cell")

    def summarise(vals: list[float]) -> float:
        if exact is not None:
            return float(np.median(np.abs(np.array(vals) - exact) / abs(exact)))
        return float(np.std(vals) / abs(np.mean(vals)))

    def row(name, fn):
        cells = []
        for b in budgets:
            try:
                cells.append(summarise([fn(b, s) for s in range(seeds)]))
            except Exception as exc:
                cells.append(f"failed: {type(exc).__name__}")
        t.add(name, *cells)

    H = hessian.HessianOperator(p.model, p.loss_fn, batch)
    row("hild trace, Hutchinson", lambda b, s: hessian.trace(H, method="hutchinson", n_hvps=b, seed=s).value)
    row("hild trace, Hutch++", lambda b, s: hessian.trace(H, method="hutch++", n_hvps=b, seed=s).value)
    ph, why = peer("pyhessian")
    if ph is None:
        t.add("PyHessian trace (Hutchinson)", *[f"not installed ({why})"] * len(budgets))
    else:
        def pyt(b, s):
            torch.manual_seed(s)
            hc = ph.hessian(p.model, p.criterion, data=batch, cuda=device.type == "cuda")
            out = float(np.mean(hc.trace(maxIter=b, tol=0.0)))
            for q in params:
                q.grad = None
            return out

        row("PyHessian trace (Hutchinson)", pyt)
    he, why = peer("hessian_eigenthings")
    if he is None:
        t.add("hessian-eigenthings trace", *[f"not installed ({why})"] * len(budgets))
    else:
        op = he.HessianOperator(p.model, [batch], p.loss_fn)
        row("hessian-eigenthings Hutch++", lambda b, s: float(he.hutch_plus_plus(op, num_matvecs=b, seed=s).estimate))
    cl, why = peer("curvlinops")
    if cl is None:
        t.add("curvlinops trace", *[f"not installed ({why})"] * len(budgets))
    else:
        from curvlinops.trace.meyer2020hutch import hutchpp_trace

        op = cl.HessianLinearOperator(p.model, p.criterion, params, [batch], check_deterministic=False)

        def clt(b, s):
            torch.manual_seed(s)
            return float(hutchpp_trace(op, (b // 3) * 3))

        row("curvlinops Hutch++", clt)
    return t


# ----------------------------------------------------------------------------------- suites
def cpu_name() -> str:
    """The CPU's model name (Linux), else what ``platform`` knows."""
    return config.device_name("cpu")[len("CPU ("):-1]


def environment(device: torch.device) -> list[str]:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"{cpu_name()}, {os.cpu_count()} logical cores"
    versions = []
    for mod in ("pyhessian", "hessian_eigenthings", "curvlinops"):
        m, why = peer(mod)
        if m is None:
            versions.append(f"{mod}: not installed")
        else:
            import importlib.metadata as md

            dist = {"pyhessian": "pyhessian", "hessian_eigenthings": "hessian-eigenthings",
                    "curvlinops": "curvlinops-for-pytorch"}[mod]
            try:
                versions.append(f"{mod} {md.version(dist)}")
            except md.PackageNotFoundError:
                versions.append(f"{mod} {getattr(m, '__version__', '?')}")
    return [f"device: {device.type} ({name}), torch {torch.__version__}, {torch.get_num_threads()} thread(s)",
            "peers: " + ", ".join(versions),
            f"command: `python bench/hessian.py {' '.join(sys.argv[1:])}`".replace("  ", " "),
            f"date: {time.strftime('%Y-%m-%d %H:%M')}"]


def targets(hvp: Table, eig: dict[str, Any], warm: dict[str, float]) -> Table:
    t = Table("The issue's targets, as measured here", ["target", "measured", "met"])
    ratio = next((float(r[2]) for r in hvp.rows if r[0].startswith("hild, double backward, graph kept")), math.nan)
    t.add("HVP ≤ 2.5x a gradient's time", f"{ratio:.2f}x", "yes" if ratio <= 2.5 else "no")

    def best(k, name):
        return eig.get((k, name))

    ours10 = best(10, "hild top_eigs (Lanczos)")
    for name, want in (("curvlinops + scipy eigsh", 8.0), ("hild operator + scipy eigsh", 8.0),
                       ("PyHessian (power iteration)", 3.0)):
        other = best(10, name)
        if ours10 is None or other is None:
            t.add(f"top-10 to 1e-4: ≥ {want:g}x faster than {name}", "not measured (missing or did not converge)", "—")
        else:
            r = other.seconds / ours10.seconds
            t.add(f"top-10 to 1e-4: ≥ {want:g}x faster than {name}", f"{r:.1f}x", "yes" if r >= want else "no")
    ours1 = best(1, "hild top_eigs (Lanczos)")
    for name in ("power iteration (residual stop)", "PyHessian (power iteration)"):
        other = best(1, name)
        if ours1 is None or other is None:
            t.add(f"top-1: ≤ 1/3 of {name}'s HVPs", "not measured", "—")
        else:
            r = ours1.hvps / other.hvps
            t.add(f"top-1: ≤ 1/3 of {name}'s HVPs", f"{ours1.hvps} vs {other.hvps} ({r:.2f})", "yes" if r <= 1 / 3 else "no")
    for key, saved in warm.items():
        t.add(f"warm start saves ≥ 25% of HVPs ({key})", f"{saved:.0%}", "yes" if saved >= 0.25 else "no")
    return t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--suite", choices=["cpu", "gpu"], default="cpu")
    ap.add_argument("--tiny", action="store_true", help="tiny models on any device (smoke test of the code)")
    ap.add_argument("--out", default=None, help="Markdown file (default bench/results/hessian-<device>.md)")
    ap.add_argument("--quick", action="store_true",
                    help="a small setting: trace at 30-120 HVPs over 5 seeds, warm starts along 100 steps")
    ap.add_argument("--attempt-limit", type=float, default=None, metavar="SECONDS",
                    help="skip a method's tighter settings once one attempt takes longer than this without "
                         "reaching the target (default: none; 30 with --quick)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    if args.quick and args.attempt_limit is None:
        args.attempt_limit = 30.0
    torch.set_num_threads(args.threads)
    if args.suite == "gpu" and not args.tiny and not torch.cuda.is_available():
        print("The GPU suite needs CUDA, and this machine has none: it cannot be run here. "
              "Run `python bench/hessian.py --suite gpu` on a GPU machine, or `--suite gpu --tiny` "
              "to smoke-test its code at tiny sizes on this CPU.")
        return 2
    device = torch.device("cuda" if args.suite == "gpu" and torch.cuda.is_available() else "cpu")
    clock = Clock(device)
    sections: list[str] = []
    started, cpu_started = time.perf_counter(), time.process_time()
    load_start = os.getloadavg() if hasattr(os, "getloadavg") else None
    if args.suite == "cpu":
        problems = [digits_mlp(device)]
    else:
        problems = [resnet_problem(device, args.tiny), transformer_problem(device, args.tiny)]
    all_targets = []
    for p in problems:
        print(f"== {p.name}: {p.n:,} parameters", flush=True)
        sections.append(f"## {p.name}\n\n{p.n:,} parameters. {p.note}\n")
        hvp = bench_hvp(p, device, clock)
        sections.append(hvp.markdown())
        dense = None
        if p.n <= 5000 and not args.tiny:  # small enough to form: the exact answers
            dense = hessian.dense(hessian.HessianOperator(p.model, p.loss_fn, (p.x, p.y), dtype=torch.float64))
        eig_t, eig = bench_eigs(p, device, clock, dense=dense, fast=args.tiny, repeats=1 if args.tiny else 3,
                                limit=args.attempt_limit)
        sections.append(eig_t.markdown())
        exact = float(dense.trace()) if dense is not None else None
        budgets = (30, 60) if args.tiny else (30, 60, 120) if args.quick else (30, 60, 120, 240)
        seeds = 2 if args.tiny else 5 if args.quick else 10
        sections.append(bench_trace(p, device, exact, budgets=budgets, seeds=seeds).markdown())
        all_targets.append((p, hvp, eig))
    warm_t, warm = bench_warm(device, clock, steps=20 if args.tiny else 100 if args.quick else 200)
    sections.append(warm_t.markdown())
    tg = [targets(hvp, eig, warm).markdown().replace("### The issue's", f"### {p.name.split(',')[0]}: the issue's")
          for p, hvp, eig in all_targets]
    name = f"hessian-{'cpu' if device.type == 'cpu' else 'gpu'}{'-tiny' if args.tiny else ''}.md"
    out = Path(args.out) if args.out else ROOT / "bench" / "results" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    setting = ", tiny sizes" if args.tiny else ", quick setting" if args.quick else ""
    load = ""
    if device.type == "cpu" and load_start is not None:
        load_end = os.getloadavg()
        load = (f"- contention: a shared machine, load average {load_start[0]:.1f} at the start and "
                f"{load_end[0]:.1f} at the end on {os.cpu_count()} logical cores: every time here is "
                "inflated by other processes (the wall-clock ones most, the CPU seconds too, through "
                "shared caches and memory bandwidth) and noisy; compare ratios within this table, "
                "not seconds across machines")
    header = [f"# Hessian toolkit benchmark ({args.suite} suite{setting})", "",
              *[f"- {line}" for line in environment(device)],
              f"- total run time: {time.perf_counter() - started:.0f} s wall, "
              f"{time.process_time() - cpu_started:.0f} s CPU", *([load] if load else []), "",
              "Each eigenvalue method is run at each of its own tolerance settings; the table shows the "
              f"cheapest setting that reached {TARGET:g} relative error on every one of the top-k "
              "eigenvalues. Every method gets the same tolerance grid (3e-2 ... 1e-4; hessian-eigenthings: "
              "growing max_iter), so each is credited with the setting an oracle would pick. Times are CPU "
              "seconds (one thread) on a CPU, synchronised wall seconds on a GPU. hild's own solver "
              "runs at the code of this commit; the peers at the versions listed.", ""]
    out.write_text("\n".join(header) + "\n" + "\n".join(tg) + "\n" + "\n".join(sections), encoding="utf-8")
    print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
