"""The FTCIM Transformer: codes in, words out, trained by the same engine as the language models.

An input-method job is a pair of aligned streams for `train.fit`: position i reads code_i (702 ids)
and, in the confirmed-words setting, the previous confirmed word w_{i-1} (the `aux` stream: the word
ids plus a start-of-text id), and is scored against w_i. Attention is causal, so a prediction never
sees a later code. Scores are restricted to the words whose code is the typed one, in the training loss
(the candidate-only output layer, `ime.candidates`) and in prediction alike. Word ids are grouped by code
(`Vocab.grouped`); model directories record that as format 2, and an older one is refused in one line.
"""

import json
import threading
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jax_llm import data
from jax_llm.config import RunConfig
from jax_llm.errors import UserError
from jax_llm.ime import candidates
from jax_llm.ime.codes import CODE_IDS, NUM_CODES, code_ids
from jax_llm.ime.modelfiles import read_meta
from jax_llm.ime.words import Vocab, WordCorpus, dev_split
from jax_llm.model import init_cache
from jax_llm.sample import extend, prefill
from jax_llm.rundir import RunDir, resolve_config
from jax_llm.train import FitResult, fit, load_model

FORMAT = 2  # model.json's "format": 2 = word ids grouped by code
NOT_TYPED = NUM_CODES  # a lookahead model's input where the code is not typed yet


def ime_vocab(corpus: WordCorpus) -> Vocab:
    """The output vocabulary: the train split's words, ids grouped by code."""
    return Vocab.build(corpus.train).grouped()


def code_stream(words: Sequence[str]) -> np.ndarray:
    return code_ids(words).astype(np.int32)


def streams(vocab: Vocab, words: Sequence[str], confirmed: bool, lookahead: int = 0) -> data.Streams:
    """Aligned (codes, previous word) -> word streams. OOV words are id 0 (never predicted).

    With `lookahead` K, position i reads code i+K instead of code i (NOT_TYPED past the end): attention
    being causal, word i is then predicted from codes[:i+K+1] and words[:i], the delayed decision of an
    input method that may revise a word while the next K codes arrive."""
    ids = vocab.encode(words)
    prev = np.concatenate([[len(vocab)], ids[:-1]]).astype(np.int32)  # len(vocab) = start of text
    codes = code_stream(words)
    if lookahead:
        codes = np.r_[codes[lookahead:], np.full(min(lookahead, len(codes)), NOT_TYPED, np.int32)]
    return data.Streams(inputs=codes, targets=ids, aux=prev if confirmed else None)


def mask_other_codes(logits, codes, word_codes):
    """`logits` (..., words) with every word whose code (`word_codes`) is not the typed code at its position
    (`codes`, shaped like logits without the last axis) set to `candidates.MASKED`."""
    return jnp.where(word_codes == codes[..., None], logits, candidates.MASKED)


def window_start(position: int, block: int) -> int:
    """Where the window that reads `position` starts: windows start every half block, and a position is
    read in the first window that covers it (`predict_split`, `TransformerPredictor.logits`)."""
    half = max(block // 2, 1)
    return max(0, (position // half - 1) * half)


def ime_sizes(vocab: Vocab, confirmed: bool, lookahead: int = 0) -> dict:
    """The model sizes that follow from the vocabulary (the output layer is tied to the previous-word
    embedding, `tie_embeddings`, when there is one)."""
    return dict(vocab_size=NUM_CODES + (1 if lookahead else 0), out_vocab_size=len(vocab),
                aux_vocab_size=len(vocab) + 1 if confirmed else 0)


def save_meta(run: RunDir, vocab: Vocab, **meta) -> None:
    vocab.save(run.vocab)
    run.model_meta.write_text(json.dumps({"kind": "transformer", "format": FORMAT, **meta}, indent=2) + "\n")


# ---------------------------------------------------------------- batch prediction over a whole split


@partial(jax.jit, static_argnums=(0, 4, 5))
def _topk(graphdef, params, batch, word_codes, k, restricted):
    logits = nnx.merge(graphdef, params)(batch["inputs"], batch.get("aux"))
    if restricted:
        logits = mask_other_codes(logits, batch["typed"], word_codes)
    values, ids = jax.lax.top_k(jax.nn.log_softmax(logits), k)
    return ids, values


def predict_split(model, vocab: Vocab, s: data.Streams, k: int, restricted: bool = True,
                  rows: int = 64, with_scores: bool = False, typed: np.ndarray | None = None):
    """Top-k word ids (and, `with_scores`, their log-probabilities) at every position, each predicted
    online from up to block-1 earlier positions.

    Windows advance by half a block and each position is read from the first window that covers it,
    so every position after the first block sees at least half a block of context. `typed`: the code
    typed at each position (default: the inputs; a lookahead model's inputs are later codes).
    """
    typed = s.inputs if typed is None else typed
    width = min(model.cfg.block_size, len(s))
    starts = np.unique(np.minimum(np.arange(0, len(s), max(width // 2, 1)), len(s) - width))
    out, scores = np.zeros((len(s), k), np.int32), np.zeros((len(s), k), np.float32)
    graphdef, params = nnx.split(model)
    codes = jnp.asarray(vocab.code_of)
    covered = 0  # positions [0, covered) already predicted
    for i in range(0, len(starts), rows):
        chunk = starts[i: i + rows]
        batch = data.gather(s, chunk, width)
        del batch["targets"]
        batch["typed"] = typed[chunk[:, None] + np.arange(width)].astype(np.int32)
        pad = rows - len(chunk)
        if pad:  # a fixed batch shape: one compilation
            batch = {key: np.concatenate([v, np.zeros((pad, width), v.dtype)]) for key, v in batch.items()}
        top, logp = (np.asarray(x) for x in _topk(graphdef, params, batch, codes, k, restricted))
        for j, start in enumerate(chunk):
            out[covered: start + width] = top[j, covered - start:]
            scores[covered: start + width] = logp[j, covered - start:]
            covered = start + width
    return (out, scores) if with_scores else out


# ---------------------------------------------------------------- reading a trained model


# ---------------------------------------------------------------- one keystroke at a time


class TransformerPredictor:
    """The Predictor interface over a trained run directory, with a KV cache.

    Position p is read in the window of positions s..p, s = `window_start(p, block)`: the same window
    `predict_split` reads it from, so the two agree exactly. While the context grows by the word just
    confirmed, a keystroke costs one incremental step; every half block, or when the context changes
    otherwise, the window is re-read in one padded (fixed-shape) pass.

    That cache is state, and it stays here behind a lock rather than travelling with each request as an
    explicit state object (KenLM's `State`): it only pays off for one typist's consecutive keystrokes,
    while a server's requests each carry their whole context, so a per-request state would be rebuilt
    every time and save nothing; and one call already spreads over every core, so serialising calls
    costs the server little. Without the lock, concurrent calls would read a cache another call has
    just donated to XLA (`extend` reuses its buffers).
    """

    def __init__(self, run_dir: Path):
        run = RunDir(run_dir)
        meta = read_meta(run.path)
        if meta.get("format") != FORMAT:
            raise UserError(f"{run.model_meta}: made by an older jax-llm (format {meta.get('format', 1)}, this one "
                            f"reads {FORMAT}: word ids grouped by code); train it again with `jax-llm ime train`")
        self.confirmed, self.restricted = meta["confirmed"], meta.get("restricted", True)
        self.lookahead = int(meta.get("lookahead", 0))
        self.vocab = Vocab.load(run.vocab)
        self.cfg, self.model, _ = load_model(run.path)
        if self.cfg.model.out_vocab_size != len(self.vocab):
            raise UserError(f"{run.vocab}: {len(self.vocab)} words (with <unk>), but the model in {run.config} "
                            f"scores {self.cfg.model.out_vocab_size}")
        self.graphdef, self.params = nnx.split(self.model)
        self._cache, self._window = None, None
        self._lock = threading.Lock()
        # labels for the harness's table
        self.kind = "transformer " + ("words+codes" if self.confirmed else "codes")
        self.order = (f"b{self.cfg.model.block_size}" + ("" if self.restricted else " unrestricted")
                      + (f" ahead {self.lookahead}" if self.lookahead else ""))

    def _positions(self, context: Sequence[str], code: str, start: int, ahead: Sequence[str]) -> list[tuple[int, int]]:
        words = list(context[start:])
        prev = [context[start - 1] if start else None] + words
        ids = [len(self.vocab) if w is None else self.vocab.index.get(w, 0) for w in prev]
        typed = [*code_ids(words).tolist(), CODE_IDS[code], *(CODE_IDS[c] for c in ahead[: self.lookahead])]
        k = self.lookahead
        return [(typed[j + k] if j + k < len(typed) else NOT_TYPED, i) for j, i in enumerate(ids)]

    def logits(self, code: str, context: Sequence[str], ahead: Sequence[str] = ()) -> np.ndarray:
        """Scores of every word for `code` after `context` (unrestricted); a lookahead model also reads the
        codes typed after it (`ahead`, up to its lookahead)."""
        for c in (code, *ahead):
            if c not in CODE_IDS:
                raise UserError(f"not a code: {c!r}")
        block = self.cfg.model.block_size
        start = window_start(len(context), block)
        window = (start, self._positions(context, code, start, ahead))
        positions = window[1]
        with self._lock:
            same = 0  # leading positions already in the cache, as they are now
            if self._cache is not None and self._window[0] == start:
                old = self._window[1]
                while same < min(len(old), len(positions)) and old[same] == positions[same]:
                    same += 1
            same = min(same, len(positions) - 1)  # the last position is always run: its logits are the answer
            if self._cache is not None and same >= len(positions) - 1 - self.lookahead:
                # the next keystroke: one new position (a lookahead model also re-reads the K before it,
                # whose later codes have just arrived); the cache's stale entries past it are masked
                logits, self._cache = extend(self.graphdef, self.params, *self._batch(positions[same:]), self._cache,
                                             same)
            else:
                padded = window[1] + [(0, 0)] * (block - len(window[1]))
                self._cache = init_cache(self.cfg.model, 1)
                logits, self._cache = prefill(self.graphdef, self.params, *self._batch(padded), self._cache,
                                              len(window[1]) - 1)
            self._window = window
            return np.asarray(logits)

    def candidates(self, code: str, context: Sequence[str], k: int = 10, ahead: Sequence[str] = ()):
        """[(word, log-prob among the code's words), ...] best first."""
        logits = self.logits(code, context, ahead)
        cand = self.vocab.by_code[CODE_IDS[code]]
        if not len(cand):
            return []
        scores = logits[cand] - np.logaddexp.reduce(logits[cand])  # log-probs among the candidates
        order = np.argsort(-scores, kind="stable")[:k]
        return [(self.vocab.words[cand[i]], float(scores[i])) for i in order]

    def scored_split(self, codes: Sequence[str], words: Sequence[str], k: int, start: int = 0):
        """[(word, log-prob), ...] best first at positions start.., all computed in causal windows."""
        lo = window_start(start, self.cfg.model.block_size)  # on the window grid of `logits`: both agree exactly
        s = streams(self.vocab, words[lo:len(codes)], self.confirmed, self.lookahead)
        if lo and s.aux is not None:  # the first previous word is a real word, not the start of text
            s.aux[0] = self.vocab.index.get(words[lo - 1], 0)
        top, logp = predict_split(self.model, self.vocab, s, k, self.restricted, with_scores=True,
                                  typed=code_stream(words[lo:len(codes)]))
        code_of, names = self.vocab.code_of, self.vocab.words
        return [[(names[j], float(v)) for j, v in zip(ids, vals) if j and code_of[j] == CODE_IDS[code]]
                for ids, vals, code in zip(top[start - lo:].tolist(), logp[start - lo:].tolist(), codes[start:])]

    def rank_split(self, codes: Sequence[str], words: Sequence[str], k: int, start: int = 0) -> list[list[str]]:
        """The harness's batch hook."""
        return [[w for w, _ in row] for row in self.scored_split(codes, words, k, start)]

    def _batch(self, positions):
        """(inputs, aux) arrays of shape (1, T) for [(code id, previous word id), ...]."""
        arr = np.asarray(positions, np.int32).T[:, None, :]  # (2, 1, T)
        return jnp.asarray(arr[0]), jnp.asarray(arr[1]) if self.confirmed else None


# ---------------------------------------------------------------- training through the engine


def train(corpus: WordCorpus, run_dir: Path, preset: str | None = "ime-small", overrides: Sequence[str] = (),
          confirmed: bool = True, restricted: bool = True, resume: bool = False, quiet: bool = False,
          warm_start: Path | None = None, lookahead: int = 0, whole_train: bool = False) -> FitResult:
    """Train on the first 90% of the train split, validating on the rest (the dev slice); test is unseen.
    `whole_train`: train on the dev slice too, once settings were chosen on it (its loss is then not held
    out)."""
    if lookahead < 0:
        raise UserError(f"--lookahead must be >= 0 (got {lookahead})")
    run = RunDir(run_dir)
    vocab = ime_vocab(corpus)
    cfg = resolve_config(run, resume, preset, list(overrides), derived=ime_sizes(vocab, confirmed, lookahead))
    fit_words, dev_words = dev_split(corpus.train)
    if whole_train:
        fit_words = list(corpus.train)
    if len(dev_words) <= cfg.model.block_size:
        raise UserError(f"corpus too small: the dev slice has {len(dev_words)} words, need more than "
                        f"block_size ({cfg.model.block_size})")
    # checked before anything is written; a resumed run restores its own parameters instead
    init = warm_start_from(warm_start, cfg, vocab) if warm_start and not resume else None
    run.path.mkdir(parents=True, exist_ok=True)
    cfg.save(run.config)
    save_meta(run, vocab, dataset=corpus.name, confirmed=confirmed, restricted=restricted, lookahead=lookahead,
              whole_train=whole_train, warm_start=str(warm_start) if warm_start else None)
    fit_streams = streams(vocab, fit_words, confirmed, lookahead)
    objective = None  # the engine's default: every word scored
    if restricted:
        positions = cfg.train.batch_size * jax.device_count() * cfg.model.block_size
        objective = candidates.objective(candidates.fit_layout(vocab.code_of, fit_streams.inputs, fit_streams.targets,
                                                               positions), cfg.train.label_smoothing)
    return fit(run.path, cfg, fit_streams, streams(vocab, dev_words, confirmed, lookahead), resume, quiet=quiet,
               objective=objective, warm_start=init)


# ---------------------------------------------------------------- warm start from a word-level language model


def export_words(corpus, out_dir: Path) -> tuple[Path, Path]:
    """The train split as a text file plus a word-level tokenizer whose ids are this corpus's `Vocab` ids,
    so `jax-llm train TEXT --tokenizer TOKENIZER` pretrains a language model over exactly these words."""
    from tokenizers import Tokenizer, models, pre_tokenizers  # here: only exporting needs it, and it is slow to load

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    vocab = ime_vocab(corpus)
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab.words)}, unk_token=vocab.words[0]))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    text, tok_path = out_dir / "train-words.txt", out_dir / "words-tokenizer.json"
    words = corpus.train
    text.write_text("\n".join(" ".join(words[i: i + 20]) for i in range(0, len(words), 20)) + "\n")
    tok.save(str(tok_path))
    return text, tok_path


def warm_start_from(lm_dir: Path, cfg: RunConfig, vocab: Vocab):
    """params -> params with the language model's blocks, positions, and word embeddings placed where
    the input method reads the previous word (`aux_embed`) and scores the next one (`head`)."""
    lm_cfg, lm, _ = load_model(Path(lm_dir))
    m, lm_m = cfg.model, lm_cfg.model
    same = (lm_m.n_layer, lm_m.n_head, lm_m.n_embd) == (m.n_layer, m.n_head, m.n_embd)
    if not same or lm_m.vocab_size != len(vocab) or lm_m.block_size < m.block_size or not m.aux_vocab_size:
        raise UserError(f"{lm_dir}: cannot warm-start from it: need the same n_layer/n_head/n_embd "
                        f"({m.n_layer}/{m.n_head}/{m.n_embd}), a vocabulary of this corpus's {len(vocab)} words "
                        f"(see `jax-llm ime export-words`), block_size >= {m.block_size}, and confirmed words")
    source = nnx.to_pure_dict(nnx.state(lm))
    words = np.asarray(source["wte"]["embedding"])

    def apply(params):
        pure = nnx.to_pure_dict(params)
        pure["blocks"], pure["ln_f"] = source["blocks"], source["ln_f"]
        pure["wpe"]["embedding"] = source["wpe"]["embedding"][: m.block_size]
        pure["aux_embed"]["embedding"] = np.asarray(pure["aux_embed"]["embedding"]).copy()
        pure["aux_embed"]["embedding"][: len(vocab)] = words
        if "head" in pure:  # untied; tied, the output layer is the aux embedding set above
            pure["head"]["kernel"] = words.T.copy()
        nnx.replace_by_pure_dict(params, pure)
        return params

    return apply
