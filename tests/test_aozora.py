"""The `aozora` builder on a small snapshot made here: Shift_JIS files laid out as aozorahack/aozorabunko_text
holds them, packed as GitHub serves a commit, with a catalogue like aozorabunko's; no network."""

import csv
import hashlib
import io
import json
import os
import random
import socket
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from jax_llm import aozora
from jax_llm.aozora import archive, build as builder
from jax_llm.aozora.cards import read
from jax_llm.aozora.clean import clean
from jax_llm.aozora.select import Selection, parse_spec
from jax_llm.datasets import resolve
from jax_llm.errors import UserError
from test_datasets import server  # noqa: F401  (a fixture: a local HTTP server)

TOP = f"aozorabunko_text-{aozora.COMMIT}"
SYMBOLS = ["-" * 55, "【テキスト中に現れる記号について】", "", "《》：ルビ", "（例）泡《あわ》", "",
           "｜：ルビの付く文字列の始まりを特定する記号", "（例）二｜梃《ちょう》", "", "［＃］：入力者注　主に外字の説明や、傍点の位置の指定",
           "-" * 55]
FOOTER = ["底本：「夏目漱石全集2」ちくま文庫、筑摩書房", "　　　1987（昭和62）年10月27日第1刷発行", "入力：誰か",
          "校正：誰か", "青空文庫作成ファイル：", "このファイルは、インターネットの図書館、青空文庫（http://www.aozora.gr.jp）で作られました。"]
BOTCHAN = ["　親譲《おやゆず》りの無鉄砲《むてっぽう》で小供の時から損ばかりしている。",
           "　小学校に居る時分学校の二｜階《かい》から飛び降りて一週間ほど腰《こし》を抜かした事がある。［＃「事がある」に傍点］",
           "　なぜそんな無闇をしたと聞く人があるかも知れぬ。別段深い理由でもない。",
           "", "", "", "",
           "　※［＃「魚＋急」、第4水準2-93-63］を食べた。［＃ここから２字下げ［＃「２」は小書き］］",
           "　新築の二階から首を出していたら、同級生の一人が冗談に、いくら威張っても、そこから飛び降りる事は出来まい。"]


def prose(seed: int) -> list[str]:
    """20 lines of random kana (all in cp932): two seeds' texts share no 6-gram to speak of."""
    kana = [chr(c) for c in range(0x3041, 0x3094)] + [chr(c) for c in range(0x30A1, 0x30F7)]
    rng = random.Random(seed)
    return ["　" + "".join(rng.choices(kana, k=40)) + "。" for _ in range(20)]


def aozora_file(title: str, author: str, body: list[str]) -> bytes:
    """A text file as the library writes one: header, symbol block, body, colophon; cp932, CRLF."""
    return "\r\n".join([title, author, "", *SYMBOLS, "", *body, "", "", "", *FOOTER, ""]).encode("cp932")


# (path inside the repository, bytes); the catalogue's rows below.
FILES = {
    "cards/000148/files/752_txt_1000/752_txt_1000.txt": aozora_file("坊っちゃん", "夏目漱石", ["平仮名だけの版。"]),
    "cards/000148/files/752_ruby_900/752_ruby_900.txt": aozora_file("坊っちゃん", "夏目漱石", ["古い版。"]),
    "cards/000148/files/752_ruby_2000/752_ruby_2000.txt": aozora_file("坊っちゃん", "夏目漱石", BOTCHAN + prose(7)),
    # the same work again, in old orthography, under another work id: a second copy
    "cards/000148/files/58842_ruby_3000/58842_ruby_3000.txt":
        aozora_file("坊っちゃん", "夏目漱石", BOTCHAN[:3] + ["　舊假名の一行が違ふ。"] + BOTCHAN[4:] + prose(7)),
    # two different works that share a title: both stay
    "cards/000148/files/799_ruby_10/799_ruby_10.txt": aozora_file("夢", "夏目漱石", prose(1)),
    "cards/000148/files/4308_ruby_11/4308_ruby_11.txt": aozora_file("夢", "夏目漱石", prose(2)),
    "cards/000148/files/6000_ruby_12/6000_ruby_12.txt": aozora_file("目録にない作品", "夏目漱石", prose(3)),
    "cards/000081/files/456_ruby_145/456_ruby_145.txt": aozora_file("銀河鉄道の夜", "宮沢賢治", prose(4)),
    "cards/000081/files/457_ruby_146/457_ruby_146.txt": b"\x82\xa0\x85\xff not cp932\r\n",
    "cards/001257/files/59898_ruby_70679/59898_ruby_70679.txt":
        aozora_file("ウェストミンスター寺院", "ワシントン・アーヴィング\r\n吉田甲子太郎訳", prose(5)),
    "cards/001999/files/70000_ruby_1/70000_ruby_1.txt": aozora_file("新しい本", "今の作家", prose(6)),
    "README.md": "# aozorabunko_text\n".encode(),
}
PERSONS = {"000148": ("夏目", "漱石", "1916-12-09"), "000081": ("宮沢", "賢治", "1933-09-21"),
           "001257": ("アーヴィング", "ワシントン", "1859-11-28"), "009999": ("吉田", "甲子太郎", "1957-01-08"),
           "001999": ("今の", "作家", "")}
# work id, title, orthography, work protected, [(person id, role, person protected)]
CARDS = [(752, "坊っちゃん", "新字新仮名", "なし", [("000148", "著者", "なし")]),
         (58842, "坊っちゃん", "旧字旧仮名", "なし", [("000148", "著者", "なし")]),
         (799, "夢", "新字旧仮名", "なし", [("000148", "著者", "なし")]),
         (4308, "夢", "新字新仮名", "なし", [("000148", "著者", "なし")]),
         (456, "銀河鉄道の夜", "新字新仮名", "なし", [("000081", "著者", "なし")]),
         (457, "壊れた本", "新字新仮名", "なし", [("000081", "著者", "なし")]),
         (59898, "ウェストミンスター寺院", "新字新仮名", "なし", [("001257", "著者", "なし"), ("009999", "翻訳者", "なし")]),
         (70000, "新しい本", "新字新仮名", "あり", [("001999", "著者", "あり")])]
HEADER = ("作品ID,作品名,作品名読み,ソート用読み,副題,副題読み,原題,初出,分類番号,文字遣い種別,作品著作権フラグ,公開日,最終更新日,"
          "図書カードURL,人物ID,姓,名,姓読み,名読み,姓読みソート用,名読みソート用,姓ローマ字,名ローマ字,役割フラグ,生年月日,没年月日,"
          "人物著作権フラグ,底本名1,入力者,校正者,テキストファイルURL").split(",")


def catalogue_rows() -> list[dict]:
    rows = []
    for work, title, orthography, protected, persons in CARDS:
        for pid, role, person_protected in persons:
            family, given, died = PERSONS[pid]
            rows.append({**dict.fromkeys(HEADER, ""), "作品ID": f"{work:06d}", "作品名": title, "文字遣い種別": orthography,
                         "作品著作権フラグ": protected, "人物ID": pid, "姓": family, "名": given, "役割フラグ": role,
                         "没年月日": died, "人物著作権フラグ": person_protected})
    return rows


def write_catalogue(path: Path) -> Path:
    out = io.StringIO()
    w = csv.DictWriter(out, HEADER, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    w.writeheader()
    w.writerows(catalogue_rows())
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("list_person_all_extended_utf8.csv", "\ufeff" + out.getvalue())
    return path


def write_tar(path: Path, files=FILES) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"{TOP}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def write_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name in reversed(list(FILES)):  # another order than the tar's
            z.writestr(f"{TOP}/{name}", FILES[name])
    return path


def digest(files=FILES) -> str:
    d = archive.ContentDigest()
    for name, data in files.items():
        d.add(name, data)
    return d.hexdigest()


@pytest.fixture
def snapshot(tmp_path):
    return write_tar(tmp_path / aozora.ARCHIVE), write_catalogue(tmp_path / aozora.CARDS)


def built(tar: Path, catalogue: Path | None, dest: Path, sel: Selection = Selection()) -> tuple[str, list[dict], dict]:
    src = builder.Sources(tar, digest(), read(catalogue) if catalogue else None)
    text = builder.build(src, sel, dest, quiet=True)
    rows = list(csv.DictReader(open(dest / builder.TABLE, encoding="utf-8"), delimiter="\t"))
    return text.read_text(encoding="utf-8"), rows, json.loads((dest / builder.RECORD).read_text(encoding="utf-8"))


def leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*")] if folder.exists() else []


def test_each_cleaning_rule():
    work = clean(FILES["cards/000148/files/752_ruby_2000/752_ruby_2000.txt"])
    assert (work.title, work.author) == ("坊っちゃん", "夏目漱石")
    text = work.text
    assert "\r" not in text
    assert "【テキスト中に現れる記号について】" not in text and "-" * 20 not in text  # the symbol block
    assert "底本" not in text and "青空文庫" not in text  # the footer
    assert "《" not in text and "おやゆず" not in text and "親譲りの無鉄砲で" in text  # ruby
    assert "｜" not in text and "二階から飛び降りて" in text
    assert "［＃" not in text and "傍点" not in text and "事がある。\n" in text  # notes, nested ones too
    assert "　※を食べた。\n" in text  # a gaiji keeps its placeholder, not its description
    assert "\n\n\n" not in text and text.endswith("。\n") and not text.endswith("\n\n")
    assert text.startswith("坊っちゃん\n夏目漱石\n\n　親譲りの")


def test_the_translator_line_is_not_the_author():
    work = clean(FILES["cards/001257/files/59898_ruby_70679/59898_ruby_70679.txt"])
    assert work.author == "ワシントン・アーヴィング"


def test_build_one_file_per_work_no_copies_stable_order(snapshot, tmp_path):
    tar, catalogue = snapshot
    text, rows, record = built(tar, catalogue, tmp_path / "out")
    assert [int(r["work_id"]) for r in rows] == [456, 752, 799, 4308, 59898]  # person id, then work id as a number
    assert record["copies_dropped"] == [58842] and record["works"] == 5  # 799 and 4308 share only a title
    botchan = next(r for r in rows if r["work_id"] == "752")
    assert botchan["source_path"].endswith("752_ruby_2000.txt")  # ruby over txt, then the highest file id
    raw = text.encode("utf-8")
    for r in rows:  # the table's byte ranges cut the text into its works, one blank line apart
        piece = raw[int(r["byte_offset"]):int(r["byte_offset"]) + int(r["bytes"])].decode("utf-8")
        assert piece.startswith(r["title"] + "\n") and piece.endswith("\n") and not piece.endswith("\n\n")
        assert r["git_blob_sha1"] == hashlib.sha1(b"blob %d\0%s" % (len(FILES[r["source_path"]]),
                                                                     FILES[r["source_path"]])).hexdigest()
    assert text.count("坊っちゃん\n夏目漱石\n") == 1
    assert record["undecodable"] == ["cards/000081/files/457_ruby_146/457_ruby_146.txt"]
    assert record["text_sha256"] == hashlib.sha256(raw).hexdigest()
    assert sorted(os.listdir(tmp_path / "out")) == ["aozora.txt", "build.json", "works.tsv"]
    assert not list(tmp_path.glob(".build-*"))


def test_a_zip_of_the_commit_builds_the_same_bytes(snapshot, tmp_path):
    tar, catalogue = snapshot
    from_tar = built(tar, catalogue, tmp_path / "a")[0]
    assert built(write_zip(tmp_path / "snapshot.zip"), catalogue, tmp_path / "b")[0] == from_tar


def test_public_domain_is_the_default_and_the_options_narrow_it(snapshot, tmp_path):
    tar, catalogue = snapshot
    ids = lambda sel, name: [int(r["work_id"]) for r in built(tar, catalogue, tmp_path / name, sel)[1]]
    assert 70000 not in ids(Selection(), "pd")  # flagged あり: still in copyright
    assert 6000 not in ids(Selection(), "pd2")  # no card in the catalogue: nothing says it is free
    assert ids(parse_spec("aozora:modern"), "modern") == [456, 752, 4308, 59898]  # 799 is 新字旧仮名
    assert ids(parse_spec("aozora:authors=000081,夏目漱石"), "authors") == [456, 752, 799, 4308]
    assert ids(parse_spec("aozora:authors=ワシントン・アーヴィング"), "by-file-name") == [59898]
    assert ids(parse_spec("aozora:died-before=1920"), "died") == [752, 799, 4308]  # 1933 and the 1957 translator out
    assert ids(Selection(authors=frozenset({"001999"}), public_domain=False), "fixed") == [70000]


def test_bad_options_are_one_line():
    for spec in ("aozora:modrn", "aozora:died-before=soon", "aozora:authors="):
        with pytest.raises(UserError, match="the options are") as e:
            parse_spec(spec)
        assert "\n" not in str(e.value)


@pytest.mark.parametrize("damage", ["flipped", "truncated", "not gzip"])
def test_a_damaged_archive_is_refused_in_one_line_and_nothing_is_cached(snapshot, tmp_path, damage):
    tar, catalogue = snapshot
    data = bytearray(tar.read_bytes())
    if damage == "flipped":
        data[len(data) // 2] ^= 0xFF
    elif damage == "truncated":
        data = data[: len(data) * 2 // 3]
    else:
        data = b"<html>rate limited</html>" * 100
    tar.write_bytes(bytes(data))
    with pytest.raises(UserError, match="damaged or truncated archive|not those of the pinned commit") as e:
        built(tar, catalogue, tmp_path / "cache" / "out")
    assert "\n" not in str(e.value)
    assert leftovers(tmp_path / "cache") == []


def test_another_commit_is_refused_by_its_content(snapshot, tmp_path):
    _, catalogue = snapshot
    other = write_tar(tmp_path / "other.tar.gz", {**FILES, "README.md": b"changed\n"})
    with pytest.raises(UserError, match="not those of the pinned commit"):
        built(other, catalogue, tmp_path / "cache" / "out")
    assert leftovers(tmp_path / "cache") == []


@pytest.fixture
def offline_urls(monkeypatch):
    """The downloads point at a local port nobody listens on: refused at once, nothing hangs."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(aozora, "ARCHIVE_URL", f"http://127.0.0.1:{port}/{aozora.ARCHIVE}")
    monkeypatch.setattr(aozora, "CARDS_URL", f"http://127.0.0.1:{port}/{aozora.CARDS}")
    return port


def test_fetch_downloads_once_builds_once_then_serves_the_cache(server, snapshot, tmp_path, monkeypatch):
    root, url, requests = server
    tar, catalogue = snapshot
    os.replace(tar, root / tar.name)
    os.replace(catalogue, root / catalogue.name)
    monkeypatch.setattr(aozora, "ARCHIVE_URL", f"{url}/{aozora.ARCHIVE}")
    monkeypatch.setattr(aozora, "CARDS_URL", f"{url}/{aozora.CARDS}")
    monkeypatch.setattr(aozora, "CONTENT_SHA256", digest())
    cache = tmp_path / "cache"
    text = aozora.fetch("aozora:authors=夏目漱石", cache_dir=cache, quiet=True)
    assert text.parent == cache / "aozora" / aozora.COMMIT[:12] / "aozora+authors=夏目漱石"
    assert requests == [f"/{aozora.ARCHIVE}", f"/{aozora.CARDS}"]
    record = json.loads((text.parent / builder.RECORD).read_text(encoding="utf-8"))
    assert record["archive_sha256"] == hashlib.sha256((root / aozora.ARCHIVE).read_bytes()).hexdigest()
    assert record["cards_sha256"] == hashlib.sha256((root / aozora.CARDS).read_bytes()).hexdigest()
    assert aozora.fetch("aozora:authors=夏目漱石", cache_dir=cache) == text  # built once
    modern = resolve("aozora:modern", cache=cache)  # another selection: built from the kept sources
    assert modern.parent.name == "aozora+modern" and len(requests) == 2
    assert sorted(p.name for p in (cache / "aozora").iterdir()) == [aozora.COMMIT[:12], aozora.ARCHIVE, aozora.CARDS]
    text.write_text("changed", encoding="utf-8")
    with pytest.raises(UserError, match="checksum mismatch for cached"):
        aozora.fetch("aozora:authors=夏目漱石", cache_dir=cache)


def test_aozora_cpu_is_the_mirror_sample(data_dir):
    assert resolve("aozora-cpu", data_dir) == data_dir / "aozora_sample.txt"


def test_offline_train_stops_with_one_line(tmp_path, offline_urls):
    """`jax-llm train aozora` with an empty mirror and no network: exit 2, one line, nothing cached."""
    (tmp_path / "mirror").mkdir()
    env = {**os.environ, "JAX_LLM_DATA_DIR": str(tmp_path / "mirror"), "JAX_LLM_CACHE_DIR": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join(sys.path)}
    code = (f"import jax_llm.aozora as a; a.ARCHIVE_URL = 'http://127.0.0.1:{offline_urls}/{aozora.ARCHIVE}'; "
            "from jax_llm.cli import main; raise SystemExit(main(['train', 'aozora', '--out', "
            f"{str(tmp_path / 'run')!r}, '--preset', 'gpt-80m']))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("jax-llm: error:")]
    assert len(errors) == 1 and "could not download" in errors[0] and aozora.ARCHIVE in errors[0]
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_aozora_cpu_builds_byte_for_byte_from_the_pinned_snapshot(data_dir, tmp_path):
    """Where the mirror holds the pinned archive, the builder remakes aozora_sample.txt and its table."""
    if not (data_dir / aozora.ARCHIVE).is_file():
        pytest.skip(f"the mirror has no {aozora.ARCHIVE}")
    src = builder.Sources(data_dir / aozora.ARCHIVE, aozora.CONTENT_SHA256, None, aozora.SAMPLE_SHA256)
    text = builder.build(src, aozora.CPU, tmp_path / "cpu", quiet=True)
    assert text.read_bytes() == (data_dir / "aozora_sample.txt").read_bytes()
    assert (tmp_path / "cpu" / builder.TABLE).read_bytes() == (data_dir / "aozora_sample.works.tsv").read_bytes()
