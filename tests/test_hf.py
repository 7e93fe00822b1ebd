"""Hugging Face interchange, checked against the real `transformers` and PyTorch (CPU), offline:
`jax-llm export RUN --to hf OUT` loads with AutoModelForCausalLM/AutoTokenizer and computes our logits and
greedy tokens; `jax-llm train --init-from HF_DIR` imports a transformers-saved GPT-2 and trains on."""

import json
import os
import shutil

import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers
from flax import nnx
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from helpers import TINY_SETS
from jax_llm.cli import main
from jax_llm.config import make_config
from jax_llm.hf import Checkpoint
from jax_llm.metrics import read_metrics
from jax_llm.model import GPT
from jax_llm.pretrain import load_run
from jax_llm.rundir import RunDir
from jax_llm.sample import generate
from jax_llm.train import load_model

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing may download
EN, JA = "ROMEO: But soft, what light", "吾輩は猫である。"
NEW_TOKENS = 20


def sets(*items: str) -> list[str]:
    return [a for s in TINY_SETS + ["block_size=64", "eval_interval=100", "learning_rate=1e-2", *items] for a in ("--set", s)]


@pytest.fixture(scope="module")
def ja_text(tmp_path_factory, data_dir):
    raw = (data_dir / "aozora_sample.txt").read_bytes()[:120_000]
    path = tmp_path_factory.mktemp("ja") / "ja.txt"
    path.write_bytes(raw[: raw.rfind(b"\n") + 1])  # a line boundary is a character boundary
    return path


# (name, text, tokenizer flags, --set, prompts): the default (modern) family, as NanoChat; GPT-2 with biases,
# tanh and untied; GPT-2 bias-free, erf and tied, on characters
RUNS = [("en-bpe", "en", ["--vocab-size", "300"], [], [EN, JA]),
        ("ja-bpe-gpt2", "ja", ["--vocab-size", "400"],
         ["arch=gpt2", "bias=true", "gelu_approximate=true", "tie_embeddings=false"], [EN, JA]),
        ("en-char-gpt2", "en", ["--tokenizer", "char"], ["arch=gpt2"], [EN])]
ARCHITECTURES = {True: "NanoChatForCausalLM", False: "GPT2LMHeadModel"}  # by the config's `rope`


@pytest.fixture(scope="module")
def export_run(tmp_path_factory, corpus, ja_text):
    """name -> (run directory, its export, prompts); each run trained and exported once."""
    done = {}

    def get(name):
        if name not in done:
            _, text, tok_flags, extra, prompts = next(r for r in RUNS if r[0] == name)
            root = tmp_path_factory.mktemp(name)
            text = corpus if text == "en" else ja_text
            assert main(["train", str(text), "--out", str(root / "run"), "--max-steps", "30", "--quiet", *tok_flags,
                         *sets(*extra)]) == 0
            assert main(["export", str(root / "run"), "--to", "hf", str(root / "hf")]) == 0
            done[name] = root / "run", root / "hf", prompts
        return done[name]

    return get


@pytest.fixture(params=[r[0] for r in RUNS])
def exported(request, export_run):
    return export_run(request.param)


def test_transformers_loads_the_export_and_agrees(exported, capsys):
    run, out, prompts = exported
    cfg, tok, model, _ = load_run(run)
    hf_model = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    hf_tok = transformers.AutoTokenizer.from_pretrained(out)
    assert type(hf_model).__name__ == ARCHITECTURES[cfg.model.rope]
    assert hf_model.config.tie_word_embeddings == cfg.model.tie_embeddings
    assert hf_model.generation_config.eos_token_id == tok.token_to_id("<|endoftext|>")  # None for characters
    hf_model.generation_config.eos_token_id = None  # ours never stops early: compare whole continuations
    for prompt in prompts:
        ids = tok.encode(prompt).ids
        assert hf_tok(prompt)["input_ids"] == ids and hf_tok.decode(ids) == prompt == tok.decode(ids)
        with torch.no_grad():
            theirs = hf_model(torch.tensor([ids])).logits[0].numpy()
        ours = np.asarray(model(jnp.asarray([ids]))[0])
        assert np.abs(ours - theirs).max() <= 1e-4
        with torch.no_grad():
            greedy = hf_model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                       do_sample=False, max_new_tokens=NEW_TOKENS, pad_token_id=0)[0].tolist()
        assert greedy == generate(model, ids, NEW_TOKENS, temperature=0.0)
        capsys.readouterr()
        assert main(["generate", str(run), "--prompt", prompt, "--temperature", "0",
                     "--max-new-tokens", str(NEW_TOKENS)]) == 0
        assert capsys.readouterr().out == hf_tok.decode(greedy) + "\n"


def test_export_writes_the_run_faithfully(exported):
    run, out, _ = exported
    cfg = RunDir(run).load_config()
    config, m = json.loads((out / "config.json").read_text()), cfg.model
    assert config["architectures"] == [ARCHITECTURES[m.rope]]
    if m.rope:
        assert (config["hidden_act"], config["final_logit_softcapping"]) == ("relu2", m.logit_softcap)
        sizes = "num_hidden_layers", "hidden_size", "max_position_embeddings", "vocab_size"
    else:
        assert config["activation_function"] == ("gelu_new" if m.gelu_approximate else "gelu")
        sizes = "n_layer", "n_embd", "n_positions", "vocab_size"
    assert tuple(config[k] for k in sizes) == (m.n_layer, m.n_embd, m.block_size, m.vocab_size)
    assert json.loads((out / "tokenizer_config.json").read_text())["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert not any(p.name.startswith(".") for p in out.parent.iterdir())  # no partial directory left behind


# ---------------------------------------------------------------- --init-from


# what a user's GPT-2 download looks like (tied, tanh GELU), and the other shape GPT-2 configs allow
GPT2_KINDS = {"gpt2": dict(tie_word_embeddings=True, activation_function="gelu_new"),
              "untied-erf": dict(tie_word_embeddings=False, activation_function="gelu")}


def save_random(model_class, config, d):
    """A model of `model_class` with every parameter from N(0, 0.3), saved into `d` by transformers."""
    torch.manual_seed(0)
    model = model_class(config)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    model.save_pretrained(d)


@pytest.fixture(scope="module")
def make_gpt2(tmp_path_factory, corpus, ja_text):
    """kind -> a directory holding a small random GPT2LMHeadModel saved by transformers, every parameter
    (biases and LayerNorms too) drawn from N(0, 0.3) so that any misplaced or dropped one, or the other GELU,
    shows in the logits; with a byte-level BPE saved next to it as a GPT2TokenizerFast."""
    done = {}

    def get(kind):
        if kind in done:
            return done[kind]
        d = tmp_path_factory.mktemp("gpt2") / kind
        bpe = Tokenizer(models.BPE())
        bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        bpe.decoder = decoders.ByteLevel()
        bpe.train_from_iterator([corpus.read_text(), ja_text.read_text()], trainers.BpeTrainer(
            vocab_size=320, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False))
        transformers.GPT2TokenizerFast(tokenizer_object=bpe, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                       unk_token="<|endoftext|>").save_pretrained(d)
        config = transformers.GPT2Config(vocab_size=bpe.get_vocab_size(), n_positions=64, n_embd=32, n_layer=2,
                                         n_head=2, bos_token_id=0, eos_token_id=0, **GPT2_KINDS[kind])
        save_random(transformers.GPT2LMHeadModel, config, d)
        done[kind] = d
        return d

    return get


@pytest.fixture
def gpt2_dir(make_gpt2):
    return make_gpt2("gpt2")


def hf_logits(d, ids):
    model = transformers.AutoModelForCausalLM.from_pretrained(d).eval()
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].numpy()


def assert_same_logits(model, d, tok_path):
    tok = Tokenizer.from_file(str(tok_path))
    for prompt in (EN, JA):
        ids = tok.encode(prompt).ids
        assert np.abs(np.asarray(model(jnp.asarray([ids]))[0]) - hf_logits(d, ids)).max() <= 1e-4


@pytest.fixture(scope="module")
def nanochat_dir(make_gpt2, tmp_path_factory):
    """A small random NanoChatForCausalLM saved by transformers (weights from N(0, 0.3), a soft-cap of 15),
    with the GPT-2 directory's tokenizer."""
    src, d = make_gpt2("gpt2"), tmp_path_factory.mktemp("nanochat") / "nc"
    shutil.copytree(src, d)
    for name in ("config.json", "model.safetensors", "generation_config.json"):
        (d / name).unlink(missing_ok=True)
    vocab = Tokenizer.from_file(str(d / "tokenizer.json")).get_vocab_size()
    config = transformers.NanoChatConfig(vocab_size=vocab, hidden_size=32, intermediate_size=128, num_hidden_layers=2,
                                         num_attention_heads=2, max_position_embeddings=64, bos_token_id=0,
                                         eos_token_id=0, pad_token_id=0)
    save_random(transformers.NanoChatForCausalLM, config, d)
    return d


def test_imported_nanochat_computes_transformers_logits(nanochat_dir):
    source = Checkpoint(nanochat_dir)
    m = make_config(None, source.overrides(["block_size=128"])).model  # rotary: no table to outgrow
    assert (m.rope, m.rms_norm, m.qk_norm, m.relu2, m.logit_softcap, m.tie_embeddings, m.block_size) == \
        (True, True, True, True, 15.0, False, 128)
    graphdef, params = nnx.split(GPT(m, nnx.Rngs(0)))
    assert_same_logits(nnx.merge(graphdef, source.warm_start(params)), nanochat_dir, nanochat_dir / "tokenizer.json")


def test_export_refuses_a_model_mixing_the_families(corpus, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", str(corpus), "--out", str(run), "--tokenizer", "char", "--max-steps", "1", "--quiet",
                 *sets("rope=false")]) == 0
    capsys.readouterr()
    assert main(["export", str(run), "--to", "hf", str(tmp_path / "out")]) == 2
    one_line_error(capsys, "mixes the two families")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", GPT2_KINDS)
def test_imported_gpt2_computes_transformers_logits(make_gpt2, kind):
    d = make_gpt2(kind)
    source = Checkpoint(d)
    m = make_config(None, source.overrides([])).model
    assert (m.bias, m.gelu_approximate, m.tie_embeddings, m.block_size) == \
        (True, kind == "gpt2", kind == "gpt2", 64)
    graphdef, params = nnx.split(GPT(m, nnx.Rngs(0)))
    assert_same_logits(nnx.merge(graphdef, source.warm_start(params)), d, d / "tokenizer.json")


def test_gpt2s_own_parameter_names_import_the_same(make_gpt2, tmp_path):
    """OpenAI's GPT-2 checkpoints name parameters without "transformer." and hold causal-mask buffers."""
    from safetensors.numpy import load_file, save_file

    src, d = make_gpt2("gpt2"), tmp_path / "gpt2"
    shutil.copytree(src, d)
    tensors = {k.removeprefix("transformer."): v for k, v in load_file(d / "model.safetensors").items()}
    tensors |= {f"h.{i}.attn.bias": np.tril(np.ones((1, 1, 64, 64), np.float32)) for i in range(2)}
    save_file(tensors, d / "model.safetensors", metadata={"format": "pt"})
    a, b = Checkpoint(src).params, Checkpoint(d).params
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def imported_run(make_gpt2, corpus, tmp_path_factory):
    """kind -> a run started with `jax-llm train --init-from` and trained one step at a learning rate of ~0,
    so that its checkpoint holds the imported weights (the first 32 of 64 positions)."""
    done = {}

    def get(kind):
        if kind not in done:
            run = tmp_path_factory.mktemp("imported") / kind
            assert main(["train", str(corpus), "--out", str(run), "--init-from", str(make_gpt2(kind)), "--quiet",
                         "--max-steps", "1", *sets("block_size=32", "learning_rate=1e-9", "min_lr=0", "muon_lr=1e-9")]) == 0
            done[kind] = run
        return done[kind]

    return get


@pytest.mark.parametrize("kind", GPT2_KINDS)
def test_init_from_then_export_round_trips(make_gpt2, imported_run, kind, tmp_path):
    d, run = make_gpt2(kind), imported_run(kind)
    cfg, model, _ = load_model(run)
    assert cfg.model.block_size == 32 and cfg.data.tokenizer == str((d / "tokenizer.json").resolve())
    assert_same_logits(model, d, run / "tokenizer.json")
    assert main(["export", str(run), "--to", "hf", str(tmp_path / "hf")]) == 0
    tok = Tokenizer.from_file(str(run / "tokenizer.json"))
    for prompt in (EN, JA):
        ids = tok.encode(prompt).ids
        assert np.abs(hf_logits(tmp_path / "hf", ids) - hf_logits(d, ids)).max() <= 1e-4


def test_init_from_trains_on_and_resume_never_imports_again(gpt2_dir, imported_run, corpus, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(imported_run("gpt2"), run)
    base = ["train", str(corpus), "--out", str(run), "--init-from", str(gpt2_dir), "--quiet", "--resume"]
    assert main([*base, "--max-steps", "40", "--set", "learning_rate=1e-2", "--set", "min_lr=1e-3",
                 "--set", "log_interval=1"]) == 0
    losses = [r["loss"] for r in read_metrics(run / "metrics.jsonl") if "loss" in r]
    assert len(losses) == 40 and np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.5
    # a second resume continues from step 40's weights, not from the checkpoint imported again
    assert main([*base, "--max-steps", "42"]) == 0
    again = [r["loss"] for r in read_metrics(run / "metrics.jsonl") if "loss" in r and r["step"] > 40]
    assert len(again) == 2 and max(again) < np.mean(losses[:5]) - 0.5


# ---------------------------------------------------------------- refusals: one line, exit 2, nothing lost


def one_line_error(capsys, expected: str) -> None:
    err = capsys.readouterr().err.strip()
    assert expected in err and err.count("\n") == 0, err


@pytest.mark.parametrize("change, args, expected", [
    (None, ["--set", "block_size=128"], "above"),
    (None, ["--set", "n_layer=3"], "conflicts with"),
    (None, ["--tokenizer", "char"], "conflicts with"),
    ("tokenizer.json", [], "no tokenizer.json"),
    ("model.safetensors", [], "no model.safetensors"),
])
def test_init_from_refusals(gpt2_dir, corpus, tmp_path, capsys, change, args, expected):
    src = gpt2_dir
    if change:
        src = tmp_path / "hf"
        shutil.copytree(gpt2_dir, src)
        (src / change).unlink()
        if change == "model.safetensors":
            torch.save(transformers.AutoModelForCausalLM.from_pretrained(gpt2_dir).state_dict(),
                       src / "pytorch_model.bin")
    out = tmp_path / "run"
    capsys.readouterr()
    assert main(["train", str(corpus), "--out", str(out), "--init-from", str(src), "--quiet", *args]) == 2
    one_line_error(capsys, expected)
    assert not out.exists()


def test_export_refuses_a_non_empty_out(export_run, tmp_path, capsys):
    run, _, _ = export_run("en-char-gpt2")
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["export", str(run), "--to", "hf", str(tmp_path)]) == 2
    one_line_error(capsys, "not empty")
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"] and (tmp_path / "keep.txt").read_text() == "mine"


def test_export_refuses_an_input_method_model(corpus, tmp_path, capsys):
    ime = tmp_path / "ime"
    assert main(["ime", "train", "--dataset", str(corpus), "--out", str(ime), "--block-size", "8", "--max-steps", "1",
                 "--quiet", "--set", "n_layer=1", "--set", "n_embd=32", "--set", "n_head=2"]) == 0
    capsys.readouterr()
    assert main(["export", str(ime), "--to", "hf", str(tmp_path / "out")]) == 2
    one_line_error(capsys, "input-method model")
    assert not (tmp_path / "out").exists()
