"""One Aozora Bunko text file cleaned into plain prose: the rules of the mirror's README, in its order.

The files are Shift_JIS (cp932) with CRLF line ends and carry the library's markup: ruby readings
《...》 (with ｜ marking where a reading starts), editor and gaiji notes ［＃...］, a block explaining the
symbols, and a colophon from 底本： on. A language model should see the prose only.
"""

import re
from dataclasses import dataclass

_SYMBOL_RULE = re.compile(r"-{20,}")  # the dashed lines around 【テキスト中に現れる記号について】
_RUBY = re.compile(r"《[^《》]*》")
_NOTE = re.compile(r"［＃[^［］]*］")  # innermost first; repeated until none is left, so nested notes go too
_BLANK_RUN = re.compile(r"\n{3,}")


@dataclass(frozen=True)
class CleanWork:
    title: str  # the file's first line
    author: str  # the header's author line, as written (see `header_author`)
    text: str  # cleaned, ending with one newline


def decode(raw: bytes) -> str:
    """cp932 to str with LF line ends; a byte that is not cp932 raises UnicodeDecodeError."""
    return raw.decode("cp932").replace("\r\n", "\n")


def drop_symbol_block(lines: list[str]) -> list[str]:
    """Without the lines from the first through the second dashed line, when both are in the first 80."""
    rules = [i for i, line in enumerate(lines[:80]) if _SYMBOL_RULE.fullmatch(line)]
    return lines[:rules[0]] + lines[rules[1] + 1:] if len(rules) >= 2 else lines


def drop_footer(lines: list[str]) -> list[str]:
    """Without the colophon: from the last line that starts with 底本： to the end."""
    starts = [i for i, line in enumerate(lines) if line.startswith("底本：")]
    return lines[:starts[-1]] if starts else lines


def drop_markup(text: str) -> str:
    """Without ruby (《...》 and ｜) and without notes (［＃...］, nested ones included)."""
    text = _RUBY.sub("", text).replace("｜", "")
    while True:
        stripped = _NOTE.sub("", text)
        if stripped == text:
            return text
        text = stripped


def header_author(header: list[str]) -> str:
    """The author in the lines above the first blank line: title, any subtitles, then the author; a
    translation adds a last line ending in 訳 (the translator), so the line above it is the author."""
    if len(header) > 2 and header[-1].endswith("訳"):
        return header[-2]
    return header[-1] if len(header) > 1 else ""


def clean(raw: bytes) -> CleanWork:
    lines = drop_footer(drop_symbol_block(decode(raw).split("\n")))
    text = _BLANK_RUN.sub("\n\n", drop_markup("\n".join(lines))).strip("\n") + "\n"
    header = text.split("\n\n", 1)[0].split("\n")
    return CleanWork(header[0], header_author(header), text)
