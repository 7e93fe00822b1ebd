"""The commands as a user runs them: train-ngram, eval, convert, and one clear line for bad input."""

import json
import subprocess

import pytest

from helpers import JAX_LLM

IME = [*JAX_LLM, "ime"]


def run(*args):
    return subprocess.run([*IME, *map(str, args)], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, data_dir):
    """80 KB of tinyshakespeare as a file of our own."""
    p = tmp_path_factory.mktemp("cli") / "small.txt"
    p.write_text((data_dir / "tinyshakespeare.txt").read_text()[:80_000])
    return p


@pytest.fixture(scope="module")
def kn_dir(corpus):
    out = corpus.parent / "kn"
    r = run("train-ngram", "--dataset", corpus, "--model", "kn", "--order", "3", "--out", out)
    assert r.returncode == 0, r.stderr
    assert "trained kn" in r.stdout
    return out


def test_train_eval_convert(corpus, kn_dir, tmp_path):
    assert json.loads((kn_dir / "model.json").read_text())["kind"] == "kn"
    r = run("eval", "--dataset", corpus, "--model", "backoff", "--orders", "1-3", "--json", tmp_path / "r.json")
    assert r.returncode == 0, r.stderr
    rows = json.loads((tmp_path / "r.json").read_text())["rows"]
    assert [row["order"] for row in rows] == ["1", "2", "3"]
    assert all(0 < row["test_acc"] <= row["top3"] <= row["top5"] <= 1 for row in rows)
    assert "| backoff | 3 |" in (tmp_path / "r.md").read_text() and "| backoff | 3 |" in r.stdout
    r = run("eval", "--dataset", corpus, "--model", kn_dir, "--markdown", tmp_path / "kn.md")
    assert r.returncode == 0, r.stderr
    assert "kn (" in (tmp_path / "kn.md").read_text()

    r = run("convert", "fitwchinme", "--model", kn_dir, "--top-k", "3")
    assert r.returncode == 0, r.stderr
    sentence, *lines = r.stdout.splitlines()
    assert [w[:2] for w in sentence.split()] == ["fi", "tw", "ch", "in", "me"]
    assert len(lines) == 5 and lines[0].split()[0] == "fi"
    r = run("convert", "i am xq", "--model", kn_dir)
    assert r.returncode == 0 and r.stdout.split() == ["i", "am", "[xq?]"]
    # the typing language of `ime type`: capitals, punctuation, spelling, a digit picks, > pages
    r = run("convert", "Fitw, chin/Zarathustra.", "--model", kn_dir)
    first, two, ch, inp = sentence.split()[:4]
    assert r.returncode == 0 and r.stdout == f"{first.capitalize()} {two}, {ch} {inp} Zarathustra.\n", r.stderr
    r = run("convert", "th2 th>1", "--model", kn_dir, "--top-k", "12")
    th = r.stdout.splitlines()[1].split()[1:]
    assert r.returncode == 0 and r.stdout.splitlines()[0].split() == [th[2], th[18]]  # " | " separates them
    r = run("convert", "fitw0", "--model", kn_dir)
    assert r.returncode == 2 and "position 5 of 'fitw0': digit 0 picks nothing" in r.stderr


@pytest.mark.parametrize("args, says", [  # refused before any model is loaded
    (["convert", "fi@tw"], "invalid character '@'"),
    (["convert", "fi\x01tw"], "invalid character '\\x01'"),  # (a tab is a key: it ends a phrase)
    (["convert", "   "], "no codes"),
    (["convert", "fitw", "--model", "/nonexistent/model"], "model not found"),
    (["convert", "fitw", "--top-k", "0"], "--top-k"),
    (["eval", "--dataset", "no-such-corpus", "--model", "backoff"], "unknown dataset"),
    (["train-ngram", "--dataset", "no-such-corpus", "--model", "kn", "--out", "x"], "unknown dataset"),
])
def test_bad_input_is_one_line_and_exit_2(args, says):
    r = run(*args)
    assert r.returncode == 2
    assert says in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_bad_corpora_and_options(tmp_path, corpus):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "few.txt").write_text("to be or not to be")
    (tmp_path / "bin.txt").write_bytes(b"\x00\x01binary")
    for name, says in (("empty.txt", "0 words"), ("few.txt", "6 words"), ("bin.txt", "binary")):
        r = run("train-ngram", "--dataset", tmp_path / name, "--model", "backoff", "--out", tmp_path / "m")
        assert r.returncode == 2 and says in r.stderr, r.stderr
    assert not (tmp_path / "m").exists()
    r = run("eval", "--dataset", corpus, "--model", "backoff", "--orders", "3-x")
    assert r.returncode == 2 and "--orders" in r.stderr
    r = run("train-ngram", "--dataset", corpus, "--model", "backoff", "--order", "0", "--out", tmp_path / "m")
    assert r.returncode == 2 and "--order" in r.stderr
