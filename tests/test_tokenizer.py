import numpy as np
import pytest

from jax_llm import tokenizer
from jax_llm.errors import UserError

MIXED = "To be, or not to be: that is the question.\n吾輩は猫である。名前はまだ無い。\n絵文字 🙂🎉 and ünïcödé — «quotes»\n\n  indented\tline\n"


@pytest.fixture
def mixed_file(tmp_path, data_dir):
    # enough text for BPE to learn merges in both scripts
    jp = (data_dir / "aozora_sample.txt").read_text(encoding="utf-8")[:20000]
    en = (data_dir / "tinyshakespeare.txt").read_text(encoding="utf-8")[:20000]
    p = tmp_path / "mixed.txt"
    p.write_text(en + jp + MIXED * 5, encoding="utf-8")
    return p


@pytest.mark.parametrize("text", ["Hello, world!\n", "吾輩は猫である。名前はまだ無い。", "emoji 🙂🎉👍🏽 mixed 日本語 text\n\n", MIXED,
                                  "unseen: 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ☃ Ωμέγα"])
def test_bpe_round_trip_is_lossless(mixed_file, text):
    tok = tokenizer.build_tokenizer("bpe", mixed_file, 600)
    assert tok.get_vocab_size() <= 600
    ids = tok.encode(text).ids
    assert tok.decode(ids) == text


def test_bpe_learns_merges_and_never_inserts_spaces(mixed_file):
    tok = tokenizer.build_tokenizer("bpe", mixed_file, 600)
    jp = "吾輩は猫である。"
    ids = tok.encode(jp).ids
    assert len(ids) < len(jp.encode("utf-8"))  # merges learned: fewer tokens than bytes
    assert " " not in tok.decode(ids)


def test_char_tokenizer_round_trip_and_unknown(tmp_path):
    p = tmp_path / "c.txt"
    p.write_text("abc 猫🙂\n", encoding="utf-8")
    tok = tokenizer.build_tokenizer("char", p, 0)
    assert tok.get_vocab_size() == len(set("abc 猫🙂\n")) + 1  # + <unk>
    assert tok.decode(tok.encode("猫 abc🙂\n").ids) == "猫 abc🙂\n"
    assert tok.encode("z").ids == [tok.token_to_id(tokenizer.UNKNOWN_CHAR)]


def test_encode_file_matches_direct_encoding(mixed_file):
    tok = tokenizer.build_tokenizer("bpe", mixed_file, 600)
    ids = tokenizer.encode_file(tok, mixed_file)
    assert ids.dtype == np.uint16
    assert tok.decode(ids.tolist()) == mixed_file.read_text(encoding="utf-8")


def test_tokenizer_file_is_reloaded(tmp_path, mixed_file):
    tok = tokenizer.build_tokenizer("bpe", mixed_file, 400)
    tok.save(str(tmp_path / "t.json"))
    again = tokenizer.build_tokenizer(str(tmp_path / "t.json"), mixed_file, 0)
    assert again.encode(MIXED).ids == tok.encode(MIXED).ids


def test_bad_tokenizer_spec(tmp_path, mixed_file):
    with pytest.raises(UserError, match="bpe, char or a tokenizer.json"):
        tokenizer.build_tokenizer("nope", mixed_file, 0)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(UserError, match="cannot load tokenizer"):
        tokenizer.build_tokenizer(str(bad), mixed_file, 0)
