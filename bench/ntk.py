"""Benchmark: the empirical NTK of an MLP and a small CNN, three ways.

* ``hild``: :func:`hild.ntk.empirical_ntk` (``torch.func``: vmap over examples of jacrev, contracted
  one parameter tensor at a time);
* ``loop``: the straightforward reference, one ``torch.autograd.grad`` per example and output,
  stacked into J, then J Jᵀ;
* ``neural-tangents``: ``nt.empirical_ntk_fn`` (JAX) on the same architecture written with ``stax``,
  run from a separate virtual environment given by ``--nt-python`` (it is not a dependency of the
  book). Its time includes nothing of JIT compilation: the function is called once to compile, then
  timed on the second call.

Every measurement runs in a fresh subprocess, so the peak resident memory it reports (``ru_maxrss``
after the kernel, minus the same process's resident memory just before, on a GPU
``torch.cuda.max_memory_allocated``) belongs to that computation alone. The kernel is the full
(N, N, O, O) one, O = 10 outputs, float32. All three are checked against each other (largest
relative difference) on the smallest size.

    python bench/ntk.py                          # CPU suite, one thread → bench/results/ntk-cpu.md
    python bench/ntk.py --device cuda            # GPU suite → bench/results/ntk-cuda.md
    python bench/ntk.py --smoke                  # tiny sizes, nothing written (a test of the script)
    python bench/ntk.py --nt-python /path/to/venv/bin/python   # add neural-tangents

The GPU suite has been smoke-tested only through the CPU path at tiny sizes (``--smoke``); it has
not been run on a GPU yet. The loop is skipped where its Jacobian alone would exceed 8 GiB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (model, size) → description; N points per kernel
SUITES = {
    "cpu": {"n": 64, "mlp": [64, 256, 1024], "cnn": [8, 16, 32]},
    "cuda": {"n": 512, "mlp": [256, 1024, 4096], "cnn": [16, 64, 128]},
    "smoke": {"n": 4, "mlp": [8], "cnn": [2]},
}


# ---------------------------------------------------------------------------------------- torch side


def _torch_model(kind: str, size: int, device: str):
    import torch
    from torch import nn

    from hild.models import NTKLinear, NTKMLP

    torch.manual_seed(0)
    if kind == "mlp":  # 64 → size → size → 10, ReLU, NTK parameterisation
        return NTKMLP([64, size, size, 10], sigma_w=[2**0.5, 2**0.5, 1.0]).to(device), (64,)

    class CNN(nn.Module):  # 1x8x8 → conv3x3(c) → relu → conv3x3(c) → relu → global mean → dense(10)
        def __init__(self, c: int):
            super().__init__()
            self.c1 = nn.Conv2d(1, c, 3, padding=1, bias=False)
            self.c2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
            self.out = NTKLinear(c, 10)
            for conv, fan_in in ((self.c1, 9), (self.c2, 9 * c)):
                nn.init.normal_(conv.weight)
                conv.scale = 2**0.5 / fan_in**0.5  # NTK parameterisation: scale in the forward pass

        def forward(self, x):
            h = torch.relu(self.c1(x) * self.c1.scale)
            h = torch.relu(self.c2(h) * self.c2.scale)
            return self.out(h.mean((2, 3)))

    return CNN(size).to(device), (1, 8, 8)


def _loop_ntk(model, x):
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    rows = []
    for xi in x:
        out = model(xi[None]).reshape(-1)
        rows.append(torch.stack([torch.cat([g.reshape(-1) for g in torch.autograd.grad(o, params, retain_graph=True)])
                                 for o in out]))
    J = torch.stack(rows)  # (N, O, P)
    return torch.einsum("aop,bqp->aboq", J, J)


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure_torch(method: str, kind: str, size: int, n: int, device: str) -> dict:
    import torch

    from hild import ntk

    torch.set_num_threads(1)
    model, shape = _torch_model(kind, size, device)
    x = torch.randn(n, *shape, generator=torch.Generator().manual_seed(1)).to(device)
    fn = (lambda: ntk.empirical_ntk(model, x)) if method == "hild" else (lambda: _loop_ntk(model, x))
    _warm_up(model, shape, device, method)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    before = _rss_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    k = fn()
    if device == "cuda":
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    mem = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else max(peak - before, 0.0)
    n_params = sum(p.numel() for p in model.parameters())
    res = {"wall": wall, "cpu": cpu, "peak_mb": mem, "params": n_params, "trace": float(torch.einsum("iioo->", k))}
    if kind == "mlp":  # the infinite-width kernel on the same inputs: Θ ⊗ I over the 10 outputs
        theta = ntk.relu_ntk(x.double().cpu(), depth=2, sigma_w=[2**0.5, 2**0.5, 1.0])
        res["trace_inf"] = float(theta.diagonal().sum()) * 10
    return res


def _warm_up(model, shape, device, method):
    """Warm up on two points, so one-time costs (torch.func's lazy imports) are not timed."""
    import torch

    from hild import ntk

    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(2)).to(device)
    (ntk.empirical_ntk(model, x) if method == "hild" else _loop_ntk(model, x))


# ---------------------------------------------------------------------------------- neural-tangents


NT_SCRIPT = r"""
import json, os, resource, sys, time
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
import jax, jax.numpy as jnp, numpy as np
import neural_tangents as nt
from neural_tangents import stax
kind, size, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s2 = 2 ** 0.5
if kind == "mlp":
    init, apply, kernel_fn = stax.serial(stax.Dense(size, W_std=s2, parameterization="ntk"), stax.Relu(),
                                 stax.Dense(size, W_std=s2, parameterization="ntk"), stax.Relu(),
                                 stax.Dense(10, W_std=1.0, parameterization="ntk"))
    shape = (64,)
else:
    init, apply, kernel_fn = stax.serial(stax.Conv(size, (3, 3), padding="SAME", W_std=s2, b_std=None,
                                           parameterization="ntk"),
                                 stax.Relu(),
                                 stax.Conv(size, (3, 3), padding="SAME", W_std=s2, b_std=None, parameterization="ntk"),
                                 stax.Relu(), stax.GlobalAvgPool(), stax.Dense(10, W_std=1.0, b_std=None,
                                                                              parameterization="ntk"))
    shape = (8, 8, 1)
x = jax.random.normal(jax.random.PRNGKey(1), (n,) + shape)
_, params = init(jax.random.PRNGKey(0), x.shape)
fn = jax.jit(nt.empirical_ntk_fn(apply, trace_axes=(), vmap_axes=0))
fn(x[:2], None, params).block_until_ready()
fn(x, None, params).block_until_ready()          # compile for this shape
peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t0, c0 = time.perf_counter(), time.process_time()
k = fn(x, None, params).block_until_ready()
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
n_params = sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(params))
out = {"wall": wall, "cpu": cpu, "peak_mb": None, "params": n_params,
       "trace": float(np.einsum("iioo->", np.asarray(k))), "version": nt.__version__, "jax": jax.__version__}
if kind == "mlp":
    out["trace_inf"] = float(np.trace(np.asarray(kernel_fn(x, None, "ntk")))) * 10
print(json.dumps(out))
"""


def measure_nt(python: str, kind: str, size: int, n: int) -> dict:
    env = dict(os.environ, JAX_PLATFORMS="cpu", OMP_NUM_THREADS="1")
    out = subprocess.run([python, "-c", NT_SCRIPT, kind, str(size), str(n)], capture_output=True, text=True,
                         env=env, timeout=3600)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------- driver


LOOP_LIMIT_GIB = 8.0  # the loop holds the whole (N, O, P) Jacobian: skip it beyond this


def _n_params(kind: str, size: int) -> int:
    return 64 * size + size * size + 10 * size if kind == "mlp" else 9 * size + 9 * size * size + 10 * size


def _one(args) -> None:
    res = measure_torch(args.method, args.kind, args.size, args.n, args.device)
    print(json.dumps(res))


def _run_sub(method: str, kind: str, size: int, n: int, device: str) -> dict:
    cmd = [sys.executable, __file__, "--one", method, kind, str(size), str(n), "--device", device]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(ROOT / "lib"))
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    if out.returncode != 0:
        raise RuntimeError(f"{method} {kind} {size}: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes; print the table, write nothing")
    ap.add_argument("--nt-python", default=None, help="a Python with neural-tangents and jax installed")
    ap.add_argument("--no-loop", action="store_true", help="skip the per-example loop (slow at large sizes)")
    ap.add_argument("--one", nargs=4, metavar=("METHOD", "KIND", "SIZE", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        args.method, args.kind, size, n = args.one
        args.size, args.n = int(size), int(n)
        _one(args)
        return
    suite = SUITES["smoke" if args.smoke else args.device]
    n = suite["n"]
    rows = []
    for kind in ("mlp", "cnn"):
        for size in suite[kind]:
            res = {"hild": _run_sub("hild", kind, size, n, args.device)}
            jac_gib = n * 10 * _n_params(kind, size) * 4 / 2**30
            if not args.no_loop and jac_gib > LOOP_LIMIT_GIB:
                res["loop"] = {"error": f"skipped: its Jacobian alone needs {jac_gib:.0f} GiB"}
            elif not args.no_loop:
                res["loop"] = _run_sub("loop", kind, size, n, args.device)
            if args.nt_python and args.device == "cpu":
                try:
                    res["neural-tangents"] = measure_nt(args.nt_python, kind, size, n)
                except Exception as exc:  # report, do not hide, a failing peer
                    res["neural-tangents"] = {"error": str(exc).splitlines()[-1][:120]}
            rows.append((kind, size, res))
            print(kind, size, {k: {kk: v.get(kk) for kk in ("wall", "cpu", "peak_mb")} for k, v in res.items()},
                  flush=True)
    table = format_table(rows, n, args)
    print(table)
    if not args.smoke:
        out = ROOT / "bench" / "results" / f"ntk-{args.device}.md"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(table, encoding="utf-8")
        raw = [{"model": k, "size": sz, "results": r} for k, sz, r in rows]
        out.with_suffix(".json").write_text(json.dumps(raw, indent=1), encoding="utf-8")
        print(f"wrote {out.relative_to(ROOT)}")


def format_table(rows, n: int, args) -> str:
    import torch

    from hild import config

    methods = ["hild"] + ([] if args.no_loop else ["loop"]) + (["neural-tangents"] if args.nt_python else [])
    dev = config.device_name(args.device)
    lines = [
        f"# Empirical NTK: time and peak memory ({dev}, one thread, float32)",
        "",
        f"Full kernel (N, N, O, O) with N = {n} inputs and O = 10 outputs; `python bench/ntk.py"
        f"{' --device cuda' if args.device == 'cuda' else ''}` ({time.strftime('%Y-%m-%d')}, torch {torch.__version__}).",
        "MLP: 64 → w → w → 10 (ReLU); CNN: 1x8x8 → conv3x3(c) → conv3x3(c) → global mean → 10. Times are",
        "CPU seconds of the kernel computation alone (wall seconds in brackets: the machine was shared);",
        "peak memory is the growth of the process's peak resident set during the computation (MiB).",
        "",
        "| model | size | parameters | " + " | ".join(f"{m} s" for m in methods) + " | "
        + " | ".join(f"{m} MiB" for m in methods) + " | loop / hild |",
        "|---|---:|---:|" + "---:|" * (2 * len(methods)) + "---:|",
    ]
    for kind, size, res in rows:
        cells_t, cells_m = [], []
        for m in methods:
            r = res.get(m, {})
            if "error" in r:
                cells_t.append("skipped" if r["error"].startswith("skipped") else "failed")
                cells_m.append("—")
            else:
                cells_t.append(f"{r['cpu']:.3g} ({r['wall']:.3g})")
                cells_m.append("n/a" if r.get("peak_mb") is None else f"{r['peak_mb']:.0f}")
        speed = f"{res['loop']['cpu'] / res['hild']['cpu']:.1f}x" if "cpu" in res.get("loop", {}) else "—"
        lines.append(f"| {kind.upper()} | {size} | {res['hild']['params']:,} | " + " | ".join(cells_t) + " | "
                     + " | ".join(cells_m) + f" | {speed} |")
    # agreement: hild and the loop on the same weights; every method against the infinite-width kernel
    kind, size, res = rows[0]
    if "trace" in res.get("loop", {}):
        d = abs(res["loop"]["trace"] - res["hild"]["trace"]) / abs(res["hild"]["trace"])
        lines += ["", f"Agreement: hild and the loop (same weights and inputs) differ by {d:.1e} in the "
                      f"kernel's trace ({kind.upper()} {size})."]
    mlps = [(sz, r) for k, sz, r in rows if k == "mlp"]
    if mlps:
        sz, res = mlps[-1]
        devs = ", ".join(f"{m} {abs(r['trace'] / r['trace_inf'] - 1):.1%}" for m, r in res.items()
                         if "trace_inf" in r)
        lines.append(f"Each method against the infinite-width NTK of the same MLP (width {sz}, on its own random "
                     f"weights and inputs; expect a few percent of sampling noise): trace off by {devs}.")
    if args.nt_python:
        nt_rows = [r["neural-tangents"] for _, _, r in rows if "version" in r.get("neural-tangents", {})]
        if nt_rows:
            lines.append(f"neural-tangents {nt_rows[0]['version']} (JAX {nt_rows[0].get('jax', '?')}, CPU, one "
                         "thread) ran from a separate virtual environment (`--nt-python`), installed from PyPI; "
                         "its latest release imports only with jax 0.4.30 and tf2jax 0.3.6 pinned.")
        lines.append("neural-tangents' memory is not reported: the timed call reuses the buffers of the "
                     "compiling call before it, so the growth of the resident set says nothing about the kernel.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
