"""benchmarks/char_ngram.py, the character n-gram baseline: a distribution, on the val split of data.py, in
bits per byte."""

import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jax_llm import data

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "char_ngram.py"
spec = importlib.util.spec_from_file_location("char_ngram", SCRIPT)
char_ngram = importlib.util.module_from_spec(spec)
spec.loader.exec_module(char_ngram)


def random_text(path: Path, first: int, n_symbols: int, n_chars: int) -> Path:
    ids = np.random.default_rng(0).integers(0, n_symbols, n_chars)
    path.write_text("".join(chr(first + i) for i in ids), encoding="utf-8")
    return path


def test_a_repeated_line_costs_almost_nothing(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("the quick brown fox jumps over the lazy dog\n" * 300)
    r = char_ngram.val_bits(text, 5, 0.1)
    assert r["bits_per_byte"] < 0.1
    assert r["split_byte"] == data.split_offset(text, 0.1)  # the split `jax-llm train` makes


@pytest.mark.parametrize("first, bytes_per_char", [(0x21, 1), (0x410, 2)], ids=["ascii", "cyrillic"])
def test_uniform_random_characters_cost_their_entropy_per_character_over_their_bytes(tmp_path, first, bytes_per_char):
    """64 symbols: log2(64) = 6 bits a character; Kneser-Ney pays a little for the n-grams it cannot know."""
    r = char_ngram.val_bits(random_text(tmp_path / "r.txt", first, 64, 100_000), 5, 0.1)
    assert 5.95 < r["bits_per_char"] < 6.5
    assert r["val_bytes"] == bytes_per_char * r["val_chars"]
    assert r["bits_per_byte"] == pytest.approx(r["bits_per_char"] / bytes_per_char)


def test_probabilities_sum_to_one_over_the_alphabet_in_any_context(data_dir):
    text = (data_dir / "aozora_sample.txt").read_bytes()[:60_000].decode("utf-8", "ignore")
    ids, n_chars = char_ngram.char_ids(text)
    n_train = int(len(ids) * 0.9)
    model = char_ngram.CharKN.train(ids[:n_train], 5, n_chars)
    for position in (0, 2, 1000, n_train, len(ids) - 1):  # the start (padding), train, val
        p = model.distribution(ids, position)
        assert p.shape == (n_chars,) and p.min() > 0 and p.sum() == pytest.approx(1.0, abs=1e-5)
        assert p[ids[position]] == pytest.approx(model.prob(ids, np.array([position]), ids[position:position + 1])[0])
    assert model.distribution(ids, 1000)[ids[1000]] > 10 / n_chars  # seen text is predicted, not uniform


def test_the_script_prints_val_bits_per_byte(tmp_path):
    text = random_text(tmp_path / "r.txt", 0x3041, 16, 5000)  # hiragana: 3 bytes a character
    r = subprocess.run([sys.executable, str(SCRIPT), str(text), "--order", "3"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    bpb = float(r.stdout.split(" bits per byte")[0].split()[-1])
    assert bpb == pytest.approx(char_ngram.val_bits(text, 3, 0.1)["bits_per_byte"], abs=1e-4)
    assert math.log2(16) / 3 - 0.05 < bpb < math.log2(16) / 3 + 0.5
