import json

import numpy as np
import pytest

from jax_llm import data
from jax_llm.errors import UserError
from jax_llm.textfile import check_text_file


def test_prepare_writes_memmap_and_reuses_it(tmp_path, data_dir):
    text = tmp_path / "t.txt"
    text.write_bytes((data_dir / "tinyshakespeare.txt").read_bytes()[:20000])
    run = tmp_path / "run"
    tok, corpus = data.prepare(text, run, "char", 0, 0.1)
    assert isinstance(corpus.tokens, np.memmap) and corpus.tokens.dtype == np.uint16
    assert tok.decode(corpus.tokens.tolist()) == text.read_text()
    meta = json.loads((run / "tokens.json").read_text())
    cut = data.split_offset(text, 0.1)
    assert (meta["train_bytes"], meta["val_bytes"]) == (cut, text.stat().st_size - cut)
    assert (corpus.n_train, meta["val_tokens"]) == (meta["train_tokens"], len(corpus.tokens) - corpus.n_train)
    stamp = (run / "tokens.bin").stat().st_mtime_ns
    _, again = data.prepare(text, run, "char", 0, 0.1)
    assert (run / "tokens.bin").stat().st_mtime_ns == stamp  # reused, not rewritten
    assert np.array_equal(again.tokens, corpus.tokens)
    text.write_text("a different corpus, long enough\n" * 50)
    _, changed = data.prepare(text, run, "char", 0, 0.1)
    assert len(changed.tokens) == len(text.read_text())


def test_lm_streams_are_shifted_views():
    tokens = np.arange(100, dtype=np.uint16)
    s = data.lm_streams(tokens)
    assert len(s) == 99
    starts = data.random_starts(s, 8, seed=1, step=3, shape=(2, 5))
    batch = data.gather(s, starts, 8)
    assert batch["inputs"].shape == (2, 5, 8)
    assert np.array_equal(batch["targets"], batch["inputs"] + 1)


def test_random_starts_depend_only_on_seed_and_step():
    s = data.lm_streams(np.arange(1000, dtype=np.uint16))
    a = data.random_starts(s, 16, 7, 42, (12,))
    assert np.array_equal(a, data.random_starts(s, 16, 7, 42, (12,)))
    assert not np.array_equal(a, data.random_starts(s, 16, 7, 43, (12,)))
    assert a.max() <= len(s) - 16


def test_sequential_windows_score_every_position_once():
    s = data.lm_streams(np.arange(103, dtype=np.uint16))
    scored = []
    for batch in data.sequential_windows(s, 10, n_rows=4):
        assert batch["inputs"].shape == (4, 10)
        scored += batch["targets"][batch["targets"] != data.IGNORE].tolist()
    assert sorted(scored) == list(range(1, 103))


def test_aux_stream_is_gathered_aligned():
    s = data.Streams(inputs=np.arange(50), targets=np.arange(50) * 2, aux=np.arange(50) * 3)
    b = data.gather(s, np.array([4]), 5)
    assert np.array_equal(b["aux"], b["inputs"] * 3) and np.array_equal(b["targets"], b["inputs"] * 2)


@pytest.mark.parametrize("content, message", [
    (None, "no such file"), ("DIR", "is a directory"), (b"", "file is empty"),
    (b"\x00\x01\x02binary", "binary"), ("caf\xe9".encode("latin-1"), "not valid UTF-8"),
])
def test_check_text_file_refuses_bad_files(tmp_path, content, message):
    p = tmp_path / "f.txt"
    if content == "DIR":
        p.mkdir()
    elif content is not None:
        p.write_bytes(content)
    with pytest.raises(UserError, match=message):
        check_text_file(p)


def test_too_short_corpus(tmp_path):
    p = tmp_path / "short.txt"
    p.write_text("tiny text\n")
    _, corpus = data.prepare(p, tmp_path / "run", "char", 0, 0.1)
    with pytest.raises(UserError, match="fewer than one block"):
        data.lm_splits(corpus, 64)


def test_the_split_is_on_bytes_at_a_line_start_the_same_for_char_and_bpe(tmp_path, data_dir):
    """English then Japanese (3 bytes a character): the split falls on the same val text whatever the tokenizer."""
    text = tmp_path / "t.txt"
    ja = (data_dir / "aozora_sample.txt").read_bytes()[:30000].decode("utf-8", "ignore")
    text.write_text((data_dir / "tinyshakespeare.txt").read_text()[:3000] + ja, encoding="utf-8")
    raw = text.read_bytes()
    cut = data.split_offset(text, 0.1)
    assert cut == raw.index(b"\n", len(raw) - round(len(raw) * 0.1) - 1) + 1  # the first line start in the last 10%
    assert raw[cut:cut + 3].decode("utf-8") in ja
    vals = []
    for spec in ("char", "bpe"):
        tok, corpus = data.prepare(text, tmp_path / spec, spec, 300, 0.1)
        train, val = data.lm_splits(corpus, 16)
        assert tok.decode(val.targets.tolist()).encode() == raw[cut:]  # every val byte is scored, once
        assert tok.decode(corpus.tokens[: corpus.n_train].tolist()).encode() == raw[:cut]
        assert val.bytes_per_token == (len(raw) - cut) / len(val)
        vals.append(val)
    assert len(vals[0]) != len(vals[1])  # two tokenizations of the same bytes


@pytest.mark.parametrize("content, expected", [
    ("one line without a newline, long enough to split: " * 4, None),  # at a character
    ("日本語の一行だけ、改行なし。" * 8, None),  # never inside a 3-byte character
    ("x" * 100 + "\n", None),  # the only newline is the last byte: at a character too
    ("a\n" * 50, "line"),
])
def test_texts_without_a_line_start_near_the_end_split_at_a_character(tmp_path, content, expected):
    text = tmp_path / "t.txt"
    text.write_text(content, encoding="utf-8")
    raw = text.read_bytes()
    cut = data.split_offset(text, 0.1)
    assert 0 < len(raw) - cut <= round(len(raw) * 0.1)
    raw[cut:].decode("utf-8")  # a character boundary
    if expected == "line":
        assert raw[cut - 1:cut] == b"\n"


def test_a_val_split_of_no_bytes_is_refused_in_one_line(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("abcd")  # 10% of 4 bytes rounds to none
    _, corpus = data.prepare(text, tmp_path / "run", "char", 0, 0.1)
    with pytest.raises(UserError, match="the val split has 0 tokens"):
        data.lm_splits(corpus, 1)


def test_a_token_file_of_the_older_token_split_is_prepared_again(tmp_path, corpus):
    run = tmp_path / "run"
    data.prepare(corpus, run, "char", 0, 0.1)
    meta = json.loads((run / "tokens.json").read_text())
    for key in ("train_tokens", "val_tokens", "train_bytes", "val_bytes", "val_fraction"):
        del meta[key]
    (run / "tokens.json").write_text(json.dumps(meta))
    _, again = data.prepare(corpus, run, "char", 0, 0.1, resume=True)
    assert again.train_bytes == data.split_offset(corpus, 0.1)
    assert "train_tokens" in json.loads((run / "tokens.json").read_text())
