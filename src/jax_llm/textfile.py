"""What every corpus passes through first: refuse what is not UTF-8 text, with one line; hash it."""

import codecs
import hashlib
from pathlib import Path

from jax_llm.errors import UserError


def check_text_file(path: Path) -> None:
    """Refuse, with one line, anything that is not a non-empty UTF-8 text file (read in chunks)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if path.is_dir():
        raise UserError(f"{path}: is a directory, expected a text file")
    if path.stat().st_size == 0:
        raise UserError(f"{path}: file is empty")
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    if b"\x00" in head:
        raise UserError(f"{path}: looks like a binary file (contains NUL bytes), expected UTF-8 text")
    decoder, offset = codecs.getincrementaldecoder("utf-8")(), 0
    with open(path, "rb") as f:
        try:
            while chunk := f.read(1 << 22):
                decoder.decode(chunk)
                offset += len(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as e:
            raise UserError(f"{path}: not valid UTF-8 (near byte {offset + max(e.start, 0)}); convert it to UTF-8 "
                            f"first") from None

def read_text(path: Path) -> str:
    check_text_file(path)
    return Path(path).read_text(encoding="utf-8")


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    return h.hexdigest()
