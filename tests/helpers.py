"""Small configs and corpora shared by the core tests."""

from pathlib import Path

# A model small enough to train a few steps in seconds on 2 CPU cores.
TINY_SETS = ["n_layer=2", "n_head=2", "n_embd=32", "block_size=32", "batch_size=4", "eval_interval=10",
             "eval_batches=2", "log_interval=1", "ckpt_interval=10", "warmup_steps=5", "sample_tokens=0"]


def tiny_args(text: Path, out: Path, steps: int, *extra: str) -> list[str]:
    args = ["train", str(text), "--out", str(out), "--tokenizer", "char", "--max-steps", str(steps), "--quiet"]
    for s in TINY_SETS + list(extra):
        args += ["--set", s]
    return args


def cut_corpus(data_dir: Path, dest: Path, n_bytes: int = 60_000) -> Path:
    dest.write_bytes((data_dir / "tinyshakespeare.txt").read_bytes()[:n_bytes])
    return dest
