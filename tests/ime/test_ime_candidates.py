"""The candidate-only output layer computes the masked full softmax's loss and gradients, with its tiles
and through its fallback, and trains the same model to the same curve."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jax_llm.config import make_config
from jax_llm.ime.transformer import candidates, job
from jax_llm.ime.transformer.predictor import TransformerPredictor
from jax_llm.ime.language.codes import CODE_IDS, code_ids, normalize
from jax_llm.ime.language.words import Vocab, WordCorpus
from jax_llm.metrics import read_metrics
from jax_llm.model import GPT
from jax_llm.train import fit


@pytest.fixture(scope="module")
def words(data_dir):
    return normalize((data_dir / "tinyshakespeare.txt").read_bytes()[:200_000].decode())


def test_grouped_vocabulary_puts_each_codes_words_in_one_run():
    vocab = Vocab.build(["the", "cat", "the", "a", "then", "car", "they", "the"])
    grouped = vocab.grouped()
    assert sorted(grouped.words) == sorted(vocab.words) and grouped.words[0] == "<unk>"
    starts, sizes = candidates.runs(grouped.code_of)
    th = CODE_IDS["th"]
    assert grouped.words[starts[th]: starts[th] + sizes[th]] == ["the", "then", "they"]  # most frequent first
    assert all(list(grouped.by_code[c]) == list(range(starts[c], starts[c] + sizes[c])) for c in range(702))
    with pytest.raises(ValueError, match="not grouped"):
        candidates.runs(Vocab.build(["the", "the", "cat", "then"]).code_of)  # the, cat, then


def _batch(vocab, words, rows, block, seed):
    codes, targets = code_ids(words).astype(np.int32), vocab.encode(words)
    at = np.random.default_rng(seed).integers(0, len(words) - block, rows)
    idx = at[:, None] + np.arange(block)
    return codes, targets, jnp.asarray(codes[idx].ravel()), jnp.asarray(targets[idx].ravel())


@pytest.mark.parametrize("fallback,smoothing", [(False, 0.0), (True, 0.0), (False, 0.1), (True, 0.1)])
def test_loss_and_gradients_equal_the_masked_softmax(words, fallback, smoothing):
    vocab = Vocab.build(words[:20_000]).grouped()
    codes, targets, c, t = _batch(vocab, words[20_000:40_000], 8, 32, seed=0)  # test-like: OOV targets (0) too
    t = t.at[:5].set(-1)  # padding
    layout = candidates.fit_layout(vocab.code_of, codes, targets, positions=len(c))
    if fallback:
        layout = candidates.Layout(layout.starts, layout.sizes, layout.widths, (1,) * len(layout.widths))
    rng = np.random.default_rng(1)
    h = jnp.asarray(rng.normal(size=(len(c), 16)), jnp.float32)
    rows_e = jnp.asarray(rng.normal(size=(len(vocab), 16)), jnp.float32)

    def loss(f):
        return jax.value_and_grad(lambda e, x: (lambda s, n: s / n)(*f(x, e, t, layout, smoothing)),
                                  argnums=(0, 1))(rows_e, h)

    (got, grads), (want, want_grads) = loss(candidates.candidate_nll), loss(candidates.masked_nll)
    assert int(candidates.candidate_nll(h, rows_e, t, layout)[1]) == int(jnp.sum(t > 0)) > 200
    assert float(got) == pytest.approx(float(want), rel=1e-6)
    for g, w in zip(grads, want_grads):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), atol=1e-6)
        assert float(jnp.abs(w).max()) > 1e-3  # something to compare


def test_label_smoothing_spreads_the_target_over_the_codes_words_only(words):
    vocab = Vocab.build(words[:20_000]).grouped()
    codes, targets, c, t = _batch(vocab, words[20_000:40_000], 4, 16, seed=2)
    layout = candidates.fit_layout(vocab.code_of, codes, targets, positions=len(c))
    rng = np.random.default_rng(3)
    h, rows_e = rng.normal(size=(len(c), 8)), rng.normal(size=(len(vocab), 8))
    want = 0.0
    for x, w in zip(h, np.asarray(t)):
        if w <= 0:
            continue
        cand = vocab.by_code[vocab.code_of[w]]  # q = 0.8 on the word, 0.2 spread over its code's words
        logp = rows_e[cand] @ x - np.logaddexp.reduce(rows_e[cand] @ x)
        want -= 0.8 * logp[list(cand).index(w)] + 0.2 * logp.mean()
    got, _ = candidates.candidate_nll(jnp.asarray(h, jnp.float32), jnp.asarray(rows_e, jnp.float32), t, layout, 0.2)
    assert float(got) == pytest.approx(want, rel=1e-5)


def test_aux_dropout_hides_previous_words_in_training_only():
    cfg = make_config("ime-small", ["vocab_size=10", "aux_vocab_size=7", "out_vocab_size=6", "n_layer=1",
                                    "n_embd=16", "block_size=8", "dropout=0.0", "aux_dropout=1.0"])
    model = GPT(cfg.model, nnx.Rngs(0))
    inputs, aux, key = jnp.arange(8)[None] % 10, jnp.arange(1, 9)[None] % 7, jax.random.key(0)
    hidden = np.asarray(model.hidden(inputs, aux, dropout_key=key))
    np.testing.assert_allclose(hidden, np.asarray(model.hidden(inputs, jnp.zeros_like(aux), dropout_key=key)))
    assert not np.allclose(hidden, np.asarray(model.hidden(inputs, aux)))  # evaluation reads them


def test_training_follows_the_masked_softmax_curve(words, tmp_path):
    corpus = WordCorpus("x", words)
    vocab = job.ime_vocab(corpus)
    train, val = job.streams(vocab, corpus.train[:20_000], True), job.streams(vocab, corpus.train[-3_000:], True)
    cfg = make_config("ime-small", ["n_layer=1", "n_embd=32", "block_size=16", "batch_size=8", "max_steps=24",
                                    "eval_interval=8", "eval_batches=2", "log_interval=1", "warmup_steps=4",
                                    "ckpt_interval=100"])
    for key, value in job.ime_sizes(vocab, True).items():
        cfg.set(key, value)
    layout = candidates.fit_layout(vocab.code_of, train.inputs, train.targets, positions=8 * 16)

    def masked(model, batch, key=None):
        h = model.hidden(batch["inputs"], batch["aux"], dropout_key=key)
        return candidates.masked_nll(h.reshape(-1, h.shape[-1]), model.output_embedding(),
                                     batch["targets"].reshape(-1), layout)

    curves = {}
    for name, objective in [("tiles", candidates.objective(layout)), ("masked", masked)]:
        run = tmp_path / name
        run.mkdir()
        cfg.save(run / "config.json")
        fit(run, cfg, train, val, resume=False, quiet=True, objective=objective)
        curves[name] = [(r.get("loss"), r.get("val_loss")) for r in read_metrics(run / "metrics.jsonl")]
    assert len(curves["tiles"]) >= 24
    np.testing.assert_allclose(np.array(curves["tiles"], float), np.array(curves["masked"], float), rtol=2e-4)


def test_an_old_model_directory_is_refused_in_one_line(tmp_path):
    (tmp_path / "model.json").write_text(json.dumps({"kind": "transformer", "confirmed": True}))
    with pytest.raises(Exception, match="older jax-llm .*train it again"):
        TransformerPredictor(tmp_path)
