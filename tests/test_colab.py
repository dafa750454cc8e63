"""Colab never breaks: every chapter's notebook runs in a Colab-like environment.

A fresh virtual environment gets only what Colab already has (torch, numpy, scipy, matplotlib,
scikit-learn, ipywidgets, tqdm, pyyaml, ipykernel), not ``hild``. Then:

* ``test_setup_cell_installs_hild_and_keeps_torch``: a chapter's own set-up cell installs ``hild``
  from the repository URL written in ``_config.yml`` (redirected by git's ``insteadOf`` to a
  snapshot of this working tree, since CI has no route to GitHub: pip clones it and builds the
  wheel exactly as in Colab), and torch's version is the same afterwards.
* ``test_chapter_runs_in_colab_at_full_scale``: every chapter runs top to bottom in that kernel at
  ``HILD_SCALE=full`` with ``HILD_MAX_STEPS=2``, i.e. a Colab GPU user's path, on a CPU, with every
  loop capped at two steps and the downloads replaced by stand-ins. The claim check (the cell
  tagged ``claim``) is left out: two steps prove nothing about the claim; nbval checks it at ci
  scale. This also keeps the full-scale path from rotting on machines without a GPU.

The environment is cached in ``_build/colab-venv`` (rebuilt when requirements.txt changes).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from hild.book.notebooks import BookInfo, chapter_sources

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / "_build" / "colab-venv"
CHAPTERS = chapter_sources(ROOT)
# What Colab has preinstalled (versions from requirements.txt when pinned there).
COLAB_HAS = ["torch", "numpy", "scipy", "matplotlib", "scikit-learn", "ipywidgets", "ipykernel", "tqdm", "pyyaml"]
KERNEL = "colab-like"


def _pins() -> list[str]:
    pinned = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            pinned[name.strip().lower()] = f"{name.strip()}=={version.strip()}"
    return [pinned.get(p, p) for p in COLAB_HAS]


def _python() -> Path:
    return VENV / "bin" / "python"


def _venv_torch() -> str:
    r = subprocess.run([str(_python()), "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


@pytest.fixture(scope="module")
def colab_env(tmp_path_factory):
    pins = _pins()
    stamp = hashlib.sha256("\n".join(pins).encode()).hexdigest()[:16]
    marker = VENV / ".colab-stamp"
    if not (marker.exists() and marker.read_text() == stamp):
        shutil.rmtree(VENV, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(_python()), "-m", "pip", "install", "-q", *pins], check=True)
        marker.write_text(stamp)
    spec = VENV / "share" / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(_python()), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Colab-like", "language": "python"}))

    # A git snapshot of this working tree, standing in for the GitHub repository.
    snap = tmp_path_factory.mktemp("repo")
    for name in ("lib", "pyproject.toml", "README.md", "_config.yml"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, snap / name, **(
            {"ignore": shutil.ignore_patterns("__pycache__", "*.egg-info")} if src.is_dir() else {}))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(snap)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "snapshot"], check=True)
    gitconfig = tmp_path_factory.mktemp("git") / "config"
    url = BookInfo.load(ROOT).repository_url
    gitconfig.write_text(f'[url "file://{snap}"]\n\tinsteadOf = {url}\n')

    env = {"GIT_CONFIG_GLOBAL": str(gitconfig), "JUPYTER_PATH": str(VENV / "share" / "jupyter"),
           "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    subprocess.run([str(_python()), "-m", "pip", "uninstall", "-q", "-y", "hild"], capture_output=True)
    yield _venv_torch()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _run(nb, cwd: Path, env: dict[str, str], monkeypatch) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)  # the kernel inherits this process's environment
    NotebookClient(nb, timeout=300, kernel_name=KERNEL, resources={"metadata": {"path": str(cwd)}}).execute()


def test_setup_cell_installs_hild_and_keeps_torch(colab_env, monkeypatch):
    md = ROOT / "book" / "minimax" / "alternating-gda.md"
    nb = nbformat.read(md.with_suffix(".ipynb"), as_version=4)
    nb.cells = [c for c in nb.cells if "setup" in c.metadata.get("tags", [])]
    _run(nb, md.parent, {"HILD_SCALE": "ci"}, monkeypatch)
    out = "".join(o.get("text", "") for o in nb.cells[0].outputs)
    assert "scale=ci" in out, out
    r = subprocess.run([str(_python()), "-m", "pip", "show", "hild"], capture_output=True, text=True)
    assert r.returncode == 0 and "Location" in r.stdout, "the set-up cell did not install hild"
    assert _venv_torch() == colab_env, "installing hild changed torch"


@pytest.mark.parametrize("md", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_runs_in_colab_at_full_scale(colab_env, md, monkeypatch):
    nb = nbformat.read(md.with_suffix(".ipynb"), as_version=4)
    nb.cells = [c for c in nb.cells if "claim" not in c.metadata.get("tags", [])]
    try:
        _run(nb, md.parent, {"HILD_SCALE": "full", "HILD_MAX_STEPS": "2", "HILD_PROGRESS": "0"}, monkeypatch)
    except CellExecutionError as exc:
        pytest.fail(f"{md.name} fails in the Colab-like kernel at full scale (HILD_MAX_STEPS=2):\n{str(exc)[-3000:]}")
    setup = "".join(o.get("text", "") for c in nb.cells if "setup" in c.metadata.get("tags", [])
                    for o in c.get("outputs", []))
    assert "scale=full" in setup and "steps capped at 2" in setup
    assert _venv_torch() == colab_env
