"""What several test files share: the command, small configs and corpora, reading a run back. (Imported as
`helpers`: pytest puts tests/ on the path.)"""

import os
import signal
import subprocess
import sys
from pathlib import Path

from jax_llm.metrics import read_metrics

JAX_LLM = [sys.executable, "-m", "jax_llm"]  # the command, in a child process (this checkout's code)
PHRASE = "first two character input method"  # spliced into the input method's test corpus (tests/ime/conftest.py)

# A model small enough to train a few steps in seconds on 2 CPU cores.
# AdamW's 3e-3 (the embedding and head; Muon takes the blocks): at the default 1e-3 the near-zero head of the
# modern family takes most of a 40-step run to grow, and the tests want a loss that visibly falls.
TINY_SETS = ["n_layer=2", "n_head=2", "n_embd=32", "block_size=32", "batch_size=4", "eval_interval=10",
             "eval_batches=2", "log_interval=1", "ckpt_interval=10", "warmup_steps=5", "sample_tokens=0",
             "learning_rate=3e-3", "min_lr=3e-4"]


def tiny_args(text: Path, out: Path, steps: int, *extra: str) -> list[str]:
    args = ["train", str(text), "--out", str(out), "--tokenizer", "char", "--max-steps", str(steps), "--quiet"]
    for s in TINY_SETS + list(extra):
        args += ["--set", s]
    return args


def cut_corpus(data_dir: Path, dest: Path, n_bytes: int = 60_000) -> Path:
    dest.write_bytes((data_dir / "tinyshakespeare.txt").read_bytes()[:n_bytes])
    return dest


def interruptible():
    """In the child: Ctrl-C delivered as at a terminal, even when pytest itself was started in the background
    (a shell's `&` starts it with SIGINT ignored, and children inherit that)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_cli(args, fault=None, **kw):
    """`jax-llm ARGS` in a child process, its output captured; `fault` sets JAX_LLM_FAULT for it."""
    if fault:
        kw["env"] = {**os.environ, "JAX_LLM_FAULT": fault}
    return subprocess.run([*JAX_LLM, *args], capture_output=True, text=True, timeout=600, preexec_fn=interruptible,
                          **kw)


def losses(run_dir):
    """{step: training loss} from a run's metrics.jsonl."""
    return {r["step"]: r["loss"] for r in read_metrics(run_dir / "metrics.jsonl") if "loss" in r}


def snapshot(run_dir):
    """Every file of a run directory with its bytes, to show that a refusal changed nothing."""
    return {p.relative_to(run_dir): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}
