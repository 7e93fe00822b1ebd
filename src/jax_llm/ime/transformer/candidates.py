"""The candidate-only output layer: each position is scored against the typed code's words only.

The masked full softmax scores every word at every position and then throws away all but the typed
code's: on `shakespeare`, 22,663 words scored where the average position's code has 177. Here word ids
are grouped by code (`Vocab.grouped`), so a code's words are one contiguous run of output rows. A
batch's positions are sorted by code and cut into tiles of `ROWS` positions of one code; a tile is
scored against its code's run only, padded to the width of its size class (`WIDTHS`). The loss is the
masked softmax's, to float rounding (tests/ime/test_ime_candidates.py compares the two).

Shapes must be static under `jit`, so each width class has a fixed number of tiles (`Layout.capacity`),
measured on the training stream with a margin. A batch that would need more tiles is scored by the
masked full softmax instead (`jax.lax.cond`): slower, the same numbers, so capacity only ever costs time.
"""

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from jax_llm.ime.language.codes import NUM_CODES
from jax_llm.train import cross_entropy

ROWS = 32  # positions per tile (16 and 64 were slower, timing the loss alone on `shakespeare`)
WIDTHS = (16, 32, 64, 128, 192, 256, 384, 512, 768, 1024)  # the size classes (widths of candidate runs)
NONE = NUM_CODES  # the code of an unscored position (padding, <unk> target): in no class, no words
MASKED = -1e9  # logit of a word that is not a candidate (another code's, or a padding column)


@dataclass(frozen=True, eq=False)
class Layout:
    """Where each code's words sit among the output rows, and the tiles a batch may use per class."""

    starts: np.ndarray  # (NUM_CODES + 1,) first output row of each code's run
    sizes: np.ndarray  # (NUM_CODES + 1,) words of each code (0 for NONE)
    widths: tuple[int, ...]
    capacity: tuple[int, ...]  # tiles per width class

    @property
    def word_codes(self) -> np.ndarray:  # (words,) each output row's code; NONE for <unk>
        return np.r_[NONE, np.repeat(np.arange(NUM_CODES + 1), self.sizes)].astype(np.int32)

    @property
    def size_class(self) -> np.ndarray:  # (NUM_CODES + 1,) class index of each code; len(widths) = none
        cls = np.searchsorted(np.asarray(self.widths), self.sizes)
        return np.where(self.sizes > 0, cls, len(self.widths))


def runs(code_of: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each code's (first row, number of rows), NONE's included, for a vocabulary grouped by code
    (`code_of[w]`: word w's code; row 0 is <unk>, code -1). ValueError if it is not grouped."""
    if code_of[0] != -1 or np.any(np.diff(code_of[1:]) < 0):
        raise ValueError("word ids are not grouped by code")
    starts = np.searchsorted(code_of[1:], np.arange(NUM_CODES)) + 1
    sizes = np.bincount(code_of[1:], minlength=NUM_CODES)
    return np.r_[starts, 0], np.r_[sizes, 0]


def tile_counts(codes: np.ndarray, layout: Layout) -> np.ndarray:
    """(len(widths),) tiles each class needs for one batch of code ids (NONE for unscored positions)."""
    counts = np.bincount(codes.ravel(), minlength=NUM_CODES + 1)
    cls = layout.size_class
    tiles = -(-counts // ROWS)
    return np.bincount(cls, weights=tiles, minlength=len(layout.widths) + 1)[:-1].astype(np.int64)


def fit_layout(code_of: np.ndarray, codes: np.ndarray, targets: np.ndarray, positions: int,
               samples: int = 400, seed: int = 0) -> Layout:
    """The layout for batches of `positions` positions drawn as windows of the stream (`codes`, `targets`):
    each class's capacity is the most tiles it needed over `samples` random batches, plus 10% and 2."""
    starts, sizes = runs(code_of)
    widths = WIDTHS if sizes.max() <= WIDTHS[-1] else (*WIDTHS, int(2 ** np.ceil(np.log2(sizes.max()))))
    scored = np.where(targets > 0, codes, NONE)
    rng = np.random.default_rng(seed)
    block = min(64, len(scored))
    unbounded = Layout(starts, sizes, widths, ())
    most = np.zeros(len(widths), np.int64)
    for _ in range(samples):
        at = rng.integers(0, len(scored) - block + 1, max(positions // block, 1))
        most = np.maximum(most, tile_counts(scored[at[:, None] + np.arange(block)], unbounded))
    codes_per_class = np.bincount(unbounded.size_class, minlength=len(widths) + 1)[:-1]
    bound = -(-positions // ROWS) + codes_per_class  # no batch can need more
    capacity = np.minimum(most + most // 10 + 2, bound)
    return Layout(starts, sizes, widths, tuple(int(c) for c in capacity))


def _tiles(codes, layout: Layout):
    """Per class: (positions (tiles, rows), with N for an empty slot; each tile's code (tiles,)), and
    whether every class fitted in its capacity."""
    n = codes.shape[0]
    order = jnp.argsort(codes, stable=True)
    by_code = codes[order]
    rank = jnp.arange(n) - jnp.searchsorted(by_code, by_code, side="left")  # place among its code's positions
    count = jnp.bincount(codes, length=NUM_CODES + 1)
    size_class = jnp.asarray(layout.size_class)
    plan, fits = [], True
    for k, cap in enumerate(layout.capacity):
        mine = jnp.where(size_class == k, (count + ROWS - 1) // ROWS, 0)  # tiles of each code of this class
        first_tile = jnp.cumsum(mine) - mine
        tile = jnp.where(size_class[by_code] == k, first_tile[by_code] + rank // ROWS, cap)  # cap: dropped
        rows = jnp.full((cap, ROWS), n, jnp.int32).at[tile, rank % ROWS].set(order, mode="drop")
        tile_code = jnp.full((cap,), NONE, jnp.int32).at[tile].set(by_code, mode="drop")
        plan.append((rows, tile_code))
        fits = fits & (mine.sum() <= cap)
    return plan, fits


def _tiled_lse(h, rows_e, plan, layout: Layout):
    """Sum over the scored positions of log-sum-exp of their candidates' logits, tile by tile."""
    n, d = h.shape
    h_ext = jnp.concatenate([h, jnp.zeros((1, d), h.dtype)])  # row n: an empty slot
    e_ext = jnp.concatenate([rows_e, jnp.zeros((layout.widths[-1], d), rows_e.dtype)])  # slices never clamp
    starts, sizes = jnp.asarray(layout.starts), jnp.asarray(layout.sizes)
    total = jnp.zeros((), jnp.float32)
    for width, (rows, tile_code) in zip(layout.widths, plan):
        cand = jax.vmap(lambda s: jax.lax.dynamic_slice(e_ext, (s, 0), (width, d)))(starts[tile_code])
        logits = jnp.einsum("trd,twd->trw", h_ext[rows], cand).astype(jnp.float32)
        logits = jnp.where(jnp.arange(width) < sizes[tile_code][:, None, None], logits, MASKED)
        total += jnp.sum(jnp.where(rows < n, jax.nn.logsumexp(logits, axis=-1), 0.0))
    return total


def _masked_logits(h, rows_e, codes, layout: Layout):
    """Every word's logit at every position, the words of other codes than the position's masked."""
    word_codes = np.where(layout.word_codes == NONE, -1, layout.word_codes)  # <unk> is nobody's candidate
    return jnp.where(jnp.asarray(word_codes) == codes[:, None], (h @ rows_e.T).astype(jnp.float32), MASKED)


def _masked_lse(h, rows_e, codes, layout: Layout):
    """The tiles' sum through the masked full softmax."""
    logits = _masked_logits(h, rows_e, codes, layout)
    return jnp.sum(jnp.where(codes < NONE, jax.nn.logsumexp(logits, axis=-1), 0.0))


def candidate_nll(h, rows_e, targets, layout: Layout, smoothing: float = 0.0):
    """(summed negative log-likelihood, scored positions) of `targets` among the words of their code (the
    typed one). h: (N, d) hidden states; rows_e: (words, d) output rows; targets <= 0 (padding, <unk>) are
    not scored. With `smoothing` e, the target is (1-e) on the true word and e spread evenly over the
    code's words: their mean logit is h . (the mean of their rows), one row per code."""
    valid = targets > 0
    codes = jnp.asarray(layout.word_codes)[jnp.where(valid, targets, 0)]  # <unk>'s code is NONE
    plan, fits = _tiles(codes, layout)
    # the fallback recomputes its logits in the backward pass (checkpoint): otherwise `cond` would keep
    # (N, words) residuals for it even when the tiles are used
    lse = jax.lax.cond(fits, lambda: _tiled_lse(h, rows_e, plan, layout),
                       jax.checkpoint(lambda: _masked_lse(h, rows_e, codes, layout)))
    target_rows = rows_e[jnp.where(valid, targets, 0)]
    if smoothing:
        word_codes = jnp.asarray(layout.word_codes)
        means = jax.ops.segment_sum(rows_e, word_codes, NUM_CODES + 1) / np.maximum(layout.sizes, 1)[:, None]
        target_rows = (1 - smoothing) * target_rows + smoothing * means[codes]
    target = jnp.sum(h * target_rows, axis=-1).astype(jnp.float32)
    return lse - jnp.sum(jnp.where(valid, target, 0.0)), jnp.sum(valid)


def masked_nll(h, rows_e, targets, layout: Layout, smoothing: float = 0.0):
    """The reference: the masked full softmax's loss, as the engine's `cross_entropy` computes it (with
    `smoothing`, spread over the code's words, not the masked ones)."""
    codes = jnp.asarray(layout.word_codes)[jnp.maximum(targets, 0)]
    logits = _masked_logits(h, rows_e, codes, layout)
    total, count = cross_entropy(logits, jnp.where(targets > 0, targets, -1))
    if not smoothing:
        return total, count
    mine = jnp.asarray(layout.word_codes) == codes[:, None]
    mean = jnp.sum(jnp.where(mine, logits, 0.0), -1) / jnp.maximum(jnp.sum(mine, -1), 1)
    target = jnp.take_along_axis(logits, jnp.maximum(targets, 0)[:, None], -1)[:, 0]
    return total + smoothing * jnp.sum(jnp.where(targets > 0, target - mean, 0.0)), count


def objective(layout: Layout, smoothing: float = 0.0):
    """The training engine's objective (`train.make_steps`) for the candidate-only output layer. The typed
    code is the target word's: the inputs need not hold it (a lookahead model's inputs are later codes).
    Label `smoothing` applies in training only (`key` given); evaluation scores the plain likelihood."""

    def candidate_objective(model, batch, key=None):
        h = model.hidden(batch["inputs"], batch.get("aux"), dropout_key=key)
        return candidate_nll(h.reshape(-1, h.shape[-1]), model.output_embedding(), batch["targets"].reshape(-1),
                             layout, smoothing if key is not None else 0.0)

    return candidate_objective
