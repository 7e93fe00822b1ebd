"""The FTCIM Transformer: aligned streams, training through the engine, the
KV-cached predictor, and warm start from a word-level language model trained by `jax-llm train`."""

import json

import numpy as np
import pytest
from flax import nnx

from jax_llm.cli import main
from jax_llm.errors import UserError
from jax_llm.ime.transformer import job
from jax_llm.ime.transformer.predictor import TransformerPredictor, predict_split
from jax_llm.ime.language.codes import CODE_IDS, normalize, word_code
from jax_llm.ime.language.words import Vocab
from jax_llm.ime.language.words import WordCorpus as Corpus
from jax_llm.metrics import read_metrics
from jax_llm.train import load_model

TINY = ["--set", "n_layer=2", "--set", "n_head=2", "--set", "n_embd=32", "--set", "batch_size=8",
        "--set", "eval_interval=30", "--set", "eval_batches=2", "--set", "log_interval=1", "--set", "warmup_steps=5"]


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory, data_dir):
    p = tmp_path_factory.mktemp("ime") / "small.txt"
    p.write_bytes((data_dir / "tinyshakespeare.txt").read_bytes()[:120_000])
    return p


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, corpus_file):
    out = tmp_path_factory.mktemp("ime") / "model"
    assert main(["ime", "train", "--dataset", str(corpus_file), "--out", str(out), "--block-size", "8",
                 "--max-steps", "60", "--quiet", *TINY]) == 0
    return out


def test_streams_are_aligned():
    vocab = Vocab.build(["the", "cat", "the", "a", "then"])
    s = job.streams(vocab, ["the", "a", "cat", "zebra"], confirmed=True)
    assert [int(c) for c in s.inputs] == [CODE_IDS[c] for c in ("th", "a ", "ca", "ze")]
    assert s.targets.tolist() == [vocab.index["the"], vocab.index["a"], vocab.index["cat"], 0]  # zebra: OOV
    assert s.aux.tolist() == [len(vocab), vocab.index["the"], vocab.index["a"], vocab.index["cat"]]
    assert job.streams(vocab, ["the"], confirmed=False).aux is None


def test_lookahead_streams_read_the_own_code_and_the_later_ones():
    vocab = Vocab.build(["the", "cat", "the", "a"])
    th, a, ca, nt = CODE_IDS["th"], CODE_IDS["a "], CODE_IDS["ca"], job.NOT_TYPED
    s = job.streams(vocab, ["the", "a", "cat"], confirmed=True, lookahead=2)
    assert s.inputs.tolist() == [[th, a, ca], [a, ca, nt], [ca, nt, nt]]
    assert s.targets.tolist() == [vocab.index["the"], vocab.index["a"], vocab.index["cat"]]
    assert job.typed_codes(s).tolist() == [th, a, ca]
    assert job.streams(vocab, ["the", "a", "cat"], True, 2, seen=1).inputs.tolist() == [[th, a, nt], [a, ca, nt],
                                                                                          [ca, nt, nt]]


def test_a_lookahead_model_ranks_with_every_number_of_later_codes_as_the_keystrokes_do(tmp_path, corpus_file):
    """One lookahead-2 model read with 0, 1 and 2 later codes (`seen`): the harness's split and the
    keystroke-by-keystroke KV cache agree at each, and the later codes change the ranking."""
    out = tmp_path / "ahead"
    assert main(["ime", "train", "--dataset", str(corpus_file), "--out", str(out), "--block-size", "8",
                 "--max-steps", "30", "--quiet", "--lookahead", "2", *TINY]) == 0
    words = Corpus("x", normalize(corpus_file.read_text())).test[:30]
    codes = [word_code(w) for w in words]
    scores = []
    for seen in (0, 1, 2):
        p = TransformerPredictor(out, seen=seen)
        assert (p.lookahead, p.ahead, p.cfg.model.vocab_size) == (seen, 2, 703)
        batch = p.scored_split(codes, words, 3)
        for i in range(len(words) - 9):  # as above, the last window is moved back: skip it
            one = p.candidates(codes[i], words[:i], 3, ahead=codes[i + 1: i + 3])
            assert [w for w, _ in one] == [w for w, _ in batch[i]], (seen, i)
            np.testing.assert_allclose([v for _, v in one], [v for _, v in batch[i]], atol=2e-5)
        scores.append([v for row in batch for _, v in row])
    assert scores[0] != scores[1] != scores[2]
    assert main(["ime", "train", "--dataset", str(corpus_file), "--out", str(tmp_path / "x"), "--lookahead", "-1",
                 "--quiet", *TINY]) == 2


def test_whole_train_is_recorded_and_says_its_dev_loss_is_not_held_out(tmp_path, corpus_file, capsys):
    out = tmp_path / "whole"
    assert main(["ime", "train", "--dataset", str(corpus_file), "--out", str(out), "--block-size", "8",
                 "--max-steps", "8", "--quiet", "--whole-train", *TINY]) == 0
    assert "dev loss (trained on)" in capsys.readouterr().out
    assert json.loads((out / "model.json").read_text())["whole_train"] is True


def test_training_lowers_the_loss_and_writes_a_model_dir(model_dir):
    meta = json.loads((model_dir / "model.json").read_text())
    assert meta["kind"] == "transformer" and meta["confirmed"] and meta["restricted"]
    cfg = json.loads((model_dir / "config.json").read_text())["model"]
    assert cfg["vocab_size"] == 702 and cfg["out_vocab_size"] == len(Vocab.load(model_dir / "vocab.json"))
    losses = [r["loss"] for r in read_metrics(model_dir / "metrics.jsonl") if "loss" in r]
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.3  # restricted: the loss starts near log(#candidates)


def test_predictor_with_kv_cache_matches_batch_prediction(model_dir, corpus_file):
    p = TransformerPredictor(model_dir)
    words = Corpus("x", normalize(corpus_file.read_text())).test[:40]
    s = job.streams(p.vocab, words, confirmed=True)
    top = predict_split(p.model, p.vocab, s, 3)
    for i in range(len(words) - 8):  # the last window of predict_split is moved back to fit: skip it
        got = [p.vocab.index[w] for w, _ in p.candidates(word_code(words[i]), words[:i], 3)]
        assert got == top[i, : len(got)].tolist(), i
        assert all(word_code(p.vocab.words[j]) == word_code(words[i]) for j in got)
    scores = [sc for _, sc in p.candidates("th", ["i", "think"], 5)]
    assert scores == sorted(scores, reverse=True) and all(sc <= 0 for sc in scores)
    assert p.candidates("qx", [], 5) == []
    with pytest.raises(UserError, match="not a code: 'q'"):  # as every model refuses it
        p.candidates("q", [], 5)


def test_warm_start_from_a_word_language_model(tmp_path, corpus_file):
    words_dir, lm, ime = tmp_path / "words", tmp_path / "lm", tmp_path / "ime"
    assert main(["ime", "export-words", "--dataset", str(corpus_file), "--out", str(words_dir)]) == 0
    assert main(["train", str(words_dir / "train-words.txt"), "--tokenizer", str(words_dir / "words-tokenizer.json"),
                 "--out", str(lm), "--max-steps", "20", "--quiet", "--set", "block_size=16",
                 "--set", "sample_tokens=0", *TINY]) == 0
    assert main(["ime", "train", "--dataset", str(corpus_file), "--out", str(ime), "--block-size", "8",
                 "--max-steps", "1", "--quiet", "--warm-start", str(lm), "--set", "learning_rate=1e-9", "--set", "muon_lr=1e-9",
                 "--set", "min_lr=0", *TINY]) == 0
    _, lm_model, _ = load_model(lm)
    _, ime_model, _ = load_model(ime)
    lm_wte = np.asarray(lm_model.wte.embedding[...])
    assert ime_model.head is None  # tied: the output layer is the previous-word embedding, set from the LM
    np.testing.assert_allclose(np.asarray(ime_model.aux_embed.embedding[...])[: len(lm_wte)], lm_wte, atol=1e-6)
    lm_blocks = nnx.to_pure_dict(nnx.state(lm_model.blocks))
    ime_blocks = nnx.to_pure_dict(nnx.state(ime_model.blocks))
    np.testing.assert_allclose(np.asarray(ime_blocks[0]["mlp"]["fc"]["kernel"]),
                               np.asarray(lm_blocks[0]["mlp"]["fc"]["kernel"]), atol=1e-6)


def test_warm_start_refuses_a_mismatched_model(tmp_path, corpus_file, model_dir, capsys):
    code = main(["ime", "train", "--dataset", str(corpus_file), "--out", str(tmp_path / "x"), "--block-size", "8",
                 "--max-steps", "1", "--quiet", "--warm-start", str(model_dir), "--set", "n_embd=64", *TINY[:4]])
    assert code == 2 and "cannot warm-start" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()  # refused before anything was written


def test_convert_and_eval_commands_take_a_transformer_dir(model_dir, corpus_file, capsys, tmp_path):
    assert main(["ime", "convert", "thisisthe", "--model", str(model_dir), "--top-k", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    words = out[0].split()
    assert len(words) == 5 and [word_code(w) for w in words if not w.startswith("[")] == \
        [c for c, w in zip(["th", "is", "is", "th", "e "], words) if not w.startswith("[")]
    assert main(["ime", "eval", "--dataset", str(corpus_file), "--model", "backoff", "--model", str(model_dir),
                 "--no-train-acc", "--json", str(tmp_path / "r.json")]) == 0
    rows = json.loads((tmp_path / "r.json").read_text())["rows"]  # n-gram and Transformer rows in one table
    assert [r["model"] for r in rows[:6]] == ["backoff"] * 6 and rows[6]["model"].startswith("transformer")
    assert 0.2 < rows[6]["test_acc"] <= rows[6]["top5"] <= 1


def test_ensemble_with_kn_ranks_only_words_of_the_code(model_dir, corpus_file):
    from jax_llm.ime import ngram
    from jax_llm.ime.combine import Ensemble

    corpus = Corpus("x", normalize(corpus_file.read_text()))
    t = TransformerPredictor(model_dir)
    kn = ngram.train("kn", corpus.train, Vocab.build(corpus.train))
    ens = Ensemble(t, kn)
    compared = range(corpus.n_train, corpus.n_train + 30)
    # a block (8) of words past the compared positions: none of them is in the split's last window, which
    # `predict_split` moves back to fit (giving it more context than a keystroke has)
    words = corpus.words[: compared.stop + 8]
    codes = [word_code(w) for w in words]
    batch = ens.rank_split(codes, words, 5, start=corpus.n_train)
    assert len(batch) == len(words) - corpus.n_train
    for i, ranked in zip(compared, batch):
        single = ens.candidates(codes[i], words[:i], 5)
        assert [w for w, _ in single] == ranked, i
        assert all(word_code(w) == codes[i] for w in ranked)
        scores = [s for _, s in single]
        assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("args, message", [
    (["--block-size", "0"], "block_size must be >= 1"), (["--max-steps", "-3"], "max_steps must be >= 1"),
    (["--warm-start", "/nonexistent"], "not a run directory"), (["--set", "dropout=2"], "dropout must be"),
    (["--preset", "huge"], "unknown preset"), (["--set", "label_smoothing=1"], "label_smoothing must be"),
    (["--set", "aux_dropout=-0.1"], "aux_dropout must be"),
])
def test_bad_train_options_are_one_line_and_write_nothing(tmp_path, corpus_file, capsys, args, message):
    assert main(["ime", "train", "--dataset", str(corpus_file), "--out", str(tmp_path / "m"), "--quiet", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.count("\n") == 0
    assert not (tmp_path / "m").exists()
