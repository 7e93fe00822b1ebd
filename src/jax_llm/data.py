"""From a text file to batches: checks, a memory-mapped token file, aligned streams, windows.

A job is a pair of aligned streams: position i of `inputs` (and of `aux`, if any) is scored against
position i of `targets`. For language modelling the targets are the tokens shifted by one; for the
input method they are the word ids of the codes. The trainer only ever sees windows of these streams.
"""

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jax_llm import faults
from jax_llm import tokenizer as tokenizers
from jax_llm.errors import UserError
from jax_llm.rundir import RunDir
from jax_llm.textfile import sha256_of

IGNORE = -1  # a target that is not scored (padding of the last eval window)


@dataclass
class Corpus:
    tokens: np.ndarray  # memory-mapped, the whole file
    n_train: int  # tokens[:n_train] encode the train bytes, the rest the val bytes
    train_bytes: int  # UTF-8 bytes of the text before the split (`split_offset`)
    val_bytes: int  # from the split to the end


def split_offset(text_path: Path, val_fraction: float) -> int:
    """The byte where val starts: the last `val_fraction` of the file's bytes, moved forward to the next line
    start (to the next character start when no line starts after it before the end).

    The split is on bytes, not tokens, so that runs with any tokenizer are scored on the same val text and
    their bits per byte compare; each side is tokenized on its own.
    """
    size = Path(text_path).stat().st_size
    cut = size - round(size * val_fraction)
    if cut <= 0:
        return 0
    with open(text_path, "rb") as f:
        f.seek(cut - 1)  # a line starts at `cut` when the byte before it ends a line
        at = cut - 1
        while block := f.read(1 << 16):
            if (newline := block.find(b"\n")) >= 0:
                if at + newline + 1 < size:
                    return at + newline + 1
                break
            at += len(block)
        f.seek(cut)
        tail = f.read(4)  # a UTF-8 character is at most 4 bytes; continuation bytes are 0b10xxxxxx
    return cut + next((i for i, b in enumerate(tail) if b & 0xC0 != 0x80), len(tail))


def prepare(text_path: Path, run_dir: Path, tokenizer_spec: str, bpe_vocab_size: int, val_fraction: float,
            resume: bool = False):
    """Tokenizer and token file in `run_dir`, reused when the same file, tokenizer and split were prepared
    before. The train and val bytes (`split_offset`) are encoded separately, one after the other.

    A resumed run keeps its tokenizer, whatever happens: one that is missing or unreadable is refused in
    one line, and another text than the run's is refused. A token file that is missing or cut short is
    encoded again with the run's tokenizer, which gives the same tokens.
    """
    run = RunDir(run_dir)
    run.path.mkdir(parents=True, exist_ok=True)
    source_sha = sha256_of(text_path)
    meta = _read_meta(run)
    if resume and meta is not None and meta.get("source_sha256") != source_sha:
        raise UserError(f"cannot resume {run.path}: it was trained on {meta.get('source')} (sha256 "
                        f"{str(meta.get('source_sha256'))[:12]}...), not on {text_path} (sha256 {source_sha[:12]}...)")
    same = meta is not None and (meta.get("source_sha256"), meta.get("tokenizer_spec"), meta.get("val_fraction")) \
        == (source_sha, tokenizer_spec, val_fraction)
    if resume and not run.tokenizer.is_file():
        raise UserError(f"{run.tokenizer}: missing; a run is resumed with its own tokenizer")
    if same and run.tokenizer.is_file() and _complete(run, meta):
        return tokenizers.load(run.tokenizer), _open(run.tokens, meta)
    faults.reached("tokenizer")
    if resume:
        tok = tokenizers.load(run.tokenizer)
        print(f"warning: {run.tokens} is missing or damaged (or split on tokens, by an older version); encoding "
              f"{text_path} again with the run's tokenizer", file=sys.stderr)
    else:
        tok = tokenizers.build_tokenizer(tokenizer_spec, text_path, bpe_vocab_size)
    faults.reached("data")
    size, cut = Path(text_path).stat().st_size, split_offset(text_path, val_fraction)
    train = tokenizers.encode_file(tok, text_path, 0, cut)
    ids = np.concatenate([train, tokenizers.encode_file(tok, text_path, cut, size)])
    tmp = run.tokens.with_suffix(".tmp")
    ids.tofile(tmp)
    tmp.replace(run.tokens)
    if not resume:
        tok.save(str(run.tokenizer))
    meta = dict(source=str(text_path), source_sha256=source_sha, tokenizer_spec=tokenizer_spec,
                vocab_size=tok.get_vocab_size(), n_tokens=int(ids.size), dtype=np.dtype(ids.dtype).name,
                val_fraction=val_fraction, train_bytes=cut, train_tokens=int(train.size), val_bytes=size - cut,
                val_tokens=int(ids.size - train.size))
    run.tokens_meta.write_text(json.dumps(meta, indent=2) + "\n")
    return tok, _open(run.tokens, meta)


def _read_meta(run: RunDir) -> dict | None:
    """tokens.json, or None when it is missing or unreadable (the token file is then prepared again)."""
    try:
        meta = json.loads(run.tokens_meta.read_text())
        return meta if isinstance(meta, dict) else None
    except (OSError, ValueError):
        return None


def _complete(run: RunDir, meta: dict) -> bool:
    try:
        n = int(meta["n_tokens"])
        return run.tokens.stat().st_size == n * np.dtype(meta["dtype"]).itemsize \
            and int(meta["train_tokens"]) + int(meta["val_tokens"]) == n
    except (OSError, KeyError, TypeError, ValueError):
        return False


def _open(bin_path: Path, meta: dict) -> Corpus:
    tokens = np.memmap(bin_path, dtype=meta["dtype"], mode="r", shape=(meta["n_tokens"],))
    return Corpus(tokens, int(meta["train_tokens"]), int(meta["train_bytes"]), int(meta["val_bytes"]))


@dataclass
class Streams:
    """Aligned streams: `inputs[i]` (and `aux[i]`) predicts `targets[i]`."""

    inputs: np.ndarray
    targets: np.ndarray
    aux: np.ndarray | None = None
    bytes_per_token: float | None = None  # text bytes per target (language modelling): loss to bits per byte

    def __len__(self) -> int:
        return len(self.targets)


def lm_streams(tokens: np.ndarray, bytes_per_token: float | None = None) -> Streams:
    """Language modelling: each token predicts the next one (views, no copy)."""
    return Streams(inputs=tokens[:-1], targets=tokens[1:], bytes_per_token=bytes_per_token)


def lm_splits(corpus: Corpus, block_size: int) -> tuple[Streams, Streams]:
    """Train predicts its tokens after the first; val predicts every val token, the first one from the last
    train token, so the val loss covers exactly the val bytes."""
    n_train, n_val = corpus.n_train, len(corpus.tokens) - corpus.n_train
    for name, n, need in (("train", n_train, block_size + 1), ("val", n_val, block_size)):
        if n < need:
            raise UserError(f"corpus too short: the {name} split has {n} tokens, fewer than one block "
                            f"({need}); use a longer text or a smaller block_size")
    return (lm_streams(corpus.tokens[:n_train], corpus.train_bytes / n_train),
            lm_streams(corpus.tokens[n_train - 1:], corpus.val_bytes / n_val))


def random_starts(streams: Streams, block: int, seed: int, step: int, shape: tuple[int, ...]) -> np.ndarray:
    """Start positions of step `step`'s random windows.

    They depend only on (seed, step), so a resumed run, or several processes each taking its own
    rows, sees exactly the batches of one uninterrupted single-process run.
    """
    return np.random.default_rng([seed, step]).integers(0, len(streams) - block + 1, size=shape)


def sequential_windows(streams: Streams, block: int, n_rows: int):
    """Batches covering every position of the streams once (the last window is padded with IGNORE)."""
    starts = np.arange(0, len(streams), block)
    for i in range(0, len(starts), n_rows):
        chunk = starts[i: i + n_rows]
        batch = gather(streams, np.minimum(chunk, max(len(streams) - block, 0)), block)
        # windows moved back to fit score only the positions not scored by the previous window
        shift = chunk - np.minimum(chunk, max(len(streams) - block, 0))
        cols = np.arange(block)[None, :]
        batch["targets"] = np.where(cols >= shift[:, None], batch["targets"], IGNORE)
        pad = n_rows - len(chunk)
        if pad:
            batch = {k: np.concatenate([v, np.full((pad, block), IGNORE if k == "targets" else 0, v.dtype)])
                     for k, v in batch.items()}
        yield batch


def gather(streams: Streams, starts: np.ndarray, block: int) -> dict:
    """Windows of `block` positions starting at `starts` (any shape); arrays of shape starts.shape + (block,)."""
    idx = starts[..., None] + np.arange(block)
    batch = {"inputs": streams.inputs[idx].astype(np.int32), "targets": streams.targets[idx].astype(np.int32)}
    if streams.aux is not None:
        batch["aux"] = streams.aux[idx].astype(np.int32)
    return batch
