"""`aozora`: Aozora Bunko as a named dataset, built once from a pinned snapshot into the cache.

`aozora` is every public-domain work of aozorahack/aozorabunko_text at COMMIT (the library's texts, one
.txt per zip), cleaned as the mirror's aozora_sample.txt was (`clean`), one file per work, second
copies dropped (`select`). Options narrow it: `aozora:modern`, `aozora:authors=000148,芥川龍之介`,
`aozora:died-before=1930`, combined with more colons. `aozora-cpu` is the mirror's aozora_sample.txt
(three authors, 720 works), which the same builder makes byte for byte from the same snapshot.

Sources, looked up as datasets.py does: the mirror folder, the cache, then a download into the cache.
The archive is checked by what it holds (CONTENT_SHA256, see archive.ContentDigest), which does not
depend on how GitHub compresses it; the catalogue that says what is public domain (cards.py) is not
pinned by a checksum yet: build.json records the sha256 of the one used.
"""

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from jax_llm.aozora import build as builder, cards
from jax_llm.aozora.select import Selection, parse_spec
from jax_llm.textfile import sha256_of

NAMES = ("aozora", "aozora-cpu")

COMMIT = "0984f7dc18a2270bdfd2ff99bf14fd1b3ebb4f65"  # 2023-03-22; the commit aozora_sample.txt was made from
ARCHIVE = f"aozorabunko_text-{COMMIT}.tar.gz"  # GitHub's name for it, and its top folder
ARCHIVE_URL = f"https://github.com/aozorahack/aozorabunko_text/archive/{COMMIT}.tar.gz"
# sha256 of the sorted `sha256sum` listing of its 17,442 files, computed from the commit itself (git
# archive, unpacked, and the one-liner in archive.ContentDigest; the builder's digest agrees).
CONTENT_SHA256 = "f807dfbc86198ad97feb5bc320f5b2128595d621a714555eef26e5ca330201fd"
# GitHub makes the .tar.gz on request; its bytes could not be fetched here, so they are not pinned.
# The first build records them in build.json ("archive_sha256"); once known, put that value here.
ARCHIVE_SHA256: str | None = None

CARDS_COMMIT = "c612a6ee1e82bfc735f6830b6a240d90633a439b"  # an aozorabunko/aozorabunko commit holding the file
CARDS = "list_person_all_extended_utf8.zip"
CARDS_URL = f"https://raw.githubusercontent.com/aozorabunko/aozorabunko/{CARDS_COMMIT}/index_pages/{CARDS}"
CARDS_SHA256: str | None = None  # not known here either; build.json records it ("cards_sha256")

CPU = Selection(authors=frozenset({"000081", "000148", "000879"}),  # 宮沢賢治 d. 1933, 夏目漱石 1916, 芥川龍之介 1927
                exclude=frozenset({60574}),  # an English translation by a living translator
                public_domain=False,  # known for this fixed list, so no catalogue is needed
                name="aozora-cpu")
SAMPLE, SAMPLE_SHA256 = "aozora_sample.txt", "e7eba031bd382b6403de6abb3935abacbde89462826dbdcc3c14b9c53064ac7f"


def is_name(name_or_path: str) -> bool:
    return name_or_path == "aozora-cpu" or name_or_path.split(":")[0] == "aozora"


def fetch(spec: str, data_dir: str | Path | None = None, cache_dir: str | Path | None = None,
          quiet: bool = False) -> Path:
    """The built corpus for `spec` (`aozora[:OPTION...]` or `aozora-cpu`): from the mirror or the cache,
    else built there once, downloading what the mirror lacks."""
    from jax_llm.datasets import _verified, default_cache_dir, mirror_dir

    sel, expect = (CPU, SAMPLE_SHA256) if spec == "aozora-cpu" else (parse_spec(spec), None)
    mirror = mirror_dir(data_dir)
    if expect and mirror is not None and (mirror / SAMPLE).is_file():
        return _verified(mirror / SAMPLE, expect, spec)
    root = (Path(cache_dir) if cache_dir else default_cache_dir()) / "aozora"
    dest = root / COMMIT[:12] / sel.key()
    if (dest / builder.RECORD).is_file():
        recorded = json.loads((dest / builder.RECORD).read_text(encoding="utf-8"))["text_sha256"]
        return _verified(dest / builder.TEXT, recorded, f"cached {spec} (delete {dest} to build it again)")
    if dest.exists():  # without its record it is not a finished build (it was changed by hand)
        shutil.rmtree(dest)
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=".download-") as tmp:
        archive = _source(ARCHIVE, ARCHIVE_URL, ARCHIVE_SHA256, mirror, root, Path(tmp))
        catalogue = _source(CARDS, CARDS_URL, CARDS_SHA256, mirror, root, Path(tmp)) if sel.needs_cards else None
        record = dict(commit=COMMIT, archive_url=ARCHIVE_URL, archive_sha256=sha256_of(archive),
                      content_sha256=CONTENT_SHA256)
        if catalogue is not None:
            record.update(cards_url=CARDS_URL, cards_sha256=sha256_of(catalogue))
        print(f"building {spec} from {archive} (once; into {dest})", file=sys.stderr)
        src = builder.Sources(archive, CONTENT_SHA256, cards.read(catalogue) if catalogue else None, expect, record)
        text = builder.build(src, sel, dest, quiet)
        for downloaded in Path(tmp).iterdir():  # verified by the build: kept for the next selection
            os.replace(downloaded, root / downloaded.name)
    return text


def _source(name: str, url: str, sha: str | None, mirror: Path | None, root: Path, tmp: Path) -> Path:
    """A source file from the mirror, the cache, or downloaded into `tmp`; checked when its sha256 is pinned."""
    from jax_llm.datasets import _download, _verified

    for place in ([mirror] if mirror is not None else []) + [root]:
        if (place / name).is_file():
            return _verified(place / name, sha, name) if sha else place / name
    _download(url, tmp / name)
    return _verified(tmp / name, sha, f"{name} downloaded from {url}") if sha else tmp / name

