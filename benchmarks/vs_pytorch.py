"""Benchmark: jax-llm's training step against the same `baby` GPT in plain PyTorch, in one process.

Both frameworks train the `baby` preset on the same token file, from the same initial weights (jax-llm's,
copied into the PyTorch model), on the same batches (step s reads the windows `train.fit` gives step s),
with the same AdamW, clipping and learning-rate schedule. They run in alternating blocks of steps
(jax, torch, jax, torch...) so that a change of load on the machine hits both. Prints the machine, the
load, ms per step (median and min over the blocks), CPU user and system time per step, and the losses of
both; then the same at one thread, in a child process.

    python benchmarks/vs_pytorch.py                         # 10 blocks of 50 steps, at 2 threads then 1
    python benchmarks/vs_pytorch.py --threads 2 --blocks 4  # a quicker look, without the one-thread run

Needs PyTorch: pip install -e ".[hf]". It prints figures and never fails on them.
"""

import argparse
import collections
import copy
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baby import DEFAULT_TEXT, cpu_model, print_load  # noqa: E402  (benchmarks/ is not a package)

# XLA:CPU sizes its intra-op thread pool ("XLAEigen") from NPROC when it is set, else from the CPUs the
# process may run on (xla::DefaultThreadPoolSize); it must be in the environment before the CPU client
# starts. NPROC=1 alone is enough: one tf_XLAEigen thread, and about 1.0 core busy during jax-llm's blocks
# (printed below), against 1.7 at NPROC=2. No XLA flag is needed (--xla_cpu_multi_thread_eigen only
# concerns Eigen's matmul calls, not the pool XLA:CPU runs its other parallel work on).
ONE_THREAD_ENV = {"NPROC": "1", "OMP_NUM_THREADS": "1"}


# ----------------------------------------------------------------------------------------------------
# jax-llm's side: kept in one function, which is all a change to the engine's stepping needs to touch.

def jax_block(engine, train, first_step: int, n_steps: int) -> list:
    """Steps first_step .. first_step + n_steps - 1 through the engine as `train.fit` runs them: in calls of
    `steps_per_call` steps, each with the batches and dropout keys that `fit` gives those steps. Returns the
    calls' losses (device arrays, not waited for)."""
    import jax
    import numpy as np

    from jax_llm.train import step_batches

    key, k = jax.random.key(engine.cfg.train.seed), engine.cfg.train.steps_per_call
    losses = []
    for first in range(first_step, first_step + n_steps, k):
        steps = np.arange(first, min(first + k, first_step + n_steps), dtype=np.int32)
        engine.state, loss = engine.train_steps(engine.state, step_batches(engine, train, steps), key, steps)
        losses.append(loss)
    return losses


# ----------------------------------------------------------------------------------------------------
# The same model, optimizer and schedule in plain PyTorch (nanoGPT's model.py, as src/jax_llm/model.py
# has it: pre-LayerNorm with eps 1e-5, erf GELU, tied output layer, learned positions, no dropout).

def torch_side():
    """The PyTorch classes and functions, defined once torch is imported (it is optional)."""
    import math

    import numpy as np
    import torch
    import torch.nn.functional as F
    from torch import nn

    class Attention(nn.Module):
        def __init__(self, m):
            super().__init__()
            self.n_head = m.n_head
            self.qkv = nn.Linear(m.n_embd, 3 * m.n_embd, bias=m.bias)
            self.proj = nn.Linear(m.n_embd, m.n_embd, bias=m.bias)

        def forward(self, x):
            B, T, C = x.shape
            # the same column layout as model.py: q, k, v blocks of C, each split into heads
            q, k, v = (z.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
                       for z in self.qkv(x).split(C, dim=2))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.proj(y.transpose(1, 2).contiguous().view(B, T, C))

    class MLP(nn.Module):
        def __init__(self, m):
            super().__init__()
            self.fc = nn.Linear(m.n_embd, 4 * m.n_embd, bias=m.bias)
            self.proj = nn.Linear(4 * m.n_embd, m.n_embd, bias=m.bias)

        def forward(self, x):
            return self.proj(F.gelu(self.fc(x)))  # exact (erf) GELU

    class Block(nn.Module):
        def __init__(self, m):
            super().__init__()
            self.ln1 = nn.LayerNorm(m.n_embd, eps=1e-5, bias=m.bias)
            self.attn = Attention(m)
            self.ln2 = nn.LayerNorm(m.n_embd, eps=1e-5, bias=m.bias)
            self.mlp = MLP(m)

        def forward(self, x):
            x = x + self.attn(self.ln1(x))
            return x + self.mlp(self.ln2(x))

    class GPT(nn.Module):
        def __init__(self, m):
            super().__init__()
            assert m.dropout == 0 and m.tie_embeddings and not m.aux_vocab_size and m.out_vocab_size in (0, m.vocab_size)
            self.wte = nn.Embedding(m.vocab_size, m.n_embd)
            self.wpe = nn.Embedding(m.block_size, m.n_embd)
            self.blocks = nn.ModuleList(Block(m) for _ in range(m.n_layer))
            self.ln_f = nn.LayerNorm(m.n_embd, eps=1e-5, bias=m.bias)
            # model.py's initialisation: N(0, 0.02) for embeddings and linear kernels, 0.02 / sqrt(2 n_layer)
            # for the two residual projections, zero biases, unit LayerNorm scales (nn.LayerNorm's own)
            for name, p in self.named_parameters():
                if name.endswith("proj.weight"):
                    nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * m.n_layer))
                elif p.ndim == 2:
                    nn.init.normal_(p, 0.0, 0.02)
                elif name.endswith("bias"):
                    nn.init.zeros_(p)

        def forward(self, idx):
            x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
            for block in self.blocks:
                x = block(x)
            return F.linear(self.ln_f(x), self.wte.weight)  # tied output layer

    def copy_from_jax(model, jmodel):
        """Set `model`'s parameters to those of jax-llm's GPT (Flax kernels are (in, out), torch's (out, in))."""
        def put(dst, src, transpose=False):
            a = np.asarray(src[...], dtype=np.float32)
            dst.data.copy_(torch.from_numpy(a.T.copy() if transpose else a.copy()))

        def linear(dst, src):
            put(dst.weight, src.kernel, transpose=True)
            if dst.bias is not None:
                put(dst.bias, src.bias)

        def norm(dst, src):
            put(dst.weight, src.scale)
            if dst.bias is not None:
                put(dst.bias, src.bias)

        with torch.no_grad():
            put(model.wte.weight, jmodel.wte.embedding)
            put(model.wpe.weight, jmodel.wpe.embedding)
            norm(model.ln_f, jmodel.ln_f)
            for b, jb in zip(model.blocks, jmodel.blocks):
                norm(b.ln1, jb.ln1), norm(b.ln2, jb.ln2)
                linear(b.attn.qkv, jb.attn.qkv), linear(b.attn.proj, jb.attn.proj)
                linear(b.mlp.fc, jb.mlp.fc), linear(b.mlp.proj, jb.mlp.proj)

    def make_optimizer(model, t):
        """AdamW as make_optimizer has it: optax's eps 1e-8, weight decay on matrices (ndim >= 2) only."""
        params = list(model.parameters())
        groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": t.weight_decay},
                  {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=t.learning_rate, betas=(t.beta1, t.beta2), eps=1e-8)

    def train_step(model, opt, inputs, targets, lr: float, clip: float):
        logits = model(inputs)
        loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grads = [p.grad for p in model.parameters()]
        if clip:  # optax.clip_by_global_norm: scale by clip / norm when the norm reaches clip
            norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
            scale = torch.clamp(clip / norm, max=1.0)
            for g in grads:
                g.mul_(scale)
        for group in opt.param_groups:
            group["lr"] = lr
        opt.step()
        return loss.detach()

    return torch, GPT, copy_from_jax, make_optimizer, train_step


def lr_at(t, count: int) -> float:
    """make_lr's schedule (optax.warmup_cosine_decay_schedule) at optimizer update `count` (step - 1)."""
    import math

    decay_steps = max(t.lr_decay_steps or t.max_steps, t.warmup_steps + 1)
    init = t.learning_rate / (t.warmup_steps + 1)
    if count < t.warmup_steps:
        return init + (t.learning_rate - init) * count / t.warmup_steps
    span = decay_steps - t.warmup_steps
    cosine = 0.5 * (1 + math.cos(math.pi * min(count - t.warmup_steps, span) / span))
    alpha = t.min_lr / t.learning_rate
    return t.learning_rate * ((1 - alpha) * cosine + alpha)


def torch_block(tside, model, opt, cfg, train, rows: int, first_step: int, n_steps: int) -> list:
    """The same steps in PyTorch, on the same int arrays (the rows of `jax_block`'s batches)."""
    from jax_llm import data

    torch, train_step = tside[0], tside[4]
    t, block = cfg.train, cfg.model.block_size
    losses = []
    for step in range(first_step, first_step + n_steps):
        batch = data.gather(train, data.random_starts(train, block, t.seed, step, (t.grad_accum, rows)), block)
        inputs, targets = (torch.from_numpy(batch[k][0]).long() for k in ("inputs", "targets"))
        losses.append(train_step(model, opt, inputs, targets, lr_at(t, step - 1), t.grad_clip))
    return losses


# ----------------------------------------------------------------------------------------------------

def thread_names() -> str:
    """This process's threads, counted by name (XLA's intra-op pool threads are named XLAEigen)."""
    names = collections.Counter()
    for task in Path("/proc/self/task").iterdir():
        try:
            names[(task / "comm").read_text().strip()] += 1
        except OSError:
            pass
    return ", ".join(f"{n} x{c}" if c > 1 else n for n, c in sorted(names.items())) or "unknown"


class Timing:
    """Wall, user and system seconds of each block."""

    def __init__(self):
        self.blocks: list[tuple[float, float, float, int]] = []

    def run(self, fn, n_steps: int):
        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        out = fn()
        t1, r1 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
        self.blocks.append((t1 - t0, r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime, n_steps))
        return out

    def ms(self) -> list[float]:
        return [1000 * w / n for w, _, _, n in self.blocks]

    def cpu_ms(self) -> tuple[float, float, float]:
        """User and system ms per step, and CPU time over wall time, over all blocks."""
        wall, user, sys_, n = (sum(b[i] for b in self.blocks) for i in range(4))
        return 1000 * user / n, 1000 * sys_ / n, (user + sys_) / wall


def measure(args, threads: int) -> None:
    import flax
    import jax
    import numpy as np
    import optax

    from jax_llm import data
    from jax_llm.config import make_config
    from flax import nnx
    from jax_llm.optim import make_lr
    from jax_llm.train import build_engine

    tside = torch_side()
    torch, TorchGPT, copy_from_jax, make_torch_optimizer = tside[:4]
    torch.set_num_threads(threads)

    if not args.no_header:
        print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs; {platform.platform()}")
        print(f"python {platform.python_version()}, jax {jax.__version__}, flax {flax.__version__}, "
              f"optax {optax.__version__}, torch {torch.__version__}")
    print(f"threads: {threads} (torch.set_num_threads({threads}), torch.get_num_threads() = "
          f"{torch.get_num_threads()}; NPROC={os.environ.get('NPROC')!r}, "
          f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')!r})")
    print_load("at start")

    cfg = make_config("baby")
    t, block = cfg.train, cfg.model.block_size
    assert t.grad_accum == 1
    for count in (0, 1, t.warmup_steps - 1, t.warmup_steps, t.warmup_steps + 1, 1000, t.max_steps + 5):
        want = float(make_lr(t)(count))
        assert abs(lr_at(t, count) - want) <= 1e-6 * t.learning_rate, (count, lr_at(t, count), want)

    with tempfile.TemporaryDirectory() as tmp:
        tok, corpus = data.prepare(args.text, Path(tmp) / "vocab", "char", 0, cfg.data.val_fraction)
    cfg.set("vocab_size", tok.get_vocab_size())
    train, _ = data.lm_splits(corpus, block)
    steps, n_blocks = args.steps_per_block, args.blocks

    engine = build_engine(cfg)
    one_cfg = copy.deepcopy(cfg)
    one_cfg.train.steps_per_call = 1
    engine_one = build_engine(one_cfg)  # the same initial state: a function of the seed
    tmodel = TorchGPT(cfg.model)
    if not args.own_init:
        copy_from_jax(tmodel, nnx.merge(engine.graphdef, jax.device_get(engine.state["params"])))
    topt = make_torch_optimizer(tmodel, t)

    # warm-up, untimed, on copies of both states: one block each (jax-llm's includes compilation)
    fresh = engine.state
    engine.state = jax.jit(lambda s: jax.tree.map(lambda x: x.copy(), s), out_shardings=engine.shardings)(fresh)
    t0 = time.perf_counter()
    jax.block_until_ready(jax_block(engine, train, 1, steps))
    warm_jax = time.perf_counter() - t0
    engine.state = fresh
    fresh = engine_one.state
    engine_one.state = jax.jit(lambda s: jax.tree.map(lambda x: x.copy(), s), out_shardings=engine.shardings)(fresh)
    jax.block_until_ready(jax_block(engine_one, train, 1, steps))
    engine_one.state = fresh
    warm_model = copy.deepcopy(tmodel)
    t0 = time.perf_counter()
    torch_block(tside, warm_model, make_torch_optimizer(warm_model, t), cfg, train, engine.rows, 1, steps)
    warm_torch = time.perf_counter() - t0
    del warm_model
    print(f"warm-up block of {steps} steps (untimed, on copies): jax-llm {warm_jax:.1f} s with compilation, "
          f"torch {warm_torch:.1f} s")

    jt, j1, tt = Timing(), Timing(), Timing()
    jax_losses, torch_losses = [], []
    for b in range(n_blocks):
        first = 1 + b * steps
        jax_losses += jt.run(lambda: jax.block_until_ready(jax_block(engine, train, first, steps)), steps)
        jax.block_until_ready(engine.state)
        j1.run(lambda: jax.block_until_ready(jax_block(engine_one, train, first, steps)), steps)
        jax.block_until_ready(engine_one.state)
        torch_losses += tt.run(lambda: torch_block(tside, tmodel, topt, cfg, train, engine.rows, first, steps), steps)
        print(f"  steps {first:4d}-{first + steps - 1:4d}: jax-llm {jt.ms()[-1]:6.1f} ms/step "
              f"({j1.ms()[-1]:6.1f} one step per call), torch {tt.ms()[-1]:6.1f} ms/step")
    jax.block_until_ready(engine.state)
    jl = np.concatenate([np.ravel(np.asarray(x)) for x in jax_losses])
    tl = np.array([float(x) for x in torch_losses])
    print_load("at end")
    print(f"threads in this process at the end: {thread_names()}")

    n = n_blocks * steps
    print(f"\n{n_blocks} blocks of {steps} steps each, alternating, at {threads} thread(s) "
          f"({engine.rows} x {block} tokens a step):")
    k = cfg.train.steps_per_call
    for name, timing in ((f"jax-llm, {k} steps per call", jt), ("jax-llm, 1 step per call ", j1),
                         ("torch eager              ", tt)):
        ms = timing.ms()
        user, sys_, busy = timing.cpu_ms()
        print(f"  {name}: ms/step median {statistics.median(ms):6.1f}, min {min(ms):6.1f}, max {max(ms):6.1f}; "
              f"CPU per step: user {user:5.1f} ms, sys {sys_:5.1f} ms ({busy:.2f} cores busy on average)")
    jm, tm = statistics.median(jt.ms()), statistics.median(tt.ms())
    print(f"  jax-llm speed / torch speed (torch ms / jax ms): {tm / jm:.2f} at the median, "
          f"{min(tt.ms()) / min(jt.ms()):.2f} at the min; with one step per call "
          f"{tm / statistics.median(j1.ms()):.2f} at the median")
    init = "its own initialisation" if args.own_init else "jax-llm's initial weights"
    print(f"  loss at step 1: jax-llm {jl[0]:.6f}, torch {tl[0]:.6f} (difference {abs(jl[0] - tl[0]):.1e}; "
          f"torch starts from {init})")
    print(f"  loss at step {n}: jax-llm {jl[-1]:.6f}, torch {tl[-1]:.6f} (difference {abs(jl[-1] - tl[-1]):.1e}); "
          f"largest difference over the {n} steps {np.max(np.abs(jl - tl)):.1e}")
    sys.stdout.flush()


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--text", type=Path, default=DEFAULT_TEXT, help="corpus (default: tinyshakespeare.txt)")
    p.add_argument("--steps-per-block", type=int, default=50, help="steps in each timed block (default 50)")
    p.add_argument("--blocks", type=int, default=10, help="timed blocks per framework (default 10)")
    p.add_argument("--threads", choices=("1", "2", "both"), default="both",
                   help="threads for both frameworks; both = 2 here, then 1 in a child process (default)")
    p.add_argument("--own-init", action="store_true",
                   help="torch keeps its own (same-distribution) initialisation instead of jax-llm's weights")
    p.add_argument("--no-header", action="store_true", help=argparse.SUPPRESS)  # the one-thread child
    args = p.parse_args(argv)
    if args.steps_per_block < 1 or args.blocks < 1:
        p.error("--steps-per-block and --blocks must be >= 1")
    if not args.text.is_file():
        print(f"error: {args.text}: no such file (set JAX_LLM_DATA_DIR or pass --text)", file=sys.stderr)
        sys.exit(2)
    threads = 1 if args.threads == "1" else 2
    # before jax creates its CPU client and before torch's OpenMP runtime starts
    os.environ.update(ONE_THREAD_ENV if threads == 1 else {"NPROC": "2", "OMP_NUM_THREADS": "2"})
    try:
        import torch  # noqa: F401
    except ImportError:
        print('PyTorch is not installed: pip install -e ".[hf]"', file=sys.stderr)
        sys.exit(2)
    measure(args, threads)

    if args.threads == "both":
        print(f"\n=== one thread: the same, in a child process with "
              f"{' '.join(f'{k}={v}' for k, v in ONE_THREAD_ENV.items())} and torch.set_num_threads(1) ===",
              flush=True)
        child = [sys.executable, __file__, "--threads", "1", "--no-header", "--text", str(args.text),
                 "--steps-per-block", str(args.steps_per_block), "--blocks", str(args.blocks)]
        if args.own_init:
            child.append("--own-init")
        rc = subprocess.run(child, env={**os.environ, **ONE_THREAD_ENV}).returncode
        if rc:
            sys.exit(rc)


if __name__ == "__main__":
    main()
