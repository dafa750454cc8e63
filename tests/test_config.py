"""hild.config: scale parsing, seeding, step caps. Exact answers: fixed strings and equal draws."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import hild
from hild import config


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("HILD_")}
    full.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full, timeout=120)


def test_unknown_scale_is_a_clear_error():
    r = _run("import hild", HILD_SCALE="huge")
    assert r.returncode != 0
    assert "HILD_SCALE='huge' is not a scale of this book" in r.stderr
    assert "'ci'" in r.stderr and "'full'" in r.stderr


def test_scale_and_seed_from_environment():
    r = _run("import hild; print(hild.scale(), hild.seed(), hild.steps(100))",
             HILD_SCALE="FULL", HILD_SEED="3", HILD_MAX_STEPS="7")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["full", "3", "7"]


def test_default_scale_follows_cuda():
    r = _run("import hild, torch; print(hild.scale(), torch.cuda.is_available())")
    scale, cuda = r.stdout.split()
    assert scale == ("full" if cuda == "True" else "ci")


def test_bad_seed_is_a_clear_error():
    r = _run("import hild", HILD_SEED="zero")
    assert "HILD_SEED='zero' is not an integer" in r.stderr


def test_ci_scale_uses_one_thread():
    r = _run("import hild, torch; print(torch.get_num_threads())", HILD_SCALE="ci")
    assert r.stdout.strip() == "1"


def test_seed_everything_replays_draws():
    hild.seed_everything(5)
    a = (torch.rand(3), np.random.rand(3))
    assert hild.seed_everything(5) == 5
    b = (torch.rand(3), np.random.rand(3))
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_by_scale_and_steps():
    assert hild.by_scale(ci=1, full=2) == (2 if config.SCALE == "full" else 1)
    assert hild.steps(10) == (10 if config.MAX_STEPS is None else min(10, config.MAX_STEPS))
    with pytest.raises(ValueError, match="non-negative"):
        hild.steps(-1)


def test_report_writes_json_lines(tmp_path, monkeypatch):
    out = tmp_path / "r.jsonl"
    monkeypatch.setenv("HILD_REPORT", str(out))
    hild.report(ratio=np.float64(0.5), steps=torch.tensor(3), label="x")
    hild.report(other=float("inf"))
    lines = out.read_text().splitlines()
    assert len(lines) == 2
    import json

    first = json.loads(lines[0])
    assert first["numbers"] == {"ratio": 0.5, "steps": 3, "label": "x"}
    assert json.loads(lines[1])["numbers"] == {"other": "inf"}
    with pytest.raises(TypeError, match="report\\(\\) takes numbers"):
        hild.report(bad=object())


def test_device_name_names_the_cpu_model():
    name = config.device_name("cpu")
    assert name.startswith("CPU (") and name.endswith(")") and len(name) > len("CPU ()")
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            model = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), None)
        if model:
            assert name == f"CPU ({model})"
