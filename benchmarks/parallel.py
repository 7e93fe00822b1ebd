"""Benchmark: data parallelism through the real engine, on simulated CPU devices.

1. Step time and tokens/s against device count (1, 2, 4), replicated and with fsdp, for the `baby`
   shapes at a fixed global batch of 12 rows. Simulated devices share this machine's cores, so on a
   2-core machine this measures the overhead of splitting the step (partitioning, collectives), not
   a speed-up: the same work is done either way.
2. Per-device bytes of parameters + AdamW state for `gpt2-124m` on 1..8 devices, with and without
   fsdp, from abstract shapes and the shardings the engine uses (nothing of that size is allocated),
   checked against XLA's own memory analysis of the compiled, sharded initialisation.

    python benchmarks/parallel.py [--steps 30]

Prints figures and never fails on them. No GPU figures: none was available when this was written.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("JAX_LLM_DATA_DIR", REPO.parent / "shared" / "data")) / "tinyshakespeare.txt"
GLOBAL_ROWS = 12  # the baby preset's batch, split over the devices


def in_subprocess(devices: int, steps: int, *args) -> dict:
    """Run this file's worker on `devices` simulated CPU devices (XLA reads the flag when JAX starts)."""
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu")
    r = subprocess.run([sys.executable, __file__, "--steps", str(steps), "--worker", *map(str, args)], env=env, capture_output=True,
                       text=True, check=False)
    if r.returncode:
        sys.exit(r.stderr[-3000:])
    return json.loads(r.stdout.splitlines()[-1])


def time_steps(fsdp: bool, steps: int) -> dict:
    import jax
    import numpy as np
    from jax_llm import data, parallel
    from jax_llm.config import make_config
    from jax_llm.train import build_engine

    cfg = make_config("baby", [f"batch_size={GLOBAL_ROWS // jax.device_count()}", f"fsdp={fsdp}"])
    cfg.set("vocab_size", 256)  # bytes of the text: close to the char vocabulary's cost
    engine = build_engine(cfg)
    stream = data.lm_streams(np.frombuffer(DATA.read_bytes()[:1_000_000], np.uint8))
    block, key = cfg.model.block_size, jax.random.key(0)
    times = []
    for step in range(1, steps + 4):  # the first three are compilation and warm-up
        starts = data.random_starts(stream, block, 0, step, (1, engine.rows))
        batch = parallel.to_global(engine.mesh, data.gather(stream, starts, block), batch_dim=1)
        t0 = time.perf_counter()
        engine.state, loss = engine.train_step(engine.state, batch, key)
        loss.block_until_ready()
        times.append(time.perf_counter() - t0)
    ms = [1000 * t for t in times[3:]]
    return {"min": min(ms), "median": statistics.median(ms), "max": max(ms),
            "tokens_per_s": engine.rows * block / (statistics.median(ms) / 1000)}


def memory(max_devices: int) -> list[dict]:
    import jax
    from jax_llm import parallel
    from jax_llm.config import make_config
    from jax_llm.optim import make_optimizer
    from jax_llm.train import state_init

    cfg = make_config("gpt2-124m")
    cfg.set("vocab_size", cfg.data.bpe_vocab_size)
    init = state_init(cfg, make_optimizer(cfg.train))
    abstract = jax.eval_shape(init)
    n_params = sum(x.size for x in jax.tree.leaves(abstract["params"]))
    rows = []
    for n in (1, 2, 4, 8):
        if n > max_devices:
            break
        mesh = parallel.make_mesh(jax.devices()[:n])
        for fsdp in (False, True) if n > 1 else (False,):
            shardings = parallel.tree_shardings(mesh, abstract, fsdp)
            compiled = jax.jit(init, out_shardings=shardings).lower().compile()
            rows.append({"devices": n, "fsdp": fsdp, "params": n_params,
                         "params_bytes": parallel.bytes_per_device(abstract["params"], shardings["params"]),
                         "state_bytes": parallel.bytes_per_device(abstract, shardings),
                         "xla_output_bytes": compiled.memory_analysis().output_size_in_bytes})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30, help="timed steps per configuration")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        what, arg = args.worker
        result = time_steps(arg == "True", args.steps) if what == "steps" else memory(int(arg))
        print(json.dumps(result))
        return

    load = os.getloadavg()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores; load average {load[0]:.2f} at start")
    print(f"\nbaby shapes, global batch {GLOBAL_ROWS} x 64 tokens, {args.steps} timed steps, simulated CPU devices "
          f"(they share the cores: this is overhead, not speed-up)")
    print(f"{'devices':>7} {'fsdp':>5} {'ms/step min':>11} {'median':>7} {'max':>7} {'tokens/s':>9}")
    for n in (1, 2, 4):
        for fsdp in (False, True) if n > 1 else (False,):
            r = in_subprocess(n, args.steps, "steps", fsdp)
            print(f"{n:>7} {str(fsdp):>5} {r['min']:>11.1f} {r['median']:>7.1f} {r['max']:>7.1f} "
                  f"{r['tokens_per_s']:>9,.0f}")

    print("\ngpt2-124m: per-device memory of fp32 parameters + AdamW state (abstract shapes; XLA's figure is the "
          "compiled, sharded initialisation's output per device)")
    print(f"{'devices':>7} {'fsdp':>5} {'params MiB':>10} {'params+opt MiB':>14} {'XLA MiB':>8}")
    for r in in_subprocess(8, args.steps, "memory", 8):
        print(f"{r['devices']:>7} {str(r['fsdp']):>5} {r['params_bytes'] / 2**20:>10.1f} "
              f"{r['state_bytes'] / 2**20:>14.1f} {r['xla_output_bytes'] / 2**20:>8.1f}")
    print(f"({r['params'] / 1e6:.1f}M parameters; activations and gradients come on top and depend on the batch)")
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}. No GPU was available: no GPU figures.")


if __name__ == "__main__":
    main()
