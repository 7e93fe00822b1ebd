"""The snapshot archive read as a stream: each file's path (inside the repository) and bytes, in order.

GitHub serves a commit as a .tar.gz (or a .zip) of a few hundred MB; it is never held in memory whole:
tar is read sequentially ("r|gz"), zip member by member. Whatever is damaged or cut short (a bad gzip
stream, a short tar, a zip CRC error) becomes one UserError line. `ContentDigest` pins what the archive
holds independently of how GitHub compresses it.
"""

import gzip
import hashlib
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

from jax_llm.errors import UserError, one_line

_DAMAGED = (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, gzip.BadGzipFile, OSError, KeyError)


def _inside(name: str) -> str:
    """`aozorabunko_text-<commit>/cards/...` -> `cards/...` (GitHub puts one top folder around the tree)."""
    return name.split("/", 1)[1] if "/" in name else ""


class _Counted:
    """A file read sequentially that reports how many bytes each read took (for the progress bar)."""

    def __init__(self, f, on_bytes: Callable[[int], object]):
        self.f, self.on_bytes = f, on_bytes

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.on_bytes(len(data))
        return data


def _tar_members(path: Path, on_bytes) -> Iterator[tuple[str, bytes]]:
    with open(path, "rb") as f, tarfile.open(fileobj=_Counted(f, on_bytes), mode="r|gz") as tar:
        for info in tar:
            if info.isfile():
                yield _inside(info.name), tar.extractfile(info).read()


def _zip_members(path: Path, on_bytes) -> Iterator[tuple[str, bytes]]:
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            if not info.is_dir():
                yield _inside(info.filename), z.read(info)
            on_bytes(info.compress_size)


def members(path: Path, on_bytes: Callable[[int], object] = lambda n: None) -> Iterator[tuple[str, bytes]]:
    """(path inside the repository, bytes) of every regular file in a .tar.gz or .zip, in archive order;
    `on_bytes(n)` as the archive is read."""
    path = Path(path)
    read = _zip_members if path.name.endswith(".zip") else _tar_members
    try:
        yield from read(path, on_bytes)
    except _DAMAGED as e:
        raise UserError(f"{path}: damaged or truncated archive ({one_line(e)}); delete it to download again") \
            from None


class ContentDigest:
    """sha256 of the `sha256sum` listing of every file, sorted by path: the same for any archive of one
    commit, so it can be computed from a git checkout. To check by hand, in the unpacked top folder:
    `find . -type f -printf '%P\\n' | LC_ALL=C sort | xargs -d '\\n' sha256sum | sha256sum`."""

    def __init__(self):
        self.lines: list[str] = []

    def add(self, path: str, data: bytes) -> None:
        self.lines.append(f"{hashlib.sha256(data).hexdigest()}  {path}\n")

    def hexdigest(self) -> str:
        ordered = sorted(self.lines, key=lambda line: line[66:].encode())
        return hashlib.sha256("".join(ordered).encode()).hexdigest()


def git_blob_sha1(data: bytes) -> str:
    """The file's git blob id: lets a works-table row be checked against the repository's tree."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
