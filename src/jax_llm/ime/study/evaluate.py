"""The FTCIM harness: one protocol for every model, so backoff, kn and the Transformer compare.

Protocol (the published study's): the corpus as `words.WordCorpus` (first 90% of the word stream is train,
the last 10% test); accuracy is the share of positions whose top-1 word is the true word. Online: the
prediction at position i may use codes[:i+1] and the confirmed words[:i] (the user accepted or corrected
each earlier word), never a later code. Test positions see the train words before them as context.
Train accuracy is measured on the train split itself, as the study did. A test word the model cannot
produce (out of its vocabulary) is simply an error; the OOV rate is reported beside.

Keystroke savings: the share of keys saved against typing every word in full plus a space, when each
test word is entered the cheapest way `keys.word_keys` allows (its code and a pick among the model's
candidates, paging if need be, or spelled in full), with the candidates ranked `DEPTH` deep (a word
below that is spelled: for words under 12 letters that is cheaper than paging to it anyway).

A model is scored one of two ways:

* per position, through `Predictor.candidates(code, context, k)`, with `context` a no-copy view of the
  true words before the position (`ContextView`);
* in batch, through `Predictor.rank_split(codes, words, k, start)`: one call per split returning, for
  each position i in start..len(codes)-1, its top-k words (best first; fewer, or none, allowed), under
  the online rule above. By default it asks `candidates` position by position (`ContextView`); the
  n-gram models override it to score positions grouped by code, and the Transformer computes all the
  positions of a split in one causal pass.
"""

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from jax_llm.ime.language.codes import word_code
from jax_llm.ime.language.keys import word_keys
from jax_llm.ime.predictor import Predictor
from jax_llm.ime.language.words import WordCorpus


def hit_rates(ranked: list[list[str]], truth: Sequence[str], ks=(1, 3, 5)) -> dict[int, float]:
    """Share of positions whose true word is within the top k, for each k."""
    if not truth:
        return {k: 0.0 for k in ks}
    return {k: sum(t in r[:k] for r, t in zip(ranked, truth)) / len(truth) for k in ks}


DEPTH = 100  # candidates ranked per test position, for top-k and keystroke savings


def keys_saved(ranked: list[list[str]], truth: Sequence[str]) -> float:
    """1 - (keys to enter `truth` with these candidate lists) / (keys to type each word and a space)."""
    full = sum(len(w) + 1 for w in truth)
    return 1 - sum(word_keys(w, r)[0] for r, w in zip(ranked, truth)) / max(full, 1)


def keystroke_times(predictor: Predictor, codes: Sequence[str], words: Sequence[str], start: int,
                    sessions: int = 30, length: int = 20, k: int = 5) -> list[float]:
    """Seconds of each `candidates` call (one keystroke) in simulated typing sessions: at `sessions` test
    positions spread evenly, `length` consecutive words are typed, each call's context one confirmed
    word longer than the last (the first call of a session, which may build state, is timed too)."""
    times = []
    for s0 in np.linspace(start, max(start, len(codes) - length), num=sessions, dtype=int).tolist():
        context = list(words[max(0, s0 - 20_000) : s0])
        for i in range(s0, min(s0 + length, len(codes))):
            t = time.perf_counter()
            predictor.candidates(codes[i], context, k)
            times.append(time.perf_counter() - t)
            context.append(words[i])
    return times


def keystroke_us(*args, **kwargs) -> float:
    """Median microseconds per keystroke (see keystroke_times)."""
    return float(np.median(keystroke_times(*args, **kwargs)) * 1e6)


@dataclass
class Row:
    """One line of the study's table (model, order, train and test accuracy), with top-3/5 accuracy, the
    OOV rate, the time per prediction and the split sizes beside."""

    model: str
    order: str
    train_acc: float | None
    test_acc: float
    top3: float
    top5: float
    keys_saved: float
    oov_rate: float
    us_per_prediction: float
    n_train: int
    n_test: int


def score(predictor: Predictor, corpus: WordCorpus, model: str, order: str, train_acc: bool = True) -> Row:
    """Score `predictor` (trained on corpus.train) on train (top-1) and test (top-1/3/5): one row of the
    table, labelled `model` and `order`. The OOV rate is measured when the model has a `vocab`."""
    codes = [word_code(w) for w in corpus.words]
    words, nt = corpus.words, corpus.n_train
    acc_train = None
    if train_acc:
        acc_train = hit_rates(predictor.rank_split(codes[:nt], words[:nt], 1), words[:nt], (1,))[1]
    test = corpus.test
    ranked = predictor.rank_split(codes, words, DEPTH, start=nt)
    h = hit_rates(ranked, test)
    vocab = predictor.vocab
    oov = sum(w not in vocab.index for w in test) / len(test) if vocab is not None else float("nan")
    return Row(model, order, acc_train, h[1], h[3], h[5], keys_saved(ranked, test), oov,
               keystroke_us(predictor, codes, words, nt), nt, len(test))


def table(rows: list[Row], title: str) -> str:
    """The rows as a markdown table (also what `eval` prints)."""
    head = ["model", "order", "train acc", "test acc", "top-3", "top-5", "keys saved", "OOV rate", "µs/prediction"]
    lines = [f"### {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * 7]
    for r in rows:
        train = "—" if r.train_acc is None else f"{r.train_acc:.3f}"
        lines.append(f"| {r.model} | {r.order} | {train} | {r.test_acc:.3f} | {r.top3:.3f} | {r.top5:.3f} | "
                     f"{r.keys_saved:.3f} | {r.oov_rate:.3f} | {r.us_per_prediction:.0f} |")
    return "\n".join(lines) + "\n"


def write_reports(rows: list[Row], meta: dict, json_path: Path | None, md_path: Path | None, title: str) -> None:
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps({**meta, "rows": [asdict(r) for r in rows]}, indent=1) + "\n")
    if md_path:
        md_path.parent.mkdir(parents=True, exist_ok=True)
        md_path.write_text(table(rows, title))
