"""The optimizers: AdamW, or Muon for the blocks' matrices with AdamW for the rest; their schedule.

Muon (`optax.contrib.muon`) orthogonalises each matrix's momentum with a few Newton-Schulz iterations.
On a CPU at small batches those iterations cost as much as a good part of the forward and backward
pass, so same-shape matrices are stacked and orthogonalised in one batched call (docs/performance.md).
"""

import jax
import jax.numpy as jnp
import optax

from jax_llm.config import TrainConfig


def make_optimizer(t: TrainConfig) -> optax.GradientTransformation:
    """AdamW with linear warmup and cosine decay to min_lr; weight decay on matrices only (as nanoGPT).

    With `optimizer=muon`, the blocks' matrices follow Muon (`optax.contrib.muon`: momentum orthogonalised
    by Newton-Schulz) at `muon_lr` on the same schedule; embeddings, head, norms' gains and biases stay
    with AdamW at `learning_rate` (nanochat's and the speedrun's split)."""
    decay_mask = lambda params: jax.tree.map(lambda p: p.ndim >= 2, params)  # noqa: E731
    adamw = optax.adamw(make_lr(t), b1=t.beta1, b2=t.beta2, weight_decay=t.weight_decay, mask=decay_mask)
    if t.optimizer == "muon":
        schedule, scale = make_lr(t), t.muon_lr / t.learning_rate
        muon = optax.contrib.muon(lambda step: schedule(step) * scale, ns_steps=t.muon_ns_steps, beta=0.95,
                                  weight_decay=t.weight_decay,
                                  muon_weight_dimension_numbers=optax.contrib.MuonDimensionNumbers(1, 2))
        adamw = optax.partition({"muon": stacked_by_shape(muon), "adamw": adamw}, muon_labels)
    # always chained, so the optimizer state has the same structure whatever grad_clip is (resume can change it)
    return optax.chain(optax.clip_by_global_norm(t.grad_clip or float("inf")), adamw)


def muon_labels(params):
    """'muon' for a matrix inside the blocks, 'adamw' for everything else."""
    def label(path, p):
        in_blocks = any(getattr(k, "key", None) == "blocks" for k in path)
        return "muon" if in_blocks and p.ndim == 2 else "adamw"

    return jax.tree_util.tree_map_with_path(label, params)


def stacked_by_shape(inner: optax.GradientTransformation) -> optax.GradientTransformation:
    """`inner` applied to each group of same-shape leaves stacked on a new leading axis (its state kept
    stacked): Muon then runs Newton-Schulz once per shape, batched over the layers, instead of once per
    matrix; XLA:CPU spends far less on a few batched matmuls than on many small ones (docs/performance.md)."""

    def groups(tree):
        leaves, treedef = jax.tree.flatten(tree)
        shapes = sorted({x.shape for x in leaves})
        return leaves, treedef, [[i for i, x in enumerate(leaves) if x.shape == s] for s in shapes]

    def stack(tree):
        leaves, _, index = groups(tree)
        return [jnp.stack([leaves[i] for i in group]) for group in index]

    def update(updates, state, params=None):
        new, state = inner.update(stack(updates), state, None if params is None else stack(params))
        leaves, treedef, index = groups(updates)
        for group, rows in zip(index, new):
            for row, i in enumerate(group):
                leaves[i] = rows[row]
        return treedef.unflatten(leaves), state

    return optax.GradientTransformation(lambda params: inner.init(stack(params)), update)


def make_lr(t: TrainConfig):
    """Linear warmup from 0, cosine decay to min_lr at lr_decay_steps (default max_steps), then flat."""
    decay_steps = max(t.lr_decay_steps or t.max_steps, t.warmup_steps + 1)
    # nanoGPT's warmup: lr * (step + 1) / (warmup + 1)
    return optax.warmup_cosine_decay_schedule(t.learning_rate / (t.warmup_steps + 1), t.learning_rate,
                                              t.warmup_steps, decay_steps, t.min_lr)
