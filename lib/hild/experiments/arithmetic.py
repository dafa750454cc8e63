"""Train, save and load the arithmetic transformers of the length-generalization chapters.

A chapter trains a run in a few lines::

    run = ArithmeticRun(digits=(1, 5), position="coupled", steps=800)
    model, history = train_run(run)
    scores = evaluate(model, run.task(), digits=range(1, 16))

and loads a checkpoint that this module's command line trained::

    model, run, provenance = load_checkpoint("book/length/checkpoints/addition-coupled.pt")

Command line (one preset per checkpoint; progress bar, resumable after an interruption)::

    python -m hild.experiments.arithmetic addition-coupled --out book/length/checkpoints
    python -m hild.experiments.arithmetic --list

The checkpoint ``<out>/<preset>.pt`` holds the run's settings and the weights (``torch.load(...,
weights_only=True)`` reads it); ``<out>/<preset>.json`` beside it records how it was made (command,
git commit, device, threads, wall and CPU time, seed) and its scores. While training, the resumable
state (weights, optimizer, scheduler, history) lives in ``<out>/<preset>.train.pt``; it is deleted
when the run completes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import config, train
from ..data.arithmetic import VOCAB_SIZE, AdditionTask, LengthScores, MultiplicationTask, evaluate, next_token_loss
from ..models.transformer import DecoderTransformer, TransformerConfig

__all__ = ["ArithmeticRun", "PRESETS", "build", "train_run", "save_checkpoint", "load_checkpoint",
           "checkpoint_path", "run_directory", "warmup_cosine", "main"]


@dataclass(frozen=True)
class ArithmeticRun:
    """Everything that defines one training run: task, model, optimisation and seed.

    The task fields are those of :class:`hild.data.arithmetic.AdditionTask` (``operation="addition"``)
    or :class:`~hild.data.arithmetic.MultiplicationTask` (``"multiplication"``: ``digits`` and
    ``operands`` are then the lengths of the multiplicand and the multiplier), the model fields those
    of :class:`hild.models.transformer.TransformerConfig` (its ``position`` and ``max_position`` come
    from the task; ``init="t5"`` is the official code's initialisation, with unit-variance
    embeddings, under which coupled models extrapolate much further than under GPT-2's). Optimisation: AdamW with linear warm-up then cosine decay to
    ``min_lr_ratio * lr``, gradient clipping at ``clip`` (None: off).
    """

    # task
    operation: str = "addition"
    digits: tuple[int, int] = (1, 5)
    operands: tuple[int, int] = (2, 2)
    scratchpad: bool = False
    position: str = "coupled"
    max_position: int = 20
    max_operand_position: int = 0
    random_start: bool = True
    # model
    d_model: int = 64
    n_layer: int = 1
    n_head: int = 2
    d_mlp: int | None = None
    init: str = "gpt2"
    # optimisation
    steps: int = 1000
    batch_size: int = 64
    lr: float = 3e-3
    warmup: int = 50
    min_lr_ratio: float = 0.0
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.98)
    clip: float | None = 1.0
    seed: int = 0

    def task(self) -> AdditionTask | MultiplicationTask:
        common = dict(digits=tuple(self.digits), operands=tuple(self.operands), position=self.position,
                      max_position=self.max_position, max_operand_position=self.max_operand_position,
                      random_start=self.random_start)
        if self.operation == "multiplication":
            return MultiplicationTask(**common)
        if self.operation != "addition":
            raise ValueError(f"operation={self.operation!r}: use 'addition' or 'multiplication'")
        return AdditionTask(scratchpad=self.scratchpad, **common)

    def model_config(self) -> TransformerConfig:
        return TransformerConfig(vocab_size=VOCAB_SIZE, d_model=self.d_model, n_layer=self.n_layer,
                                 n_head=self.n_head, d_mlp=self.d_mlp, position=self.position,
                                 max_position=max(self.max_position, self.max_operand_position),
                                 n_streams=self.task().n_streams, init=self.init)

    def replace(self, **changes: Any) -> "ArithmeticRun":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ArithmeticRun":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown run settings {sorted(unknown)}: this checkpoint is from another version of hild")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def warmup_cosine(optimizer: torch.optim.Optimizer, *, steps: int, warmup: int, min_ratio: float = 0.0):
    """LR multiplier: linear from 0 to 1 over ``warmup`` steps, then cosine down to ``min_ratio``."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = min(1.0, (step - warmup) / max(1, steps - warmup))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def build(run: ArithmeticRun) -> tuple[DecoderTransformer, AdditionTask | MultiplicationTask]:
    """The run's model (seeded with ``run.seed``) and task."""
    torch.manual_seed(run.seed)
    return DecoderTransformer(run.model_config()), run.task()


class _Clock(train.Callback):
    """Records cumulative wall and CPU seconds, carried over when a run resumes from a checkpoint."""

    def on_train_begin(self, state: train.TrainState) -> None:
        h = state.history
        self.offset = {k: h.last(k) if k in h else 0.0 for k in ("wall_seconds", "cpu_seconds")}
        self.t0 = {"wall_seconds": time.perf_counter(), "cpu_seconds": time.process_time()}

    def on_step(self, state: train.TrainState) -> dict[str, float]:
        now = {"wall_seconds": time.perf_counter(), "cpu_seconds": time.process_time()}
        return {k: self.offset[k] + now[k] - self.t0[k] for k in now}


def train_run(run: ArithmeticRun, *, checkpoint: str | os.PathLike[str] | None = None, checkpoint_every: int = 500,
              track: dict | None = None, every: int = 100, desc: str | None = None
              ) -> tuple[DecoderTransformer, train.History]:
    """Train ``run`` from scratch (or resume from ``checkpoint``) with :func:`hild.train.train`.

    The batches depend only on (seed, step), so a resumed run sees the same data. ``HILD_MAX_STEPS``
    caps the number of steps (smoke tests).
    """
    model, task = build(run)
    opt = torch.optim.AdamW(model.parameters(), lr=run.lr, betas=tuple(run.betas), weight_decay=run.weight_decay)
    sched = warmup_cosine(opt, steps=run.steps, warmup=run.warmup, min_ratio=run.min_lr_ratio)
    history = train.train(model, next_token_loss, task.batches(run.batch_size, seed=run.seed), optimizer=opt,
                          steps=run.steps, scheduler=sched, clip_grad_norm=run.clip, checkpoint=checkpoint,
                          checkpoint_every=checkpoint_every, track=track, every=every, callbacks=[_Clock()],
                          desc=desc or f"{run.position} ({run.steps} steps)")
    model.eval()
    return model, history


def save_checkpoint(model: DecoderTransformer, run: ArithmeticRun, path: str | os.PathLike[str],
                    provenance: dict[str, Any] | None = None) -> Path:
    """Write the run's settings and weights to ``path`` and ``provenance`` to ``path`` with ``.json``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    torch.save({"run": run.to_dict(), "model": state}, path)
    if provenance is not None:
        path.with_suffix(".json").write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
    return path


def load_checkpoint(path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu"
                    ) -> tuple[DecoderTransformer, ArithmeticRun, dict[str, Any]]:
    """The model (in eval mode), its run settings and the provenance saved beside it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}: train it with "
                                f"`python -m hild.experiments.arithmetic {path.stem} --out {path.parent}`")
    saved = torch.load(path, map_location=map_location, weights_only=True)
    run = ArithmeticRun.from_dict(saved["run"])
    model = DecoderTransformer(run.model_config())
    model.load_state_dict(saved["model"])
    model.eval()
    meta = path.with_suffix(".json")
    provenance = json.loads(meta.read_text(encoding="utf-8")) if meta.exists() else {}
    return model, run, provenance


def run_directory(name: str) -> Path | None:
    """Where a chapter's full-scale runs keep their resumable checkpoints, or None at ci scale.

    Full scale: ``$HILD_CACHE/<name>`` (default ``~/.cache/hild/<name>``), so an interrupted run
    resumes where it stopped. Smoke tests (``HILD_MAX_STEPS``) get a fresh temporary folder: they
    exercise the checkpoint code without leaving a two-step checkpoint for a real run to resume.
    ci runs are short and start from scratch (None).
    """
    if not config.is_full():
        return None
    if config.SMOKE:
        import tempfile

        return Path(tempfile.mkdtemp(prefix=f"hild-{name}-"))
    path = Path(os.environ.get("HILD_CACHE", "~/.cache/hild")).expanduser() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def checkpoint_path(name: str, folder: str | os.PathLike[str] = "checkpoints") -> Path:
    """The local file of the checkpoint ``name`` (``<folder>/<name>.pt``), downloaded if missing.

    A chapter run from the repository finds its checkpoints next to it; a notebook opened alone
    (in Colab, say) fetches them, with their provenance, from the repository into
    ``~/.cache/hild/checkpoints``. ci runs never download: their files are in the repository.
    """
    local = Path(folder) / f"{name}.pt"
    if local.exists():
        return local
    cache = Path(os.environ.get("HILD_CACHE", "~/.cache/hild")).expanduser() / "checkpoints"
    target = cache / f"{name}.pt"
    if target.exists():
        return target
    import urllib.request
    from importlib.metadata import PackageNotFoundError, metadata

    try:
        urls = [u.split(",", 1)[1].strip() for u in metadata("hild").get_all("Project-URL") or []]
    except PackageNotFoundError:
        urls = []
    if not urls:
        raise FileNotFoundError(f"no checkpoint {local} and no repository URL to fetch it from")
    raw = urls[0].replace("https://github.com/", "https://raw.githubusercontent.com/").rstrip("/")
    cache.mkdir(parents=True, exist_ok=True)
    for suffix in (".json", ".pt"):
        url = f"{raw}/main/book/length/checkpoints/{name}{suffix}"
        try:
            urllib.request.urlretrieve(url, cache / f"{name}{suffix}")
        except OSError as exc:
            raise FileNotFoundError(f"no checkpoint {local}, and fetching {url} failed ({exc}); "
                                    f"train it with `python -m hild.experiments.arithmetic {name}`") from None
    return target


# ----------------------------------------------------------------------------- presets
# The runs behind the checkpoints in book/length/checkpoints/, with the grids they are scored on.

# The three arms of the position-coupling comparison: 1-5 digit additions, tested up to 18 digits.
# The coupled arm is the chapter's ci model trained about twice as long; absolute positions and
# NoPE get twice the depth and five times the steps because at the coupled arm's budget they do
# not fit the training range (whether 15,000 steps are enough has not been measured yet).
_BASELINE = ArithmeticRun(digits=(1, 5), position="absolute", max_position=64, random_start=False, d_model=64,
                          n_layer=2, n_head=4, steps=15000, batch_size=64, lr=2e-3, warmup=200, min_lr_ratio=0.1)
PRESETS: dict[str, ArithmeticRun] = {
    "addition-coupled": ArithmeticRun(digits=(1, 5), position="coupled", max_position=20, d_model=64, n_layer=1,
                                      n_head=4, init="t5", steps=3000, batch_size=64, lr=3e-3, warmup=50),
    "addition-absolute": _BASELINE,
    "addition-nope": _BASELINE.replace(position="none", max_position=0),
    "multi-addition-multilevel": ArithmeticRun(
        digits=(1, 4), operands=(2, 6), scratchpad=True, position="multilevel", max_position=12,
        max_operand_position=14, d_model=64, n_layer=1, n_head=4, init="t5", steps=5000, batch_size=64, lr=3e-3,
        warmup=100, min_lr_ratio=0.1),
    # Multiplication with the partial-product scratchpad and three id streams; ``operands`` is the
    # multiplier's length (the number of partial products).
    "multiplication-multilevel": ArithmeticRun(
        operation="multiplication", digits=(1, 4), operands=(1, 4), position="multilevel", max_position=16,
        max_operand_position=8, d_model=64, n_layer=2, n_head=4, init="t5", steps=8000, batch_size=64, lr=3e-3,
        warmup=100, min_lr_ratio=0.1),
}
EVAL_GRIDS: dict[str, dict[str, Any]] = {
    "addition-coupled": {"digits": list(range(1, 19)), "operands": [2]},
    "addition-absolute": {"digits": list(range(1, 21)), "operands": [2]},
    "addition-nope": {"digits": list(range(1, 21)), "operands": [2]},
    "multi-addition-multilevel": {"digits": list(range(1, 9)), "operands": list(range(2, 11))},
    "multiplication-multilevel": {"digits": list(range(1, 8)), "operands": list(range(1, 7))},
}


def _git_commit() -> tuple[str, bool]:
    root = Path(__file__).resolve().parents[3]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--", "lib"], cwd=root, capture_output=True,
                                    text=True, check=True).stdout.strip())
        return head, dirty
    except (OSError, subprocess.CalledProcessError):
        return "unknown", True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hild.experiments.arithmetic", description=__doc__.split("\n")[0])
    parser.add_argument("preset", nargs="?", help="which run to train (see --list)")
    parser.add_argument("--out", default="book/length/checkpoints", help="folder for <preset>.pt and .json")
    parser.add_argument("--seed", type=int, default=None, help="override the preset's seed")
    parser.add_argument("--steps", type=int, default=None, help="override the preset's number of steps")
    parser.add_argument("--eval-n", type=int, default=100, help="test problems per grid cell for the provenance")
    parser.add_argument("--list", action="store_true", help="list the presets and exit")
    args = parser.parse_args(argv)
    if args.list or not args.preset:
        for name, run in PRESETS.items():
            print(f"{name:28s} {run}")
        return 0
    if args.preset not in PRESETS:
        parser.error(f"unknown preset {args.preset!r}: one of {sorted(PRESETS)}")
    run = PRESETS[args.preset]
    if args.seed is not None:
        run = run.replace(seed=args.seed)
    if args.steps is not None:
        run = run.replace(steps=args.steps)
    out = Path(args.out)
    final, resume = out / f"{args.preset}.pt", out / f"{args.preset}.train.pt"
    device = config.device()
    print(f"{args.preset}: {run}\n{config.describe()}", flush=True)
    model, history = train_run(run, checkpoint=resume, checkpoint_every=250, desc=args.preset)
    seconds = {"wall": history.last("wall_seconds"), "cpu": history.last("cpu_seconds")}
    grid = EVAL_GRIDS.get(args.preset, {"digits": list(range(1, run.digits[1] + 1)), "operands": [run.operands[0]]})
    scores: LengthScores = evaluate(model, run.task(), n=args.eval_n, seed=12345, **grid)
    commit, dirty = _git_commit()
    provenance = {
        "preset": args.preset,
        "command": "python -m hild.experiments.arithmetic " + " ".join(sys.argv[1:] if argv is None else argv),
        "git_commit": commit,
        "git_lib_dirty": dirty,
        "device": config.device_name(device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "seed": run.seed,
        "steps": history.steps[-1] if history.steps else 0,
        "training_seconds": {k: round(v, 1) for k, v in seconds.items()},
        "final_loss": history.last("loss") if "loss" in history else None,
        "run": run.to_dict(),
        "scores": {"n_per_cell": args.eval_n, "digits": grid["digits"], "operands": grid["operands"],
                   "exact": np.round(scores.exact, 3).tolist(), "token_acc": np.round(scores.token_acc, 3).tolist(),
                   "stops": np.round(scores.stops, 3).tolist()},
    }
    save_checkpoint(model, run, final, provenance)
    if resume.exists():
        resume.unlink()
    print(f"wrote {final} ({final.stat().st_size / 1e6:.2f} MB) and {final.with_suffix('.json')}; "
          f"{seconds['wall']:.0f} s wall, {seconds['cpu']:.0f} s CPU")
    for k, row in zip(grid["operands"], scores.exact):
        print(f"  {k} operands, exact match by length: " + " ".join(f"{v:.2f}" for v in row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
