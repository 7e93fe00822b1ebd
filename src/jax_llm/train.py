"""The training engine: one jit-compiled step over pure state, periodic eval, checkpoints, resume.

`fit` does not know which job it runs: it takes aligned train/val `Streams` and a config. The
language-modelling job (`pretrain`) prepares streams from a text file and calls it; so does the
input method (`ime.transformer.train`). Step s uses the batch and dropout key derived from (seed, s), so a
resumed run replays an uninterrupted one step for step.
"""

import math
import signal
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm import tqdm

from jax_llm import data, faults, parallel
from jax_llm.checkpoint import Checkpoints, read_latest
from jax_llm.config import RunConfig, TrainConfig
from jax_llm.errors import UserError
from jax_llm.metrics import MetricsLog, bpb_field, plot_losses
from jax_llm.rundir import RunDir
from jax_llm.model import GPT
from jax_llm.optim import make_lr, make_optimizer


class NonFiniteLoss(UserError):
    pass


def cross_entropy(logits, targets, smoothing: float = 0.0):
    """Summed negative log-likelihood and the number of scored targets (targets < 0 are ignored). With
    `smoothing` e, the target is (1-e) on the true output and e spread evenly over all of them."""
    valid = targets >= 0
    safe = jnp.where(valid, targets, 0)
    target = jnp.take_along_axis(logits, safe[..., None], axis=-1)[..., 0]
    if smoothing:
        target = (1 - smoothing) * target + smoothing * jnp.mean(logits, axis=-1)
    nll = jax.nn.logsumexp(logits, axis=-1) - target
    return jnp.sum(jnp.where(valid, nll, 0.0)), jnp.sum(valid)


def lm_objective(model, batch, key=None, smoothing: float = 0.0):
    """The language model's loss: every output scored at every position. `key` is None in evaluation,
    which scores the plain likelihood (no smoothing, no dropout)."""
    logits = model(batch["inputs"], batch.get("aux"), dropout_key=key)
    return cross_entropy(logits, batch["targets"], smoothing if key is not None else 0.0)


def make_steps(graphdef, tx, cfg: RunConfig, objective=lm_objective, gathered=None):
    """The pure train step and eval step; state = {"params", "opt"}.

    With `gathered` (a replicated sharding, for FSDP), parameters are all-gathered for compute and
    their gradients come back reduced into shards; activations stay split over the batch only.

    `objective(model, batch, key) -> (summed loss, scored positions)` is the job's loss (the input method
    scores only the typed code's words); the engine stays job-agnostic.
    """

    compute_dtype = jnp.bfloat16 if cfg.train.precision == "bf16" else None

    def compute_params(params):
        if gathered is not None:
            params = jax.lax.with_sharding_constraint(params, gathered)
        if compute_dtype is not None:
            params = jax.tree.map(lambda p: p.astype(compute_dtype), params)
        return params

    def loss_fn(params, batch, key):
        total, count = objective(nnx.merge(graphdef, compute_params(params)), batch, key)
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

    def train_steps(state, batches, key, steps):
        """Several steps in one call: `batches` leaves have a leading axis of steps; step s's dropout key is
        fold_in(key, s). XLA:CPU spends a fixed time on every call, so a scan over K steps pays it once."""

        def one(state, xs):
            batch, step = xs
            return train_step(state, batch, jax.random.fold_in(key, step))

        return jax.lax.scan(one, state, (batches, steps))

    def eval_step(params, batch):
        return objective(nnx.merge(graphdef, compute_params(params)), batch)

    return train_step, train_steps, eval_step


@dataclass
class Engine:
    """Everything `fit` builds once: mesh, model definition, optimizer, compiled steps."""

    cfg: RunConfig
    mesh: jax.sharding.Mesh
    graphdef: nnx.GraphDef
    state: dict
    shardings: dict
    train_step: callable  # (state, batch, key) -> (state, loss): one step
    train_steps: callable  # (state, batches, key, steps) -> (state, losses): several, in one call
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


def build_engine(cfg: RunConfig, mesh: jax.sharding.Mesh | None = None, objective=None) -> Engine:
    """State initialised directly in its shardings (replicated, or split with fsdp) on `mesh` (default: all
    devices). `objective`: the job's loss (`make_steps`); default the language model's."""
    mesh = mesh or parallel.make_mesh()
    objective = objective or partial(lm_objective, smoothing=cfg.train.label_smoothing)
    tx = make_optimizer(cfg.train)
    init = state_init(cfg, tx)
    graphdef = nnx.graphdef(nnx.eval_shape(lambda: GPT(cfg.model, nnx.Rngs(cfg.train.seed))))
    shardings = parallel.tree_shardings(mesh, jax.eval_shape(init), cfg.train.fsdp)
    state = jax.jit(init, out_shardings=shardings)()
    replicated = parallel.NamedSharding(mesh, parallel.P())
    train_step, train_steps, eval_step = make_steps(graphdef, tx, cfg, objective, replicated if cfg.train.fsdp else None)
    micro_batches, rows = parallel.batch_sharding(mesh, 3, 1), parallel.batch_sharding(mesh, 2, 0)
    train_step = jax.jit(train_step, donate_argnums=0, in_shardings=(shardings, micro_batches, replicated),
                         out_shardings=(shardings, replicated))
    train_steps = jax.jit(train_steps, donate_argnums=0,
                          in_shardings=(shardings, parallel.batch_sharding(mesh, 4, 2), replicated, replicated),
                          out_shardings=(shardings, replicated))
    eval_step = jax.jit(eval_step, in_shardings=(shardings["params"], rows), out_shardings=replicated)
    return Engine(cfg, mesh, graphdef, state, shardings, train_step, train_steps, eval_step)


def mean_loss(engine: Engine, params, batches) -> float:
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
    return mean_loss(engine, engine.state["params"], batches)


def full_val_loss(engine: Engine, val: data.Streams) -> float:
    rows = engine.local_rows
    batches = ({k: v[rows] for k, v in b.items()}
               for b in data.sequential_windows(val, engine.cfg.model.block_size, engine.rows))
    return mean_loss(engine, engine.state["params"], batches)


class _StopRequest:
    """Turns Ctrl-C (and SIGTERM, what SLURM and `kill` send) into a flag checked between steps, so
    state is never half-updated."""

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


class LossReader:
    """Reads each call's losses one call late, so that the host dispatches the next call while the device
    runs this one; times the steps, logs the losses, moves the progress bar.

    A call's period is the time between two loss reads, or from its dispatch when that came later (an
    eval or a checkpoint in between is not a step), shared evenly by its steps.
    """

    def __init__(self, run: RunDir, cfg: RunConfig, start: int, tokens_per_step: int, show_bar: bool,
                 checkpoints: Checkpoints, bytes_per_token: float | None = None):
        self.cfg, self.start, self.tokens_per_step, self.checkpoints = cfg, start, tokens_per_step, checkpoints
        self.bytes_per_token = bytes_per_token  # the train split's average: a batch's bits per byte, roughly
        self.log = MetricsLog(run.metrics, start) if parallel.is_main_process() else None
        self.bar = tqdm(total=cfg.train.max_steps, initial=start, disable=not show_bar, unit="step",
                        dynamic_ncols=True, mininterval=1.0)
        self.pending = None  # (first step, losses array, dispatch time)
        self.periods: list[float] = []
        self.last_read = None
        self.last_loss = None

    def put(self, first_step: int, losses, dispatched: float) -> None:
        self.flush()
        self.pending = (first_step, losses, dispatched)

    def flush(self) -> None:
        """Read the pending losses (wait for their steps to finish)."""
        if self.pending is None:
            return
        first, losses, dispatched = self.pending
        self.pending = None
        losses = np.asarray(losses, np.float64).tolist()
        for step, loss in enumerate(losses, first):
            if not math.isfinite(loss):
                raise NonFiniteLoss(f"loss became {loss} at step {step}; stopped, the last good checkpoint "
                                    f"(step {self.checkpoints.latest_step() or 'none'}) is kept. Try a lower "
                                    f"learning_rate")
        now = time.perf_counter()
        if first > self.start + 1 and self.last_read is not None:
            self.periods += [(now - max(self.last_read, dispatched)) / len(losses)] * len(losses)
        self.last_read, self.last_loss = now, losses[-1]
        if self.log is None:
            return
        t = self.cfg.train
        tps = self.tokens_per_step / self.periods[-1] if self.periods else 0.0
        self.bar.set_postfix(loss=f"{losses[-1]:.4f}", tok_s=f"{tps:,.0f}")
        self.bar.update(len(losses))
        for step, loss in enumerate(losses, first):
            if step % t.log_interval == 0 or step == t.max_steps or step == self.start + 1:
                self.log.write(step=step, loss=loss, **bpb_field("bpb", loss, self.bytes_per_token),
                               lr=float(make_lr(t)(step - 1)), tokens_per_s=round(tps, 1))


@dataclass
class FitResult:
    engine: Engine  # holds the trained state
    start_step: int  # 0, or the checkpoint a resumed run started from
    step: int  # the last step trained
    tokens_per_step: int
    last_loss: float | None
    val_loss: float | None  # the last periodic estimate
    step_ms: list[float]  # each timed step's period (a call's period shared by its steps), compilation excluded

    @property
    def ms_per_step_median(self) -> float | None:
        return float(np.median(self.step_ms)) if self.step_ms else None

    @property
    def tokens_per_s(self) -> float | None:
        return self.step_ms and self.tokens_per_step / self.ms_per_step_median * 1000


def restore_or_initialise(engine: Engine, checkpoints: Checkpoints, resume: bool, warm_start=None) -> int:
    """The step to start from: the latest checkpoint's on a resume, else 0, with the fresh parameters
    replaced by `warm_start(params)` when given."""
    start, state = checkpoints.restore_latest(engine.state) if resume else (0, None)
    if start:
        engine.state = state
    elif warm_start is not None:
        params = jax.device_put(warm_start(jax.device_get(engine.state["params"])), engine.shardings["params"])
        engine.state = {"params": params, "opt": engine.state["opt"]}
    return start


def fit(run_dir: Path, cfg: RunConfig, train: data.Streams, val: data.Streams, resume: bool,
        quiet: bool = False, objective=None, warm_start=None) -> FitResult:
    """Train on aligned streams. Checkpoints, metrics and the loss plot go to `run_dir`.

    `warm_start(params) -> params`, if given, replaces freshly initialised parameters (not on resume).
    """
    run, t, block = RunDir(run_dir), cfg.train, cfg.model.block_size
    engine = build_engine(cfg, objective=objective)
    checkpoints = Checkpoints(run.checkpoints, t.keep_checkpoints)
    start = restore_or_initialise(engine, checkpoints, resume, warm_start)
    tokens_per_step = t.grad_accum * engine.rows * block
    losses = LossReader(run, cfg, start, tokens_per_step, not quiet and parallel.is_main_process(), checkpoints,
                        train.bytes_per_token)
    key, val_loss = jax.random.key(t.seed), None
    step = start
    with _StopRequest() as stop:
        try:
            while step < t.max_steps:
                steps = np.arange(step + 1, next_pause(t, step) + 1, dtype=np.int32)
                batches = step_batches(engine, train, steps)
                if step == start:
                    faults.reached("compile")  # the first call compiles
                dispatched = time.perf_counter()
                engine.state, loss = engine.train_steps(engine.state, batches, key, steps)
                losses.put(int(steps[0]), loss, dispatched)  # reads the previous call's losses
                step = int(steps[-1])
                if step % t.eval_interval == 0 or step == t.max_steps:
                    losses.flush()
                    faults.reached(f"eval:{step}")
                    val_loss = estimate_val_loss(engine, val)
                    _report_val(run, losses, step, val_loss, val.bytes_per_token)
                if step % t.ckpt_interval == 0 or step == t.max_steps:
                    checkpoints.save(step, engine.state)
                for s in steps:
                    faults.reached(f"step:{s}")
                if parallel.any_process(stop.requested):
                    break
            losses.flush()
        finally:
            losses.bar.close()
    if step < t.max_steps:  # stopped by Ctrl-C or SIGTERM (on any process)
        if checkpoints.latest_step() != step:  # the stop may fall on a step that was just checkpointed
            checkpoints.save(step, engine.state)
        checkpoints.close()
        if parallel.is_main_process():
            print(f"interrupted: saved a checkpoint at step {step}; continue with --resume")
        raise KeyboardInterrupt
    checkpoints.close()
    return FitResult(engine, start, step, tokens_per_step, losses.last_loss, val_loss,
                     [1000 * p for p in losses.periods])


def step_batches(engine: Engine, train: data.Streams, steps: np.ndarray) -> dict:
    """The batches of `steps` for `train_steps`, this process's rows of each: functions of (seed, step)."""
    t, block = engine.cfg.train, engine.cfg.model.block_size
    starts = np.stack([data.random_starts(train, block, t.seed, s, (t.grad_accum, engine.rows)) for s in steps])
    return parallel.to_global(engine.mesh, data.gather(train, starts[:, :, engine.local_rows], block), batch_dim=2)


def next_pause(t: TrainConfig, step: int) -> int:
    """The last step of the call that starts after `step`: `steps_per_call` steps, fewer when an eval, a
    checkpoint or the end comes first. A stop (Ctrl-C) is seen between calls."""
    ends = [step + t.steps_per_call, t.max_steps]
    ends += [(step // interval + 1) * interval for interval in (t.eval_interval, t.ckpt_interval)]
    return min(ends)


def _report_val(run: RunDir, losses: LossReader, step: int, val_loss: float, bytes_per_token: float | None) -> None:
    if losses.log is not None:
        bpb = bpb_field("val_bpb", val_loss, bytes_per_token)
        losses.log.write(step=step, val_loss=val_loss, **bpb)
        losses.bar.write(f"step {step}: val loss {val_loss:.4f}" + (f", {bpb['val_bpb']:.4f} bits per byte" if bpb else ""))
        plot_losses(run.metrics, run.loss_plot)


def load_model(run_dir: Path):
    """(config, model with the latest checkpoint's parameters, step) of any run directory, read without
    changing it: a damaged config.json or latest checkpoint is refused in one line naming it."""
    run = RunDir(run_dir)
    cfg = run.load_config()
    engine = build_engine(cfg)
    step, state = read_latest(run.checkpoints, engine.state)
    return cfg, nnx.merge(engine.graphdef, parallel.to_host(state["params"])), step
