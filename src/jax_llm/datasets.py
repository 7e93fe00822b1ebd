"""Named corpora (for `jax-llm train` and the input method): canonical URL, sha256, a cache, an offline mirror.

Figures only compare if everyone reads the same bytes, so every named dataset is checked by sha256
wherever it comes from. Lookup order: the mirror (`--data-dir`, else $JAX_LLM_DATA_DIR; laid out like
../shared/data), then the cache ($JAX_LLM_CACHE_DIR, else ~/.cache/jax-llm/datasets), then the copy
embedded in the package (`tinyshakespeare` only: it needs no network), then a download into the cache.
An embedded copy or a download is written to a temporary file, verified, then renamed: a corrupt or
interrupted one never leaves anything in the cache. `aozora[:OPTION...]` and `aozora-cpu` are built
from an archive instead (jax_llm/aozora). Any other value is taken as a text file path.
"""

import gzip
import http.client
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from jax_llm import aozora, texts
from jax_llm.errors import UserError
from jax_llm.textfile import sha256_of

DEFAULT_TEXT = "tinyshakespeare"  # what `jax-llm train` reads when given no text: embedded, so offline

_WIKITEXT2_ZIP = "https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-2-raw-v1.zip"
_WIKITEXT2_ZIP_SHA = "ef7edb566e3e2b2d31b29c1fdb0c89a4cc683597484c3dc2517919c615435a11"


@dataclass(frozen=True)
class Dataset:
    name: str
    filename: str  # path inside the mirror and the cache
    sha256: str  # of the text file itself
    url: str  # the text file, or the archive holding it as `member`
    member: str | None = None  # path inside the zip at `url`
    archive_sha256: str | None = None
    embedded: str | None = None  # a file in jax_llm/texts/ holding the same bytes, gzip-compressed


DATASETS = {
    d.name: d
    for d in [
        Dataset("shakespeare", "t8.shakespeare.txt",
                "c5601d266987ac885ca96522b1b4e439feb7eca39f0fe1111f7342b63b6468f3",
                "https://ocw.mit.edu/ans7870/6/6.006/s08/lecturenotes/files/t8.shakespeare.txt"),
        Dataset("tinyshakespeare", "tinyshakespeare.txt",
                "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
                "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
                embedded="tinyshakespeare.txt.gz"),
        Dataset("wikitext2", "wikitext-2/wiki.train.raw",
                "6707892fa3788b5ab9ed78ab5ff37d9fe825f6011a2ad4fcd6a6d467f0e7da57",
                _WIKITEXT2_ZIP, "wikitext-2-raw/wiki.train.raw", _WIKITEXT2_ZIP_SHA),
        Dataset("wikitext2-test", "wikitext-2/wiki.test.raw",
                "173c87a53759e0201f33e0ccf978e510c2042d7f2cb78229d9a50d79b9e7dd08",
                _WIKITEXT2_ZIP, "wikitext-2-raw/wiki.test.raw", _WIKITEXT2_ZIP_SHA),
    ]
}


def names() -> list[str]:
    """Every dataset name: the files above, then the corpora built from an archive (jax_llm/aozora)."""
    return [*DATASETS, *aozora.NAMES]


def cache_root(kind: str) -> Path:
    """Where downloaded datasets (`datasets`) and default models (`models`) are kept."""
    env = os.environ.get("JAX_LLM_CACHE_DIR")
    return (Path(env) if env else Path.home() / ".cache" / "jax-llm") / kind


def default_cache_dir() -> Path:
    return cache_root("datasets")


def mirror_dir(data_dir: str | Path | None = None) -> Path | None:
    d = data_dir or os.environ.get("JAX_LLM_DATA_DIR")
    return Path(d) if d else None


def _verified(path: Path, sha: str, what: str) -> Path:
    got = sha256_of(path)
    if got != sha:
        raise UserError(f"checksum mismatch for {what} ({path}): sha256 {got}, expected {sha}")
    return path


class DownloadError(UserError):
    """No network, or the server failed: the one failure a caller may answer with another text."""


def _download(url: str, dest: Path) -> None:
    print(f"downloading {url}", file=sys.stderr)
    try:
        with urllib.request.urlopen(url, timeout=60) as r, open(dest, "wb") as f:
            shutil.copyfileobj(r, f, 1 << 20)
    except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
        raise DownloadError(f"could not download {url}: {e}") from None


def fetch(ds: Dataset, data_dir: str | Path | None = None, cache_dir: str | Path | None = None) -> Path:
    """The verified local path of `ds` (mirror, cache, or a fresh download into the cache)."""
    mirror = mirror_dir(data_dir)
    if mirror is not None:
        if (mirror / ds.filename).is_file():
            return _verified(mirror / ds.filename, ds.sha256, ds.name)
        if ds.member and (mirror / Path(ds.url).name).is_file():
            return _extract(ds, _verified(mirror / Path(ds.url).name, ds.archive_sha256, ds.url),
                            Path(cache_dir) if cache_dir else default_cache_dir())
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    target = cache / ds.filename
    if target.is_file():
        return _verified(target, ds.sha256, f"cached {ds.name} (delete it to download again)")
    cache.mkdir(parents=True, exist_ok=True)
    if ds.embedded:
        return _unpack_embedded(ds, target)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as tmp:
        got = Path(tmp) / Path(ds.url).name
        _download(ds.url, got)
        if ds.member is None:
            _verified(got, ds.sha256, f"{ds.name} downloaded from {ds.url}")
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(got, target)
            return target
        _verified(got, ds.archive_sha256, f"{ds.name} archive downloaded from {ds.url}")
        return _extract(ds, got, cache)


def _unpack_embedded(ds: Dataset, target: Path) -> Path:
    """Decompress the package's copy of `ds`, verify it, and move it into the cache atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".embedded-") as tmp:
        out = Path(tmp) / "text"
        try:
            texts.extract(ds.embedded, out)
        except (FileNotFoundError, gzip.BadGzipFile, EOFError, zlib.error) as e:
            raise UserError(f"the embedded {ds.name} is missing or damaged ({e}); reinstall jax-llm") from None
        _verified(out, ds.sha256, f"the embedded {ds.name} (reinstall jax-llm)")
        os.replace(out, target)
    return target


def _extract(ds: Dataset, archive: Path, cache: Path) -> Path:
    """Take `ds.member` out of the zip, verify it, and move it into the cache atomically."""
    target = cache / ds.filename
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".extract-") as tmp:
        out = Path(tmp) / "member"
        try:
            with zipfile.ZipFile(archive) as z, z.open(ds.member) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        except (zipfile.BadZipFile, KeyError) as e:
            raise UserError(f"cannot extract {ds.member} from {archive}: {e}") from None
        _verified(out, ds.sha256, f"{ds.member} from {archive}")
        os.replace(out, target)
    return target


def text_path(name_or_path: str, data_dir: str | Path | None = None, cache: str | Path | None = None) -> Path:
    """A dataset name (see DATASETS), fetched; anything else is taken as a path, checked by its reader."""
    if name_or_path in DATASETS:
        return fetch(DATASETS[name_or_path], data_dir, cache)
    if aozora.is_name(name_or_path):
        return aozora.fetch(name_or_path, data_dir, cache)
    return Path(name_or_path)


def resolve(name_or_path: str, data_dir: str | Path | None = None, cache: str | Path | None = None) -> Path:
    """A dataset name or an existing file."""
    p = text_path(name_or_path, data_dir, cache)
    if p.is_file():
        return p
    raise UserError(f"unknown dataset {name_or_path!r}: not a file, and not one of {', '.join(names())}")
