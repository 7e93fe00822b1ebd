"""The training engine: one jit-compiled step over pure state, periodic eval, checkpoints, resume.

`fit` does not know which job it runs: it takes aligned train/val `Streams` and a config. The
language-modelling job (`train_lm`) prepares streams from a text file and calls it; so does the
input method. Step s uses the batch and dropout key derived from (seed, s), so a resumed run
replays an uninterrupted one step for step.
"""

import math
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm import tqdm

from jax_llm import data, faults, parallel
from jax_llm.checkpoint import Checkpoints, has_checkpoints
from jax_llm.config import RunConfig, TrainConfig
from jax_llm.errors import UserError
from jax_llm.metrics import MetricsLog, plot_losses
from jax_llm.model import GPT


class NonFiniteLoss(UserError):
    pass


def make_optimizer(t: TrainConfig) -> optax.GradientTransformation:
    """AdamW with linear warmup and cosine decay to min_lr; weight decay on matrices only (as nanoGPT)."""
    adamw = optax.adamw(make_lr(t), b1=t.beta1, b2=t.beta2, weight_decay=t.weight_decay,
                        mask=lambda params: jax.tree.map(lambda p: p.ndim >= 2, params))
    # always chained, so the optimizer state has the same structure whatever grad_clip is (resume can change it)
    return optax.chain(optax.clip_by_global_norm(t.grad_clip or float("inf")), adamw)


def cross_entropy(logits, targets):
    """Summed negative log-likelihood and the number of scored targets (targets < 0 are ignored)."""
    valid = targets >= 0
    safe = jnp.where(valid, targets, 0)
    nll = jax.nn.logsumexp(logits, axis=-1) - jnp.take_along_axis(logits, safe[..., None], axis=-1)[..., 0]
    return jnp.sum(jnp.where(valid, nll, 0.0)), jnp.sum(valid)


def make_steps(graphdef, tx, cfg: RunConfig, restrict=None, gathered=None):
    """The pure train step and eval step; state = {"params", "opt"}.

    With `gathered` (a replicated sharding, for FSDP), parameters are all-gathered for compute and
    their gradients come back reduced into shards; activations stay split over the batch only.

    `restrict(logits, batch) -> logits`, if given, is applied to the model's output before the loss (the
    input method masks the words whose code is not the typed one); the engine stays job-agnostic.
    """

    def logits_of(model, batch, key=None):
        logits = model(batch["inputs"], batch.get("aux"), dropout_key=key)
        return logits if restrict is None else restrict(logits, batch)

    compute_dtype = jnp.bfloat16 if cfg.train.precision == "bf16" else None

    def compute_params(params):
        if gathered is not None:
            params = jax.lax.with_sharding_constraint(params, gathered)
        if compute_dtype is not None:
            params = jax.tree.map(lambda p: p.astype(compute_dtype), params)
        return params

    def loss_fn(params, batch, key):
        model = nnx.merge(graphdef, compute_params(params))
        logits = logits_of(model, batch, key)
        total, count = cross_entropy(logits, batch["targets"])
        return total / jnp.maximum(count, 1)

    def train_step(state, batch, key):
        """`batch` leaves are (grad_accum, rows, block); gradients are averaged over micro-batches."""
        grad_fn = jax.value_and_grad(loss_fn)
        n_micro = batch["inputs"].shape[0]
        if n_micro == 1:
            loss, grads = grad_fn(state["params"], jax.tree.map(lambda x: x[0], batch), key)
        else:
            def micro(acc, xs):
                mb, i = xs
                loss, g = grad_fn(state["params"], mb, jax.random.fold_in(key, i))
                return jax.tree.map(jnp.add, acc, (loss, g)), None

            zero = (jnp.zeros(()), jax.tree.map(jnp.zeros_like, state["params"]))
            (loss, grads), _ = jax.lax.scan(micro, zero, (batch, jnp.arange(n_micro)))
            loss, grads = jax.tree.map(lambda x: x / n_micro, (loss, grads))
        updates, opt = tx.update(grads, state["opt"], state["params"])
        return {"params": optax.apply_updates(state["params"], updates), "opt": opt}, loss

    def eval_step(params, batch):
        logits = logits_of(nnx.merge(graphdef, compute_params(params)), batch)
        return cross_entropy(logits, batch["targets"])

    return train_step, eval_step


@dataclass
class Engine:
    """Everything `fit` builds once: mesh, model definition, optimizer, compiled steps."""

    cfg: RunConfig
    mesh: jax.sharding.Mesh
    graphdef: nnx.GraphDef
    state: dict
    shardings: dict
    train_step: callable
    eval_step: callable

    @property
    def rows(self) -> int:  # global rows of one micro-batch
        return parallel.global_rows(self.cfg.train.batch_size, self.mesh)

    @property
    def local_rows(self) -> slice:  # this process's share of them
        return parallel.local_rows(self.mesh, self.rows)


def state_init(cfg: RunConfig, tx):
    """The function that creates the training state {"params", "opt"}: jit it, or `jax.eval_shape` it."""

    def init():
        params = nnx.state(GPT(cfg.model, nnx.Rngs(cfg.train.seed)))
        return {"params": params, "opt": tx.init(params)}

    return init


def build_engine(cfg: RunConfig, mesh: jax.sharding.Mesh | None = None, restrict=None) -> Engine:
    """State initialised directly in its shardings (replicated, or split with fsdp) on `mesh` (default: all devices)."""
    mesh = mesh or parallel.make_mesh()
    tx = make_optimizer(cfg.train)
    init = state_init(cfg, tx)
    graphdef = nnx.graphdef(nnx.eval_shape(lambda: GPT(cfg.model, nnx.Rngs(cfg.train.seed))))
    shardings = parallel.tree_shardings(mesh, jax.eval_shape(init), cfg.train.fsdp)
    state = jax.jit(init, out_shardings=shardings)()
    replicated = parallel.NamedSharding(mesh, parallel.P())
    train_step, eval_step = make_steps(graphdef, tx, cfg, restrict, replicated if cfg.train.fsdp else None)
    micro_batches, rows = parallel.batch_sharding(mesh, 3, 1), parallel.batch_sharding(mesh, 2, 0)
    train_step = jax.jit(train_step, donate_argnums=0, in_shardings=(shardings, micro_batches, replicated),
                         out_shardings=(shardings, replicated))
    eval_step = jax.jit(eval_step, in_shardings=(shardings["params"], rows), out_shardings=replicated)
    return Engine(cfg, mesh, graphdef, state, shardings, train_step, eval_step)


def evaluate(engine: Engine, params, batches) -> float:
    """Mean loss over the given host-local batches (each process passes its own rows)."""
    total, count = 0.0, 0
    for local in batches:
        s, c = engine.eval_step(params, parallel.to_global(engine.mesh, local, batch_dim=0))
        total, count = total + float(s), count + int(c)
    return total / max(count, 1)


def estimate_val_loss(engine: Engine, val: data.Streams) -> float:
    t, block = engine.cfg.train, engine.cfg.model.block_size
    rows = engine.local_rows
    batches = (data.gather(val, data.random_starts(val, block, t.seed + 1, i, (engine.rows,))[rows], block)
               for i in range(t.eval_batches))
    return evaluate(engine, engine.state["params"], batches)


def full_val_loss(engine: Engine, val: data.Streams) -> float:
    rows = engine.local_rows
    batches = ({k: v[rows] for k, v in b.items()}
               for b in data.sequential_windows(val, engine.cfg.model.block_size, engine.rows))
    return evaluate(engine, engine.state["params"], batches)


class _StopRequest:
    """Turns Ctrl-C (and SIGTERM, what SLURM and `kill` send) into a flag checked between steps, so state
    is never half-updated."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __enter__(self):
        self.requested = False
        self._previous = [signal.signal(s, self._handler) for s in self.SIGNALS]
        return self

    def _handler(self, *_):
        self.requested = True

    def __exit__(self, *_):
        for s, previous in zip(self.SIGNALS, self._previous):
            signal.signal(s, previous)


def fit(run_dir: Path, cfg: RunConfig, train: data.Streams, val: data.Streams, resume: bool,
        quiet: bool = False, restrict=None, warm_start=None) -> dict:
    """Train on aligned streams; returns a summary. Checkpoints, metrics and plot go to `run_dir`.

    `warm_start(params) -> params`, if given, replaces freshly initialised parameters (not on resume).
    """
    t, block = cfg.train, cfg.model.block_size
    main = parallel.is_main_process()
    engine = build_engine(cfg, restrict=restrict)
    ckpts = Checkpoints(run_dir / "checkpoints", t.keep_checkpoints)
    start = 0
    if resume:
        start = ckpts.latest_step() or 0
        if start:
            engine.state = ckpts.restore(start, engine.state)
    if not start and warm_start is not None:
        params = jax.device_put(warm_start(jax.device_get(engine.state["params"])), engine.shardings["params"])
        engine.state = {"params": params, "opt": engine.state["opt"]}
    log = MetricsLog(run_dir / "metrics.jsonl", start) if main else None
    tokens_per_step = t.grad_accum * engine.rows * block
    rows = engine.local_rows
    key = jax.random.key(t.seed)
    bar = tqdm(total=t.max_steps, initial=start, disable=quiet or not main, unit="step", dynamic_ncols=True,
               mininterval=1.0)
    summary = {"start_step": start, "tokens_per_step": tokens_per_step}
    step_times: list[float] = []
    pending = None  # (step, loss array, dispatch time): read one step late so dispatch runs ahead
    last_read = None  # a step's period is the time between two loss reads (dispatch overlaps the step before)

    def finish(step, loss, dispatched):
        nonlocal last_read
        loss = float(loss)
        if not math.isfinite(loss):
            raise NonFiniteLoss(f"loss became {loss} at step {step}; stopped, the last good checkpoint "
                                f"(step {ckpts.latest_step() or 'none'}) is kept. Try a lower learning_rate")
        now = time.perf_counter()
        if step > start + 1 and last_read is not None:
            step_times.append(now - max(last_read, dispatched))  # max: an eval pause is not a step
        last_read = now
        if main:
            tps = tokens_per_step / step_times[-1] if step_times else 0.0
            bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{tps:,.0f}")
            bar.update(1)
            if step % t.log_interval == 0 or step == t.max_steps or step == start + 1:
                log.write(step=step, loss=loss, lr=float(make_lr(t)(step - 1)), tokens_per_s=round(tps, 1))
        return loss

    step = start
    with _StopRequest() as stop:
        try:
            for step in range(start + 1, t.max_steps + 1):
                starts = data.random_starts(train, block, t.seed, step, (t.grad_accum, engine.rows))
                batch = parallel.to_global(engine.mesh, data.gather(train, starts[:, rows], block), batch_dim=1)
                dispatched = time.perf_counter()
                engine.state, loss = engine.train_step(engine.state, batch, jax.random.fold_in(key, step))
                if pending:
                    summary["last_loss"] = finish(*pending)
                pending = (step, loss, dispatched)
                if step % t.eval_interval == 0 or step == t.max_steps:
                    summary["last_loss"] = finish(*pending)
                    pending = None
                    v = estimate_val_loss(engine, val)
                    summary["val_loss"] = v
                    if main:
                        log.write(step=step, val_loss=v)
                        bar.write(f"step {step}: val loss {v:.4f}")
                        plot_losses(run_dir / "metrics.jsonl", run_dir / "loss.png")
                if step % t.ckpt_interval == 0 or step == t.max_steps:
                    ckpts.save(step, engine.state)
                faults.reached(f"step:{step}")
                if parallel.any_process(stop.requested, every=t.log_interval, step=step):
                    break
            if pending:
                summary["last_loss"] = finish(*pending)
        finally:
            bar.close()
    if step < t.max_steps:  # stopped by Ctrl-C (on any process)
        if ckpts.latest_step() != step:  # the stop may fall on a step that was just checkpointed
            ckpts.save(step, engine.state)
        ckpts.close()
        if main:
            print(f"interrupted: saved a checkpoint at step {step}; continue with --resume")
        raise KeyboardInterrupt
    ckpts.close()
    summary.update(step=step, engine=engine)
    if step_times:
        summary["ms_per_step_median"] = 1000 * float(np.median(step_times))
        summary["tokens_per_s"] = tokens_per_step / float(np.median(step_times))
    return summary


def make_lr(t: TrainConfig):
    """Linear warmup from 0, cosine decay to min_lr at lr_decay_steps (default max_steps), then flat."""
    decay_steps = max(t.lr_decay_steps or t.max_steps, t.warmup_steps + 1)
    # nanoGPT's warmup: lr * (step + 1) / (warmup + 1)
    return optax.warmup_cosine_decay_schedule(t.learning_rate / (t.warmup_steps + 1), t.learning_rate,
                                              t.warmup_steps, decay_steps, t.min_lr)


def prepare_run_dir(run_dir: Path, resume: bool) -> None:
    """Refuse to start a fresh run over checkpoints; refuse to resume a run that has none."""
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"{run_dir}: exists and is not a directory")
    if resume and not (run_dir / "config.json").exists():
        raise UserError(f"{run_dir}: nothing to resume (no config.json); drop --resume to start a new run")
    if not resume and has_checkpoints(run_dir):
        raise UserError(f"{run_dir}: already holds checkpoints; pass --resume to continue it, or choose another --out")
