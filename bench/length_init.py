"""Ablation: how the initialisation and the number of heads change length generalization in the
position-coupling chapter's ci run.

    python bench/length_init.py                  # 4 settings x seeds 0-4, two processes (about 3 min)
    python bench/length_init.py --seeds 0-9 --jobs 2
    python bench/length_init.py --smoke          # 20 steps, 10 test problems: a test of the script

Every setting trains the chapter's coupled model (1 layer, d = 64, 1-5 digit additions, ids up to
20, AdamW 3e-3 with warm-up and cosine decay, batch 64) on the same batches per seed and scores
greedy decoding on the same 200 problems per length, ids starting at 1. Settings:

* ``gpt2``: every weight N(0, 0.02²) (GPT-2 / nanoGPT), the chapter's first version;
* ``t5``: embeddings N(0, 1), linear layers N(0, 1/fan_in), as in the official code of Cho et
  al. (a T5 decoder);

each with 2 heads (the spec's prototype) and 4 (the official code's addition runs). The table goes
to ``bench/results/length-init-cpu.md``: per setting, the min-max over seeds of exact match on the
trained lengths (1-5 digits) and at 6 digits, of digit accuracy at 10 and 15 digits, and of the
share of the trained position table's variance in its top three principal components (how close
to a low-dimensional curve the learned ids lie).
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

SETTINGS = {  # name: (init, heads, steps)
    "gpt2, 2 heads, 1400 steps": ("gpt2", 2, 1400),
    "gpt2, 4 heads, 2000 steps": ("gpt2", 4, 2000),
    "t5, 2 heads, 2000 steps": ("t5", 2, 2000),
    "t5, 4 heads, 2000 steps": ("t5", 4, 2000),
}
DIGITS = (1, 2, 3, 4, 5, 6, 10, 15)


def one(args: tuple[str, int, bool]) -> tuple[str, int, dict[str, float], float]:
    name, seed, smoke = args
    os.environ.update(OMP_NUM_THREADS="1", HILD_PROGRESS="0")
    import torch

    torch.set_num_threads(1)
    from hild.data import arithmetic as arith
    from hild.experiments import arithmetic as recipe

    init, heads, steps = SETTINGS[name]
    run = recipe.ArithmeticRun(digits=(1, 5), position="coupled", max_position=20, d_model=64, n_layer=1,
                               n_head=heads, init=init, steps=20 if smoke else steps, batch_size=64, lr=3e-3,
                               warmup=50, seed=seed)
    t0 = time.process_time()
    model, _ = recipe.train_run(run)
    seconds = time.process_time() - t0
    s = arith.evaluate(model, run.task(), digits=DIGITS, n=10 if smoke else 200, seed=1000 + seed)
    table = model.pos_emb[0].weight.detach()[1:]  # the ids of digits and separators (0 is '$')
    sv = torch.linalg.svdvals(table - table.mean(0))
    top3 = float((sv[:3] ** 2).sum() / (sv**2).sum())
    return name, seed, {"in range": s.mean(range(1, 6)), "exact 6": s.at(6),
                        "digits 10": s.at(10, metric="token_acc"), "digits 15": s.at(15, metric="token_acc"),
                        "table top-3 PCs": top3}, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0-4", help="e.g. 0-4 or 0,3,9")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="tiny run, nothing written")
    args = parser.parse_args()
    from hild import config
    from hild.book.seeds import parse_seeds

    seeds = parse_seeds(args.seeds)
    jobs = [(name, seed, args.smoke) for name in SETTINGS for seed in seeds]
    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(pool.map(one, jobs))
    cols = ["in range", "exact 6", "digits 10", "digits 15", "table top-3 PCs"]
    lines = [
        "# Position coupling at ci scale: initialisation and heads",
        "",
        f"`python bench/length_init.py --seeds {args.seeds}` on {config.device_name('cpu')}, "
        f"one thread per run, {time.strftime('%Y-%m-%d')}. Min-max over seeds {args.seeds}; exact match on "
        "1-5 digits (mean) and 6 digits, digit accuracy at 10 and 15 digits; 200 test problems per length, "
        "ids starting at 1. \"table top-3 PCs\": the share of the (centred) position table's variance, ids "
        "1-20, in its top 3 principal components (a random table: about 0.3). CPU seconds: training only.",
        "",
        "| setting | " + " | ".join(cols) + " | per-seed worst case | CPU s |",
        "|---|" + "---|" * (len(cols) + 2),
    ]
    for name in SETTINGS:
        rows = [r for r in results if r[0] == name]
        cells = [f"{min(r[2][c] for r in rows):.2f}-{max(r[2][c] for r in rows):.2f}" for c in cols]
        worst = min(rows, key=lambda r: r[2]["in range"])
        secs = [r[3] for r in rows]
        lines.append(f"| {name} | " + " | ".join(cells)
                     + f" | seed {worst[1]}: in range {worst[2]['in range']:.2f} | {min(secs):.0f}-{max(secs):.0f} |")
    lines += ["", "Per seed:", "", "| setting | seed | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    for name, seed, v, _ in results:
        lines.append(f"| {name} | {seed} | " + " | ".join(f"{v[c]:.2f}" for c in cols) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.smoke:
        out = Path(__file__).parent / "results" / "length-init-cpu.md"
        out.write_text(text, encoding="utf-8")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
