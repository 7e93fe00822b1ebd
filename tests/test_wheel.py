"""Installed as users install it: a wheel built from the repository, in a fresh virtual environment, runs the
README's first commands with no network, no corpus mirror and an empty cache, outside the repository.

The wheel's dependencies (JAX and the rest) come from the running environment through a `.pth` file, so
nothing is downloaded; jax_llm itself can only come from the wheel (the test checks `jax_llm.__file__`).
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from helpers import TINY_SETS
from jax_llm.datasets import DATASETS

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


def repository_files() -> list[str]:
    """What git would commit: tracked files and untracked ones it does not ignore."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    return [f for f in out.split("\0") if f and (REPO / f).is_file()]


def build_wheel(files: list[str], tmp: Path) -> Path:
    """`pip wheel` on a copy of the repository (the build writes build/ and *.egg-info beside its source)."""
    src = tmp / "source"
    for f in files:
        (src / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / f, src / f)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                        "-w", str(tmp / "wheels"), str(src)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    (wheel,) = (tmp / "wheels").glob("jax_llm-*.whl")
    return wheel


def fresh_venv(wheel: Path, venv: Path) -> Path:
    """A new environment holding the wheel; the running one's site-packages lent for the dependencies."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    lent = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (Path(site) / "dependencies-from-the-test-runner.pth").write_text("".join(f"{p}\n" for p in lent))
    r = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
                        str(wheel)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return python


def test_wheel_runs_the_first_commands_offline(tmp_path, offline):
    files = repository_files()
    wheel = build_wheel(files, tmp_path)
    packaged = set(zipfile.ZipFile(wheel).namelist())
    package_files = [f.removeprefix("src/") for f in files if f.startswith("src/jax_llm/")]
    assert set(package_files) <= packaged, sorted(set(package_files) - packaged)  # the page, the text, the code

    venv = tmp_path / "venv"
    python = fresh_venv(wheel, venv)
    env = {k: v for k, v in offline.env.items() if k != "PYTHONPATH"}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    user = tmp_path / "user"  # the working directory: outside the repository
    user.mkdir()

    def run(*command, stdin=None):
        r = subprocess.run(command, cwd=user, env=env, input=stdin, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, (command, r.stderr[-3000:])
        return r

    where = run(python, "-c", "import jax_llm; print(jax_llm.__file__)").stdout.strip()
    assert Path(where).is_relative_to(venv), where

    sets = [a for s in TINY_SETS for a in ("--set", s)]
    run("jax-llm", "train", "--out", "runs/x", "--max-steps", "3", "--tokenizer", "char", "--quiet", *sets)
    source = json.loads((user / "runs" / "x" / "tokens.json").read_text())
    assert source["source_sha256"] == DATASETS["tinyshakespeare"].sha256
    assert (user / "runs" / "x" / "checkpoints" / "3").is_dir()
    assert offline.requests == []  # the embedded text, not a download
    assert len(run("jax-llm", "generate", "runs/x", "--max-new-tokens", "20").stdout) > 10

    typed = run("jax-llm", "ime", "type", stdin="whisina na\n")
    assert typed.stdout.splitlines() == ["what is in a name"]
    assert [r.split()[1].split(":")[0] for r in offline.requests] == ["ocw.mit.edu"]  # shakespeare, refused
    print(f"{where}\n{typed.stderr}{typed.stdout}")
