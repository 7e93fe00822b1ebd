"""n-gram model directories: training a model by kind, saving (model.json, vocab.json, arrays.npz) and
loading it, and the default model: one trained on `shakespeare` once and cached (on the embedded
`tinyshakespeare` where `shakespeare` cannot be downloaded)."""

import json
import os
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np

from jax_llm.datasets import DEFAULT_TEXT, DownloadError, cache_root
from jax_llm.errors import UserError
from jax_llm.ime.language.codes import NUM_CODES
from jax_llm.ime.modelfiles import check_fields, read_meta, unreadable
from jax_llm.ime.ngram.backoff import Backoff, BackoffLevel
from jax_llm.ime.ngram.kn import KN, KNConfig
from jax_llm.ime.ngram.kn_table import KNLevel, KNTable
from jax_llm.ime.ngram.tune import train_kn
from jax_llm.ime.language.words import Vocab, load_corpus

MODEL_KINDS = ("backoff", "kn")
FORMAT_VERSION = 1


def train(kind: str, words: Sequence[str], vocab: Vocab, order: int | None = None, log=None):
    """Train a `backoff` (default order 6) or `kn` (default max order 4, tuned) model on `words`."""
    if kind == "backoff":
        if order is not None and order < 1:
            raise UserError(f"--order must be at least 1, got {order}")
        return Backoff.train(words, vocab, order or 6)
    if kind == "kn":
        return train_kn(words, vocab, order or 4, log=log)
    raise UserError(f"unknown n-gram model {kind!r}; one of {', '.join(MODEL_KINDS)}")


def _level_arrays(levels, first: int, prefix: str = "") -> dict[str, np.ndarray]:
    """The levels' arrays by their names on disk: prefix + name + level number (from `first`)."""
    return {f"{prefix}{name}{i}": a for i, level in enumerate(levels, first)
            for name, a in zip(level.ON_DISK, level) if a is not None}


def _levels(level_type, arrays: dict[str, np.ndarray], n: int, first: int, prefix: str = "",
            path: Path | None = None) -> list:
    """`_level_arrays` read back: n levels of `level_type`, an array missing on disk as None. Only a
    level 0 may lack its first array (Kneser-Ney's history trie: the empty history has none); another
    missing one means the file (`path`) does not belong to the model.json beside it."""
    missing = [f"{prefix}{name}{i}" for i in range(first, first + n) for j, name in enumerate(level_type.ON_DISK)
               if f"{prefix}{name}{i}" not in arrays and (i, j) != (0, 0)]
    if missing:
        raise UserError(f"{path}: no array {missing[0]!r} ({len(missing)} missing), which the orders in "
                        f"model.json need")
    return [level_type(*(arrays.get(f"{prefix}{name}{i}") for name in level_type.ON_DISK))
            for i in range(first, first + n)]


def save(model, out: Path, meta: dict) -> None:
    """model.json (kind, settings, provenance), vocab.json, arrays.npz; written to a temporary
    directory first and renamed, so an interrupted save never leaves a half model behind."""
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    model.vocab.save(tmp / "vocab.json")
    if isinstance(model, Backoff):
        arrays, info = _level_arrays(model.levels, 1), {"order": model.order}
    else:
        arrays = _level_arrays(model.codes_lm.levels, 0, "codes_") | _level_arrays(model.words_lm.levels, 0, "words_")
        info = {"config": asdict(model.config), "max_code_order": model.codes_lm.order,
                "max_word_order": model.words_lm.order}
    np.savez(tmp / "arrays.npz", **arrays)
    (tmp / "model.json").write_text(json.dumps({"kind": model.kind, "format": FORMAT_VERSION, **info, **meta},
                                               indent=1))
    if out.exists():
        old = out.with_name(out.name + ".old")
        os.replace(out, old)
        os.replace(tmp, out)
        for f in old.iterdir():
            f.unlink()
        old.rmdir()
    else:
        os.replace(tmp, out)


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:  # missing, truncated, not an archive
        raise unreadable(path, e, "a valid .npz archive") from None


def load(path: Path):
    """A model directory written by `save` (`jax-llm ime train-ngram`); a damaged file is refused with one
    line naming it (`UserError`)."""
    path = Path(path)
    meta, where = read_meta(path), path / "model.json"
    if meta["kind"] not in MODEL_KINDS:
        raise UserError(f"{where}: a {meta['kind']} model, not an n-gram model")
    orders = [meta[key] for key in ("order", "max_code_order", "max_word_order") if key in meta]
    if min(orders) < 1:
        raise UserError(f"{where}: orders must be 1 or more, got {min(orders)}")
    vocab = Vocab.load(path / "vocab.json")
    arrays, npz = _read_arrays(path / "arrays.npz"), path / "arrays.npz"
    if meta["kind"] == "backoff":
        return Backoff(vocab, _levels(BackoffLevel, arrays, meta["order"], 1, path=npz))
    code_order, word_order = meta["max_code_order"], meta["max_word_order"]
    config = {f.name: f.type for f in fields(KNConfig)}
    check_fields(where, meta["config"], config, required=False, where="config.")
    if unknown := set(meta["config"]) - set(config):
        raise UserError(f"{where}: unknown setting 'config.{min(unknown)}'")
    return KN(vocab, KNTable(code_order, NUM_CODES, _levels(KNLevel, arrays, code_order, 0, "codes_", npz)),
              KNTable(word_order, len(vocab), _levels(KNLevel, arrays, word_order, 0, "words_", npz)),
              KNConfig(**meta["config"]))


def default_model_dir(kind: str, dataset: str = "shakespeare") -> Path:
    return cache_root("models") / f"{kind}-{dataset}"


def load_or_train_default(kind: str):
    """The `kind` model trained on `shakespeare` (train split, train-only vocabulary), cached. Where that
    text cannot be downloaded, the same model on the embedded text: the input method works offline."""
    d = default_model_dir(kind)
    if (d / "model.json").is_file():
        return load(d)
    try:
        corpus = load_corpus("shakespeare")
    except DownloadError as e:
        print(f"jax-llm: {e}; using the {kind} model trained on the embedded {DEFAULT_TEXT} instead",
              file=sys.stderr)
        d = default_model_dir(kind, DEFAULT_TEXT)
        if (d / "model.json").is_file():
            return load(d)
        corpus = load_corpus(DEFAULT_TEXT)
    vocab = Vocab.build(corpus.train)
    save(train(kind, corpus.train, vocab), d, {"dataset": corpus.name, "vocab": "train"})
    return load(d)
