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
    assert corpus.n_train == round(len(corpus.tokens) * 0.9)
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
