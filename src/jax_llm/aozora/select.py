"""Which works go in: the user's options (`aozora:modern:authors=...`), one file per work id, no
second copy of a work.

The snapshot lays a work out as `cards/<person id>/files/<work id>_(ruby|txt)[_<file id>]/<same>.txt`;
a work id can have several files (with and without ruby, re-releases). And the library holds some works
twice under two work ids (most often a second edition in old orthography): a work whose title an
earlier-kept work of the same person already has, and whose text overlaps it, is that second copy.
"""

import re
import zlib
from dataclasses import dataclass

from jax_llm.aozora.cards import MODERN, Card
from jax_llm.errors import UserError

_FILE = re.compile(r"cards/(\d+)/files/(\d+)_(ruby|txt)(?:_(\d+))?/[^/]+\.txt")
_SPACE = re.compile(r"\s+")
# A same-titled work sharing more than this fraction of its 6-grams with an earlier one is a copy. In
# aozora_sample.txt copies share 37% or more, different works 2.2% at most (its README's cut, 5%, was
# made on three authors); over the whole library the episodes of a series (錢形平次捕物控, 大菩薩峠) share
# up to 9%. A text too short for a fair estimate (under about 500 characters) is never called a copy.
OVERLAP, MIN_SAMPLED = 0.3, 32  # 32 sampled 6-grams: about 500 characters
OPTIONS = "modern, authors=ID-OR-NAME,..., died-before=YEAR"


@dataclass(frozen=True)
class WorkFile:
    card: str  # the person id of the folder
    work_id: int
    rank: tuple[bool, int]  # larger wins: a ruby file over a plain one, then the highest file id


def work_file(path: str) -> WorkFile | None:
    m = _FILE.fullmatch(path)
    if m is None:
        return None
    card, work, kind, file_id = m.groups()
    return WorkFile(card, int(work), (kind == "ruby", int(file_id or -1)))


@dataclass(frozen=True)
class Selection:
    """Public domain by the catalogue unless `public_domain` is off (only for a fixed, known list such as
    `aozora-cpu`); the other options only narrow it."""

    authors: frozenset[str] = frozenset()  # person ids (000148) or names (夏目漱石); empty: everyone
    modern: bool = False  # 新字新仮名 only
    died_before: int | None = None  # every credited person died before this year
    exclude: frozenset[int] = frozenset()  # work ids
    public_domain: bool = True
    name: str | None = None  # of a fixed selection (aozora-cpu)

    @property
    def needs_cards(self) -> bool:
        return self.public_domain or self.modern or self.died_before is not None

    def key(self) -> str:
        """A folder name for this selection's build in the cache."""
        if self.name:
            return self.name
        parts = ["modern"] * self.modern + [f"died-before={self.died_before}"] * (self.died_before is not None)
        parts += [f"authors={','.join(sorted(self.authors))}"] * bool(self.authors)
        return "+".join(["aozora" if self.public_domain else "aozora-all", *parts])

    def wants_file(self, f: WorkFile, card: Card | None) -> bool:
        """What the path and the catalogue decide, before the file is read."""
        if f.work_id in self.exclude or (self.needs_cards and card is None):  # no card: nothing says it is free
            return False
        if card is not None and not self._card_passes(card):
            return False
        if self.authors and all(a.isdigit() for a in self.authors):
            return bool(self.authors & _ids(f, card))
        return True

    def _card_passes(self, card: Card) -> bool:
        return ((not self.public_domain or card.public_domain()) and (not self.modern or card.orthography == MODERN)
                and (self.died_before is None or card.all_died_before(self.died_before)))

    def wants_author(self, f: WorkFile, card: Card | None, file_author: str) -> bool:
        """The author filter, once the file's author line is known: a person id, the catalogue's name of
        anyone credited, or the file's author line (spaces removed)."""
        if not self.authors:
            return True
        names = _ids(f, card) | {file_author.replace("\u3000", "").replace(" ", "")}
        if card is not None:
            names |= {p.name for p in card.persons}
        return bool(self.authors & names)


def _ids(f: WorkFile, card: Card | None) -> set[str]:
    return {f.card} | ({p.id for p in card.persons} if card else set())


def parse_spec(spec: str) -> Selection:
    """`aozora[:modern][:authors=A,B][:died-before=YEAR]` -> a Selection (options in any order)."""
    name, *options = spec.split(":")
    if name != "aozora":
        raise UserError(f"unknown Aozora corpus {name!r}: aozora[:OPTION...] with {OPTIONS}")
    kw = {}
    for option in options:
        key, sep, value = option.partition("=")
        if key == "modern" and not sep:
            kw["modern"] = True
        elif key == "authors" and value:
            kw["authors"] = frozenset(a.strip() for a in value.split(",") if a.strip())
        elif key == "died-before" and value.isdigit():
            kw["died_before"] = int(value)
        else:
            raise UserError(f"bad option {option!r} in {spec!r}: the options are {OPTIONS}")
    return Selection(**kw)


def fingerprint(text: str) -> frozenset[int]:
    """A consistent sample of the text's character 6-grams (whitespace removed): those whose CRC-32 is
    0 mod 16. Two fingerprints share about the fraction of 6-grams their texts share, in 1/16 the memory."""
    text = _SPACE.sub("", text)
    grams = (zlib.crc32(text[i:i + 6].encode()) for i in range(len(text) - 5))
    return frozenset(h for h in grams if h % 16 == 0)


def is_copy(later: frozenset[int], earlier: frozenset[int]) -> bool:
    """More than OVERLAP of the later work's 6-grams occur in the earlier one."""
    return len(later) >= MIN_SAMPLED and len(later & earlier) / len(later) > OVERLAP
