"""The input-method job for the engine: aligned (code, previous word) -> word streams, the model sizes
that follow from the vocabulary, and the model directory's own files (model.json, vocab.json).

Position i reads code_i (702 ids) and, in the confirmed-words setting, the previous confirmed word
w_{i-1} (the `aux` stream: the word ids plus a start-of-text id), and is scored against w_i. Attention
is causal, so a prediction never sees a later code. Word ids are grouped by code (`Vocab.grouped`);
model directories record that as format 2, and an older one is refused in one line.
"""

import json
from collections.abc import Sequence
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from jax_llm import data
from jax_llm.ime.language.codes import NUM_CODES, code_ids
from jax_llm.ime.language.words import Vocab, WordCorpus
from jax_llm.ime.modelfiles import META_FILE, VOCAB_FILE
from jax_llm.ime.transformer import candidates

FORMAT = 2  # model.json's "format": 2 = word ids grouped by code
NOT_TYPED = NUM_CODES  # a lookahead model's input where the code is not typed yet


def ime_vocab(corpus: WordCorpus) -> Vocab:
    """The output vocabulary: the train split's words, ids grouped by code."""
    return Vocab.build(corpus.train).grouped()


def code_stream(words: Sequence[str]) -> np.ndarray:
    return code_ids(words).astype(np.int32)


def streams(vocab: Vocab, words: Sequence[str], confirmed: bool, lookahead: int = 0,
            seen: int | None = None) -> data.Streams:
    """Aligned (codes, previous word) -> word streams. OOV words are id 0 (never predicted).

    With `lookahead` K, position i reads code i and the K codes after it (inputs (N, 1 + K), NOT_TYPED
    past the end), so word i is predicted from codes[:i+K+1] and words[:i]: the decision of an input
    method that revises a word while the next K codes arrive. `seen`: how many of the K are typed yet
    (default all; the rest read NOT_TYPED), as when word i is shown before the later codes arrive."""
    ids = vocab.encode(words)
    prev = np.concatenate([[len(vocab)], ids[:-1]]).astype(np.int32)  # len(vocab) = start of text
    codes = code_stream(words)
    if lookahead:
        padded = np.r_[codes, np.full(lookahead, NOT_TYPED, np.int32)]
        later = [padded[k: k + len(codes)] for k in range(1, lookahead + 1)]
        seen = lookahead if seen is None else seen
        codes = np.stack([codes] + [c if k < seen else np.full_like(c, NOT_TYPED) for k, c in enumerate(later)], 1)
    return data.Streams(inputs=codes, targets=ids, aux=prev if confirmed else None)


def typed_codes(s: data.Streams) -> np.ndarray:
    """The code typed at each position (a lookahead model's inputs also hold the later ones)."""
    return s.inputs if s.inputs.ndim == 1 else s.inputs[:, 0]


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
                aux_vocab_size=len(vocab) + 1 if confirmed else 0, ahead=lookahead)



def save_meta(run_dir: Path, vocab: Vocab, **meta) -> None:
    """The input method's files beside the engine's: the word vocabulary and model.json."""
    vocab.save(Path(run_dir) / VOCAB_FILE)
    (Path(run_dir) / META_FILE).write_text(json.dumps({"kind": "transformer", "format": FORMAT, **meta}, indent=2)
                                           + "\n")
