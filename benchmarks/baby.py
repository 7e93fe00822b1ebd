"""Benchmark: nanoGPT's CPU "baby GPT" (`baby` preset) on tinyshakespeare, through the real engine.

Prints the machine, compile time, ms per training step and tokens/s after compilation, the val loss over
the whole val split at the last step, and KV-cache generation speed against full recomputation.
It prints figures and never fails on them.

    python benchmarks/baby.py                 # the full run: 2000 steps
    python benchmarks/baby.py --steps 200     # a quick look at the speed (the loss is not comparable)

Timings on a shared machine are noisy: the load average and the busiest other processes are printed.
"""

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TEXT = Path(os.environ.get("JAX_LLM_DATA_DIR", REPO.parent / "shared" / "data")) / "tinyshakespeare.txt"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def busy_processes(n: int = 5) -> list[str]:
    """The other processes using the most CPU right now (ps), as 'pcpu% command'."""
    try:
        out = subprocess.run(["ps", "-eo", "pid,pcpu,args", "--sort=-pcpu"], capture_output=True, text=True,
                             timeout=10).stdout.splitlines()[1:]
    except (OSError, subprocess.SubprocessError):
        return []
    rows = []
    for line in out:
        pid, pcpu, args = line.split(None, 2)
        if int(pid) != os.getpid() and float(pcpu) >= 5.0:
            rows.append(f"{float(pcpu):5.1f}% {args[:100]}")
    return rows[:n]


def print_load(when: str) -> None:
    one, five, fifteen = os.getloadavg()
    print(f"load average {when}: {one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} CPUs)")
    for row in busy_processes():
        print(f"  busy: {row}")


def compile_time(cfg) -> float:
    """Seconds to trace, lower and compile the engine's multi-step call (the one `fit` runs)."""
    import jax
    import numpy as np

    from jax_llm import parallel
    from jax_llm.train import build_engine

    engine = build_engine(cfg)
    k = cfg.train.steps_per_call
    zeros = np.zeros((k, cfg.train.grad_accum, engine.rows, cfg.model.block_size), np.int32)
    batches = parallel.to_global(engine.mesh, {"inputs": zeros, "targets": zeros}, batch_dim=2)
    t0 = time.perf_counter()
    engine.train_steps.lower(engine.state, batches, jax.random.key(0), np.arange(k, dtype=np.int32)).compile()
    return time.perf_counter() - t0


def generation_speed(model, prompt: list[int], new_tokens: int, repeats: int) -> dict:
    """Best and median tokens/s of `generate` with and without the KV cache (after a warm-up run each)."""
    from jax_llm.sample import generate

    result = {}
    for use_cache in (True, False):
        generate(model, prompt, new_tokens, seed=0, use_cache=use_cache)  # compiles every shape it needs
        rates = []
        for r in range(repeats):
            t0 = time.perf_counter()
            generate(model, prompt, new_tokens, seed=r, use_cache=use_cache)
            rates.append(new_tokens / (time.perf_counter() - t0))
        result["cache" if use_cache else "recompute"] = (max(rates), statistics.median(rates))
    return result


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--text", type=Path, default=DEFAULT_TEXT, help="corpus (default: tinyshakespeare.txt)")
    p.add_argument("--steps", type=int, default=2000, help="training steps (the preset's 2000 by default)")
    p.add_argument("--out", type=Path, help="run directory to keep (default: a temporary one)")
    p.add_argument("--new-tokens", type=int, default=256, help="tokens generated per timing run")
    p.add_argument("--gen-repeats", type=int, default=3, help="timed generation runs per mode")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra config overrides")
    args = p.parse_args(argv)

    import flax
    import jax

    from jax_llm import data
    from jax_llm.config import make_config
    from jax_llm.pretrain import load_run, pretrain

    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs; {platform.platform()}")
    print(f"python {platform.python_version()}, jax {jax.__version__}, flax {flax.__version__}, "
          f"devices {jax.devices()}, XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
    print_load("at start")

    cfg = make_config("baby", [f"max_steps={args.steps}", "sample_tokens=0", *args.set])
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = args.out or Path(tmp) / "run"
        tok, _ = data.prepare(args.text, Path(tmp) / "vocab", "char", 0, cfg.data.val_fraction)
        cfg.set("vocab_size", tok.get_vocab_size())
        print(f"compile time of the train step: {compile_time(cfg):.2f} s")

        t0 = time.perf_counter()
        result = pretrain(args.text, run_dir, cfg, resume=False, quiet=True)
        wall = time.perf_counter() - t0
        tokens_per_step, ms = result.fit.tokens_per_step, result.fit.step_ms
        med = statistics.median(ms)
        print(f"training: {args.steps} steps of {tokens_per_step} tokens in {wall:.1f} s wall "
              f"(with compilation, periodic eval and checkpoints)")
        print(f"ms per training step after compilation ({cfg.train.steps_per_call} steps per call; evals and "
              f"checkpoints left out): median {med:.1f}, min {min(ms):.1f}, max {max(ms):.1f}")
        print(f"training tokens/s: {tokens_per_step / med * 1000:,.0f} at the median step, "
              f"{tokens_per_step / min(ms) * 1000:,.0f} at the fastest")
        print(f"val loss at step {args.steps} over the whole val split: {result.final_val_loss:.4f} "
              f"({result.final_val_bpb:.4f} bits per byte)"
              + ("" if args.steps == 2000 else " (a short run: not comparable with the 2000-step figure)"))

        _, tok, model, _ = load_run(run_dir)
        prompt = tok.encode("\n").ids
        gen = generation_speed(model, prompt, args.new_tokens, args.gen_repeats)
        (cb, cm), (rb, rm) = gen["cache"], gen["recompute"]
        print(f"generation of {args.new_tokens} new tokens (block {cfg.model.block_size}, batch 1): "
              f"KV cache {cm:,.0f} tokens/s (best {cb:,.0f}), full recomputation {rm:,.0f} tokens/s "
              f"(best {rb:,.0f}): speed-up {cm / rm:.2f}x (median)")
    print_load("at end")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
