"""Tokenizers: byte-level BPE or characters, both as HF `tokenizers` objects saved to one tokenizer.json.

Byte-level BPE is lossless for any UTF-8 text (Japanese, emoji, mixed scripts): text is split by the
GPT-2 pattern into runs of letters, digits, punctuation and whitespace, never by inserting spaces.
The char tokenizer (nanoGPT's shakespeare_char) maps each character of the corpus to one id.
"""

import codecs
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from jax_llm.errors import UserError

END_OF_TEXT = "<|endoftext|>"
UNKNOWN_CHAR = "<unk>"


def train_bpe(texts: Iterator[str], vocab_size: int) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[END_OF_TEXT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def train_char(texts: Iterator[str]) -> Tokenizer:
    chars = sorted(set().union(*(set(t) for t in texts)))
    tok = Tokenizer(models.WordLevel({c: i for i, c in enumerate(chars + [UNKNOWN_CHAR])}, unk_token=UNKNOWN_CHAR))
    tok.pre_tokenizer = pre_tokenizers.FixedLength(length=1)
    tok.decoder = decoders.Fuse()
    return tok


def build_tokenizer(kind: str, text_path: Path, vocab_size: int) -> Tokenizer:
    """`bpe`, `char`, or the path of an existing tokenizer.json."""
    if kind == "bpe":
        return train_bpe(read_chunks(text_path), vocab_size)
    if kind == "char":
        return train_char(read_chunks(text_path))
    path = Path(kind)
    if not path.is_file():
        raise UserError(f"--tokenizer must be bpe, char or a tokenizer.json file; '{kind}' is none of these")
    return load(path)


def load(path: Path) -> Tokenizer:
    try:
        return Tokenizer.from_file(str(path))
    except Exception as e:  # the Rust side raises plain Exception on malformed files
        raise UserError(f"cannot load tokenizer {path}: {str(e).splitlines()[0]}") from None


def read_chunks(path: Path, chunk_bytes: int = 1 << 20, start: int = 0, end: int | None = None) -> Iterator[str]:
    """Bytes [start, end) of the file as text, in pieces of about `chunk_bytes` bytes, each ending at a
    line break when possible (never inside a character). `start` must be a character boundary."""
    with open(path, "rb") as f:
        f.seek(start)
        left = (Path(path).stat().st_size if end is None else end) - start
        decoder, carry = codecs.getincrementaldecoder("utf-8")(), ""
        while left > 0 and (raw := f.read(min(chunk_bytes, left))):
            left -= len(raw)
            block = carry + decoder.decode(raw, final=left <= 0)
            cut = block.rfind("\n") + 1 or len(block)
            carry = block[cut:]
            if cut:
                yield block[:cut]
        if carry:
            yield carry


def encode_file(tok: Tokenizer, path: Path, start: int = 0, end: int | None = None) -> np.ndarray:
    """All tokens of bytes [start, end) of the file, encoded in parallel in line-aligned chunks."""
    dtype = token_dtype(tok.get_vocab_size())
    parts = []
    batch: list[str] = []
    for chunk in read_chunks(path, 1 << 16, start, end):
        batch.append(chunk)
        if len(batch) == 64:
            parts.extend(np.asarray(e.ids, dtype) for e in tok.encode_batch(batch, add_special_tokens=False))
            batch = []
    if batch:
        parts.extend(np.asarray(e.ids, dtype) for e in tok.encode_batch(batch, add_special_tokens=False))
    return np.concatenate(parts) if parts else np.zeros(0, dtype)


def token_dtype(vocab_size: int):
    return np.uint16 if vocab_size <= 1 << 16 else np.uint32
