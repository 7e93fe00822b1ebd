"""Build a corpus from the snapshot archive: one pass over the stream, then the order, the copies, the file.

Into a temporary folder beside `dest`: each chosen work cleaned into works/<id>.txt (a better file for
the same work id replaces it), then the works in order (person id, then work id) without their second
copies, concatenated with one blank line between them into `aozora.txt`, with `works.tsv` (each work's
byte range and source) and `build.json` (what was built from what). The folder is renamed to `dest`
only when all of it is written and checked, so a half-built corpus is never found in the cache.
"""

import csv
import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from jax_llm.aozora import archive
from jax_llm.aozora.cards import Card
from jax_llm.aozora.clean import clean
from jax_llm.aozora.select import Selection, WorkFile, fingerprint, is_copy, work_file
from jax_llm.errors import UserError

TEXT, TABLE, RECORD = "aozora.txt", "works.tsv", "build.json"
COLUMNS = ["byte_offset", "bytes", "author_card", "work_id", "title", "author_as_in_file", "source_path",
           "git_blob_sha1"]  # as in the mirror's aozora_sample.works.tsv


@dataclass
class Chosen:
    file: WorkFile
    path: str
    title: str
    author: str
    blob: str


@dataclass
class Sources:
    archive: Path
    content_sha256: str | None  # the pinned ContentDigest; None: not checked (tests' own fixtures)
    cards: dict[int, Card] | None = None
    expect_text_sha256: str | None = None  # when the selection's result is known (aozora-cpu)
    record: dict | None = None  # copied into build.json (URLs, commits, archive checksums)


def _scan(src: Sources, sel: Selection, works: Path, quiet: bool) -> tuple[dict[int, Chosen], list[str]]:
    """Stream the archive once: digest every file, clean the chosen ones into `works`."""
    chosen: dict[int, Chosen] = {}
    undecodable: list[str] = []
    digest = archive.ContentDigest()
    with tqdm(total=src.archive.stat().st_size, unit="B", unit_scale=True, desc="aozora", disable=quiet) as bar:
        for path, data in archive.members(src.archive, bar.update):
            digest.add(path, data)
            f = work_file(path)
            card = src.cards.get(f.work_id) if f and src.cards is not None else None
            if f is None or not sel.wants_file(f, card):
                continue
            if f.work_id in chosen and chosen[f.work_id].file.rank >= f.rank:
                continue
            try:
                work = clean(data)
            except UnicodeDecodeError:
                undecodable.append(path)
                continue
            if sel.wants_author(f, card, work.author):
                (works / f"{f.work_id}.txt").write_text(work.text, encoding="utf-8")
                chosen[f.work_id] = Chosen(f, path, work.title, work.author, archive.git_blob_sha1(data))
    if src.content_sha256 is not None and digest.hexdigest() != src.content_sha256:
        raise UserError(f"{src.archive}: its files are not those of the pinned commit (content sha256 "
                        f"{digest.hexdigest()}, expected {src.content_sha256}); delete it to download again")
    return chosen, undecodable


def _without_copies(chosen: dict[int, Chosen], works: Path) -> tuple[list[Chosen], list[int]]:
    """The works in order, each dropped when an earlier-kept work of the same person and title shares its text."""
    titles = Counter((c.file.card, c.title) for c in chosen.values())
    kept: dict[tuple[str, str], list[frozenset[int]]] = {}  # fingerprints of the kept works of shared titles
    order, copies, person = [], [], None
    for c in sorted(chosen.values(), key=lambda c: (c.file.card, c.file.work_id)):
        if c.file.card != person:  # a person's works are contiguous: the last one's are never compared again
            kept, person = {}, c.file.card
        key = (c.file.card, c.title)
        if titles[key] > 1:
            mine = fingerprint((works / f"{c.file.work_id}.txt").read_text(encoding="utf-8"))
            if any(is_copy(mine, earlier) for earlier in kept.get(key, [])):
                copies.append(c.file.work_id)
                continue
            kept.setdefault(key, []).append(mine)
        order.append(c)
    return order, copies


def _concatenate(order: list[Chosen], works: Path, out: Path) -> str:
    """Write the text and the works table; the text's sha256."""
    h, offset = hashlib.sha256(), 0
    with open(out / TEXT, "wb") as text, open(out / TABLE, "w", encoding="utf-8", newline="") as table:
        rows = csv.writer(table, delimiter="\t", lineterminator="\n")
        rows.writerow(COLUMNS)
        for i, c in enumerate(order):
            piece = (b"\n" if i else b"") + (works / f"{c.file.work_id}.txt").read_bytes()
            text.write(piece)
            h.update(piece)
            start = offset + (1 if i else 0)
            offset += len(piece)
            rows.writerow([start, offset - start, c.file.card, c.file.work_id, c.title, c.author, c.path, c.blob])
    return h.hexdigest()


def build(src: Sources, sel: Selection, dest: Path, quiet: bool = False) -> Path:
    """Build `sel` from `src` into the folder `dest` (which must not exist yet); the text's path."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=".build-"))
    try:
        (tmp / "works").mkdir()
        chosen, undecodable = _scan(src, sel, tmp / "works", quiet)
        if not chosen:
            raise UserError(f"no work of the Aozora snapshot matches {sel.key()}")
        order, copies = _without_copies(chosen, tmp / "works")
        sha = _concatenate(order, tmp / "works", tmp)
        shutil.rmtree(tmp / "works")
        if src.expect_text_sha256 is not None and sha != src.expect_text_sha256:
            raise UserError(f"the {sel.key()} corpus built from {src.archive} has sha256 {sha}, expected "
                            f"{src.expect_text_sha256}")
        record = dict(src.record or {}, selection=sel.key(), works=len(order), bytes=(tmp / TEXT).stat().st_size,
                      text_sha256=sha, copies_dropped=copies, undecodable=undecodable)
        (tmp / RECORD).write_text(json.dumps(record, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if undecodable:
        print(f"aozora: {len(undecodable)} file(s) are not cp932 and were left out (listed in {dest / RECORD})",
              file=sys.stderr)
    return dest / TEXT
