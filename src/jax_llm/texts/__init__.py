"""Texts shipped inside the package, gzip-compressed, so that the first commands work from the install alone.

`tinyshakespeare.txt.gz` is karpathy/char-rnn @ 6f9487a6fe5b420b7ca9afb0d7c078e37c1d1b4e :
`data/tinyshakespeare/input.txt` (1,115,394 bytes; Shakespeare, public domain), compressed with
`gzip -9 -n`. It decompresses to the bytes the `tinyshakespeare` dataset pins by sha256, so it stands in
for that download (`jax_llm.datasets.fetch`).
"""

import gzip
import shutil
from importlib import resources
from pathlib import Path


def extract(name: str, dest: Path) -> None:
    """Decompress the embedded `name` (a file in this folder) to `dest`; the caller checks the bytes."""
    with resources.files(__name__).joinpath(name).open("rb") as raw, gzip.open(raw) as src, open(dest, "wb") as f:
        shutil.copyfileobj(src, f, 1 << 20)
