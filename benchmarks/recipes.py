"""Benchmark: what each part of the modern recipe buys, on nanoGPT's CPU baby GPT (`baby` preset).

Every recipe trains the same `baby` shape on char tinyshakespeare with the same seed, so the same
batches in the same order; it prints, per recipe, the val loss over the whole val split at the last
step, the median ms per step (compilation, evals and checkpoints left out), and the wall clock to a
target val loss (the first periodic estimate at or under it, as steps x median step time). Figures,
never a pass or fail.

    python benchmarks/recipes.py                      # every recipe, 2000 steps each (about 35 min)
    python benchmarks/recipes.py --only gpt2,modern   # some of them
    python benchmarks/recipes.py --steps 200          # a quick look (losses not comparable)
    python benchmarks/recipes.py --timing             # only the step times, interleaved in one process

A loaded machine distorts each run's ms/step; `--timing` compares the recipes' steps in alternating
blocks in one process, so that a change of load hits them all alike, and prints each as a ratio.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baby import DEFAULT_TEXT, cpu_model, print_load  # noqa: E402

GPT2 = ["arch=gpt2", "optimizer=adamw"]
# name -> --set overrides on the `baby` preset (whose defaults are the modern family with Muon)
RECIPES = {
    "gpt2": GPT2,
    "gpt2-lr2e-3": GPT2 + ["learning_rate=2e-3", "min_lr=2e-4"],
    "+rope": GPT2 + ["rope=true"],
    "+relu2": GPT2 + ["relu2=true"],
    "+qk_norm": GPT2 + ["qk_norm=true"],
    "+rms_norm": GPT2 + ["rms_norm=true"],
    "modern-adamw": ["optimizer=adamw"],
    "modern-adamw-lr4e-3": ["optimizer=adamw", "learning_rate=4e-3", "min_lr=4e-4"],
    "gpt2+muon": ["arch=gpt2"],
    "modern+muon-ns5": ["muon_ns_steps=5"],
    "default": [],  # the preset as shipped: modern, Muon with 3 Newton-Schulz steps
}


def first_step_at(metrics: Path, target: float) -> int | None:
    for line in metrics.read_text().splitlines():
        row = json.loads(line)
        if "val_loss" in row and row["val_loss"] <= target:
            return row["step"]
    return None


def interleaved_step_ms(configs: dict, rounds: int = 12) -> dict[str, list[float]]:
    """ms per step of each config's compiled multi-step call, timed in alternating blocks of 3 calls."""
    import time

    import jax
    import numpy as np

    from jax_llm import parallel
    from jax_llm.train import build_engine

    runs = {}
    for name, cfg in configs.items():
        engine, k = build_engine(cfg), cfg.train.steps_per_call
        tokens = np.random.default_rng(0).integers(0, cfg.model.vocab_size, (k, 1, engine.rows, cfg.model.block_size))
        batches = parallel.to_global(engine.mesh, {"inputs": tokens.astype(np.int32), "targets": tokens.astype(np.int32)},
                                     batch_dim=2)
        steps = np.arange(1, k + 1, dtype=np.int32)
        engine.state, loss = engine.train_steps(engine.state, batches, jax.random.key(0), steps)  # compiles
        jax.block_until_ready(loss)
        runs[name] = (engine, batches, steps, [])
    for _ in range(rounds):
        for engine, batches, steps, times in runs.values():
            t0 = time.perf_counter()
            for _ in range(3):
                engine.state, loss = engine.train_steps(engine.state, batches, jax.random.key(0), steps)
            jax.block_until_ready(loss)
            times.append((time.perf_counter() - t0) / (3 * len(steps)) * 1000)
    return {name: times for name, (_, _, _, times) in runs.items()}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--text", type=Path, default=DEFAULT_TEXT, help="corpus (default: tinyshakespeare.txt)")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--only", default="", help="comma-separated recipe names (default: all): " + ", ".join(RECIPES))
    p.add_argument("--target", type=float, default=1.90, help="val loss for the wall-clock column (default: "
                   "1.90, about nanoGPT's own baby GPT at step 2000)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra overrides for every recipe")
    p.add_argument("--timing", action="store_true", help="only the step times, interleaved in one process")
    args = p.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or list(RECIPES)
    if unknown := [n for n in names if n not in RECIPES]:
        sys.exit(f"recipes.py: unknown recipe(s) {', '.join(unknown)} (choose from: {', '.join(RECIPES)})")

    import jax

    from jax_llm import data
    from jax_llm.config import make_config
    from jax_llm.pretrain import pretrain

    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs; {platform.platform()}; jax {jax.__version__}")
    print_load("at start")
    if args.timing:
        configs = {}
        for name in names:
            configs[name] = cfg = make_config("baby", [*RECIPES[name], *args.set])
            cfg.set("vocab_size", 65)  # tinyshakespeare's characters
            cfg.validate()
        times = interleaved_step_ms(configs)
        base = statistics.median(times[names[0]])
        print(f"| recipe | ms/step, median (min) | x {names[0]} |\n| --- | ---: | ---: |")
        for name, t in times.items():
            print(f"| {name} | {statistics.median(t):.1f} ({min(t):.1f}) | {statistics.median(t) / base:.2f} |")
        print_load("at end")
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tok, _ = data.prepare(args.text, Path(tmp) / "vocab", "char", 0, 0.1)
        for name in names:
            cfg = make_config("baby", [f"max_steps={args.steps}", "sample_tokens=0", "eval_interval=100",
                                       *RECIPES[name], *args.set])
            cfg.set("vocab_size", tok.get_vocab_size())
            cfg.validate()
            run = Path(tmp) / name
            result = pretrain(args.text, run, cfg, resume=False, quiet=True)
            med = statistics.median(result.fit.step_ms)
            hit = first_step_at(run / "metrics.jsonl", args.target)
            rows.append((name, result.final_val_loss, med, hit, hit and hit * med / 1000))
            print(f"  {name}: val {result.final_val_loss:.4f}, {med:.1f} ms/step, target at step {hit}", flush=True)
    print(f"\n{args.steps} steps, `baby` shape, whole val split; wall to val <= {args.target} = steps x median step")
    print(f"| recipe | val loss | ms/step | steps to {args.target} | s to {args.target} |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, loss, med, hit, secs in rows:
        print(f"| {name} | {loss:.4f} | {med:.1f} | {hit or '-'} | {f'{secs:.1f}' if secs else '-'} |")
    print_load("at end")


if __name__ == "__main__":
    main()
