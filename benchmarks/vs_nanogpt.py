"""Benchmark: wall clock to nanoGPT's own val loss, side by side with nanoGPT's own `train.py`.

Runs a nanoGPT checkout's `train.py` as its README runs the CPU "baby GPT" (config/train_shakespeare_char.py
with --device=cpu --compile=False, 4 layers, 4 heads, 128 wide, block 64, batch 12, 2000 iterations,
no dropout), then jax-llm's `baby` preset (the default recipe) on the same text, in one run of this script.
Target: nanoGPT's val loss at its last eval. For each: the median ms per step (evals left out), the
first eval step at or under the target, and the wall clock to it as steps x median step. Prints the
ratio; never fails on it.

    python benchmarks/vs_nanogpt.py --nanogpt ~/src/nanoGPT    # its data/shakespeare_char prepared
    python benchmarks/vs_nanogpt.py --nanogpt DIR --set optimizer=muon

nanoGPT is not a dependency and none of its code is here: clone it, run its
data/shakespeare_char/prepare.py (it reads input.txt: tinyshakespeare), and name the folder.
"""

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baby import DEFAULT_TEXT, cpu_model, print_load  # noqa: E402
from recipes import first_step_at  # noqa: E402

EVAL_INTERVAL = 100
NANOGPT_ARGS = ["config/train_shakespeare_char.py", "--device=cpu", "--compile=False", "--eval_iters=20",
                "--log_interval=1", "--block_size=64", "--batch_size=12", "--n_layer=4", "--n_head=4",
                "--n_embd=128", "--lr_decay_iters=2000", "--dropout=0.0", f"--eval_interval={EVAL_INTERVAL}",
                "--always_save_checkpoint=False"]


def run_nanogpt(folder: Path, steps: int, out: Path) -> tuple[list[float], dict[int, float]]:
    """(ms of each logged iteration but the first few and the evals', {eval step: val loss})."""
    cmd = [sys.executable, "train.py", *NANOGPT_ARGS, f"--max_iters={steps}", f"--out_dir={out}"]
    proc = subprocess.run(cmd, cwd=folder, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"vs_nanogpt.py: nanoGPT's train.py failed: {proc.stderr.strip().splitlines()[-1:]}")
    iters = {int(i): float(ms) for i, ms in re.findall(r"iter (\d+): loss [\d.]+, time ([\d.]+)ms", proc.stdout)}
    vals = {int(s): float(v) for s, v in re.findall(r"step (\d+): train loss [\d.]+, val loss ([\d.]+)", proc.stdout)}
    ms = [t for i, t in iters.items() if i > 5 and i % EVAL_INTERVAL != 0]  # an eval's time lands on its step
    return ms, vals


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nanogpt", type=Path, required=True, help="a nanoGPT checkout, shakespeare_char prepared")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="overrides for jax-llm's run")
    args = p.parse_args(argv)
    if not (args.nanogpt / "train.py").is_file() or not (args.nanogpt / "data/shakespeare_char/train.bin").is_file():
        sys.exit(f"vs_nanogpt.py: {args.nanogpt} is not a nanoGPT checkout with data/shakespeare_char prepared")

    import jax
    import torch

    from jax_llm.config import make_config
    from jax_llm.pretrain import pretrain

    print(f"machine: {cpu_model()}; jax {jax.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads)")
    print_load("at start")
    with tempfile.TemporaryDirectory() as tmp:
        ms, vals = run_nanogpt(args.nanogpt, args.steps, Path(tmp) / "nanogpt")
        target = vals[max(vals)]
        ng_ms = statistics.median(ms)
        print(f"nanoGPT train.py: val {target:.4f} at step {max(vals)}, median {ng_ms:.1f} ms/step "
              f"(min {min(ms):.1f}), {max(vals) * ng_ms / 1000:.1f} s of steps")
        cfg = make_config("baby", [f"max_steps={args.steps}", f"eval_interval={EVAL_INTERVAL}", "sample_tokens=0",
                                   *args.set])
        run = Path(tmp) / "jax"
        result = pretrain(DEFAULT_TEXT, run, cfg, resume=False, quiet=True)
        ours_ms = statistics.median(result.fit.step_ms)
        hit = first_step_at(run / "metrics.jsonl", target)
    print(f"jax-llm baby ({' '.join(args.set) or 'default recipe'}): whole-split val {result.final_val_loss:.4f} at "
          f"step {args.steps}, median {ours_ms:.1f} ms/step ({ours_ms / ng_ms:.2f}x nanoGPT's step)")
    if hit is None:
        print(f"jax-llm did not reach val {target:.4f} in {args.steps} steps")
    else:
        ours_s, theirs_s = hit * ours_ms / 1000, max(vals) * ng_ms / 1000
        print(f"wall clock to val <= {target:.4f}: nanoGPT {theirs_s:.1f} s ({max(vals)} steps), jax-llm {ours_s:.1f} s "
              f"({hit} steps): {theirs_s / ours_s:.2f}x shorter")
    print_load("at end")


if __name__ == "__main__":
    main()
