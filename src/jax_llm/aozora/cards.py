"""Aozora Bunko's card data: who wrote (or translated) each work, when they died, its orthography and
whether the library counts it as out of copyright.

The text snapshot carries none of this (a file gives only its title and author lines), so it comes
from the library's own catalogue, `index_pages/list_person_all_extended_utf8.zip` in aozorabunko/
aozorabunko: one CSV row per (work, credited person).

Public domain, the default, is Aozora's own judgement as the catalogue records it: the work's
作品著作権フラグ and every credited person's 人物著作権フラグ are なし. Under Japanese law a work is
protected until the end of the 70th year after its author's death (since 2018-12-30; before, 50 years,
and what had expired was not revived), so everyone who died in 1967 or earlier is free, and nobody who
died later will be before 2039. The snapshot also holds works still in copyright that their holders
let the library publish (Creative Commons and the like): the flags say あり for those.
"""

import csv
import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from jax_llm.errors import UserError, one_line

MODERN = "新字新仮名"  # modern characters and modern kana usage; the others: 旧字旧仮名, 新字旧仮名, ...


@dataclass
class Person:
    id: str  # the card folder: cards/<id>/
    name: str  # family name then given name, as the catalogue writes them
    role: str  # 著者, 翻訳者, 編者, ...
    died: int | None  # the year, when known
    protected: bool  # 人物著作権フラグ == あり


@dataclass
class Card:
    work_id: int
    title: str
    orthography: str  # 文字遣い種別
    protected: bool  # 作品著作権フラグ == あり
    persons: list[Person] = field(default_factory=list)

    def public_domain(self) -> bool:
        return not self.protected and not any(p.protected for p in self.persons)

    def all_died_before(self, year: int) -> bool:
        """Every credited person has a known death year before `year` (an unknown date does not pass)."""
        return bool(self.persons) and all(p.died is not None and p.died < year for p in self.persons)


def _year(date: str) -> int | None:
    head = date.strip()[:4]
    return int(head) if head.isdigit() else None


def parse(rows) -> dict[int, Card]:
    """The catalogue's rows (dicts keyed by its Japanese column names) grouped into one card per work."""
    cards: dict[int, Card] = {}
    for row in rows:
        work = int(row["作品ID"])
        card = cards.setdefault(work, Card(work, row["作品名"], row["文字遣い種別"], row["作品著作権フラグ"] == "あり"))
        card.persons.append(Person(row["人物ID"], row["姓"] + row["名"], row["役割フラグ"], _year(row["没年月日"]),
                                   row["人物著作権フラグ"] == "あり"))
    return cards


def read(path: Path) -> dict[int, Card]:
    """The cards in the catalogue zip (its one .csv member, UTF-8)."""
    try:
        with zipfile.ZipFile(path) as z:
            name = next(n for n in z.namelist() if n.endswith(".csv"))
            with z.open(name) as f:
                return parse(csv.DictReader(io.TextIOWrapper(f, encoding="utf-8-sig", newline="")))
    except StopIteration:
        raise UserError(f"{path}: no .csv inside; expected Aozora Bunko's list_person_all_extended_utf8.zip") from None
    except (zipfile.BadZipFile, OSError, EOFError, UnicodeDecodeError, KeyError, ValueError) as e:
        raise UserError(f"{path}: not a readable Aozora Bunko catalogue ({one_line(e)})") from None
