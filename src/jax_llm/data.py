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
    n_train: int  # tokens[:n_train] is train, the rest val


def prepare(text_path: Path, run_dir: Path, tokenizer_spec: str, bpe_vocab_size: int, val_fraction: float,
            resume: bool = False):
    """Tokenizer and token file in `run_dir`, reused when the same file and tokenizer were prepared before.

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
    same = meta is not None and meta.get("source_sha256") == source_sha and meta.get("tokenizer_spec") == tokenizer_spec
    if resume and not run.tokenizer.is_file():
        raise UserError(f"{run.tokenizer}: missing; a run is resumed with its own tokenizer")
    if same and run.tokenizer.is_file() and _complete(run, meta):
        return tokenizers.load(run.tokenizer), _open(run.tokens, meta, val_fraction)
    faults.reached("tokenizer")
    if resume:
        tok = tokenizers.load(run.tokenizer)
        print(f"warning: {run.tokens} is missing or damaged; encoding {text_path} again with the run's tokenizer",
              file=sys.stderr)
    else:
        tok = tokenizers.build_tokenizer(tokenizer_spec, text_path, bpe_vocab_size)
    faults.reached("data")
    ids = tokenizers.encode_file(tok, text_path)
    tmp = run.tokens.with_suffix(".tmp")
    ids.tofile(tmp)
    tmp.replace(run.tokens)
    if not resume:
        tok.save(str(run.tokenizer))
    meta = dict(source=str(text_path), source_sha256=source_sha, tokenizer_spec=tokenizer_spec,
                vocab_size=tok.get_vocab_size(), n_tokens=int(ids.size), dtype=np.dtype(ids.dtype).name)
    run.tokens_meta.write_text(json.dumps(meta, indent=2) + "\n")
    return tok, _open(run.tokens, meta, val_fraction)


def _read_meta(run: RunDir) -> dict | None:
    """tokens.json, or None when it is missing or unreadable (the token file is then prepared again)."""
    try:
        meta = json.loads(run.tokens_meta.read_text())
        return meta if isinstance(meta, dict) else None
    except (OSError, ValueError):
        return None


def _complete(run: RunDir, meta: dict) -> bool:
    try:
        return run.tokens.stat().st_size == int(meta["n_tokens"]) * np.dtype(meta["dtype"]).itemsize
    except (OSError, KeyError, TypeError, ValueError):
        return False


def _open(bin_path: Path, meta: dict, val_fraction: float) -> Corpus:
    tokens = np.memmap(bin_path, dtype=meta["dtype"], mode="r", shape=(meta["n_tokens"],))
    return Corpus(tokens, int(round(len(tokens) * (1 - val_fraction))))


@dataclass
class Streams:
    """Aligned streams: `inputs[i]` (and `aux[i]`) predicts `targets[i]`."""

    inputs: np.ndarray
    targets: np.ndarray
    aux: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.targets)


def lm_streams(tokens: np.ndarray) -> Streams:
    """Language modelling: each token predicts the next one (views, no copy)."""
    return Streams(inputs=tokens[:-1], targets=tokens[1:])


def lm_splits(corpus: Corpus, block_size: int) -> tuple[Streams, Streams]:
    train, val = corpus.tokens[: corpus.n_train], corpus.tokens[corpus.n_train:]
    for name, part in (("train", train), ("val", val)):
        if len(part) < block_size + 1:
            raise UserError(f"corpus too short: the {name} split has {len(part)} tokens, "
                            f"fewer than one block ({block_size} + 1); use a longer text or a smaller block_size")
    return lm_streams(train), lm_streams(val)


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
