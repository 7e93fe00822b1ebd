"""Hugging Face `transformers` interchange, GPT-2 layout: export a run; start a run from a GPT-2 checkpoint.

Our GPT is GPT-2's architecture, so the two share one table of parameter names. Linear kernels are
(d_in, d_out), as GPT-2's Conv1D weights; only an untied output layer is transposed (`lm_head` is a
torch Linear). Neither direction needs PyTorch: weights go through `safetensors.numpy`.

What GPT-2 cannot express is refused in one line: the input method's two vocabularies and second
input stream, LayerNorm epsilons other than 1e-5, an MLP width other than 4 x n_embd, other activations.
A run without biases is exported with zero biases, which computes the same function.
"""

import dataclasses
import json
import os
import shutil
from pathlib import Path

import numpy as np
from flax import nnx
from flax.traverse_util import flatten_dict, unflatten_dict

from jax_llm import tokenizer
from jax_llm.config import ModelConfig, RunConfig
from jax_llm.errors import UserError
from jax_llm.model import GPT
from jax_llm.rundir import RunDir

WEIGHTS = "model.safetensors"
# our activation (gelu_approximate) <-> GPT-2's activation_function; gelu_new is what GPT-2 checkpoints use
ACTIVATIONS = {"gelu": False, "gelu_new": True, "gelu_pytorch_tanh": True}
_RENAME = {"blocks": "h", "ln1": "ln_1", "ln2": "ln_2", "qkv": "c_attn", "proj": "c_proj", "fc": "c_fc",
           "kernel": "weight", "scale": "weight", "embedding": "weight"}


def hf_name(path: tuple) -> str:
    """Our parameter path, e.g. ("blocks", 0, "attn", "qkv", "kernel"), to GPT-2's (without "transformer.")."""
    return "lm_head.weight" if path[0] == "head" else ".".join(_RENAME.get(str(p), str(p)) for p in path)


def _param_shapes(m: ModelConfig) -> dict[tuple, tuple]:
    """Every parameter path of a GPT with this config, and its shape."""
    abstract = nnx.eval_shape(lambda: GPT(m, nnx.Rngs(0)))
    return {k: v.shape for k, v in flatten_dict(nnx.to_pure_dict(nnx.state(abstract, nnx.Param))).items()}


# ---------------------------------------------------------------- export


def check_exportable(run: RunDir, m: ModelConfig) -> None:
    if m.aux_vocab_size or m.out_vocab_size not in (0, m.vocab_size):
        raise UserError(f"{run.path} is an input-method model (codes in, words out, a second input stream): "
                        f"GPT-2 has one vocabulary and one input, so it cannot be exported to Hugging Face")


def export(run_dir: Path, out: Path) -> int:
    """Write `out` (config.json, model.safetensors, tokenizer, generation config) from the run's latest
    checkpoint; the step exported. `out` must be new or empty; it appears complete or not at all."""
    from safetensors.numpy import save

    from jax_llm.pretrain import load_run

    run, out = RunDir(run_dir), Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out}: exists and is not empty; export writes a new directory")
    check_exportable(run, run.load_config().model)
    cfg, tok, model, step = load_run(run.path)
    m = cfg.model
    ours = flatten_dict(nnx.to_pure_dict(nnx.state(model, nnx.Param)))
    tensors = {}
    for path, shape in _param_shapes(dataclasses.replace(m, bias=True)).items():  # no bias: zeros
        value = np.asarray(ours[path], np.float32) if path in ours else np.zeros(shape, np.float32)
        name = hf_name(path)
        tensors[name if path[0] == "head" else "transformer." + name] = np.ascontiguousarray(
            value.T if path[0] == "head" else value)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"  # renamed to `out` once complete
    try:
        tmp.mkdir(parents=True)
        (tmp / WEIGHTS).write_bytes(save(tensors, metadata={"format": "pt"}))  # ("pt": what transformers expects)
        special = special_tokens(tok)
        ids = {f"{k}_id": tok.token_to_id(special[k]) if k in special else None for k in ("bos_token", "eos_token")}
        _write_json(tmp / "config.json", gpt2_config(m) | ids)
        _write_json(tmp / "generation_config.json", {k: v for k, v in ids.items() if v is not None})
        tok.save(str(tmp / "tokenizer.json"))
        _write_json(tmp / "tokenizer_config.json", dict(tokenizer_class="PreTrainedTokenizerFast",
                                                        model_max_length=m.block_size,
                                                        clean_up_tokenization_spaces=False, **special))
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return step


def gpt2_config(m: ModelConfig) -> dict:
    """transformers' GPT2Config as JSON, for our model config."""
    return dict(architectures=["GPT2LMHeadModel"], model_type="gpt2", vocab_size=m.vocab_size,
                n_positions=m.block_size, n_embd=m.n_embd, n_layer=m.n_layer, n_head=m.n_head, n_inner=None,
                activation_function="gelu_new" if m.gelu_approximate else "gelu", layer_norm_epsilon=1e-5,
                resid_pdrop=m.dropout, embd_pdrop=m.dropout, attn_pdrop=m.dropout, initializer_range=0.02,
                scale_attn_weights=True, use_cache=True, tie_word_embeddings=m.tie_embeddings, dtype="float32")


def special_tokens(tok) -> dict[str, str]:
    """GPT-2's convention: <|endoftext|> is beginning, end and unknown; the char tokenizer has only <unk>."""
    names = {}
    if tok.token_to_id(tokenizer.END_OF_TEXT) is not None:
        names = dict.fromkeys(("bos_token", "eos_token", "unk_token"), tokenizer.END_OF_TEXT)
    if tok.token_to_id(tokenizer.UNKNOWN_CHAR) is not None:
        names["unk_token"] = tokenizer.UNKNOWN_CHAR
    return names


def _write_json(path: Path, value: dict) -> None:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


# ---------------------------------------------------------------- import (--init-from)

# keys that --init-from takes from the checkpoint; a --set of another value is refused
SHAPE_KEYS = ("vocab_size", "out_vocab_size", "aux_vocab_size", "n_layer", "n_head", "n_embd", "bias",
              "gelu_approximate", "tie_embeddings", "tokenizer")


class GPT2Checkpoint:
    """A local GPT-2-layout checkpoint (`save_pretrained` output), read and checked before anything is written."""

    def __init__(self, hf_dir: Path):
        self.dir = d = Path(hf_dir)
        if not (d / "config.json").is_file():
            raise UserError(f"{d}: no config.json (--init-from wants a directory written by save_pretrained)")
        try:
            c = json.loads((d / "config.json").read_text())
        except ValueError as e:
            raise UserError(f"{d / 'config.json'}: not valid JSON ({e})") from None
        if c.get("model_type") != "gpt2":
            raise UserError(f"{d}: model_type {c.get('model_type')!r}; --init-from reads GPT-2 checkpoints only")
        act, eps = c.get("activation_function", "gelu_new"), c.get("layer_norm_epsilon", 1e-5)
        n_embd = c.get("n_embd", 768)
        problems = [f"activation_function {act!r}"] * (act not in ACTIVATIONS)
        problems += [f"layer_norm_epsilon {eps}"] * (abs(eps - 1e-5) > 1e-12)
        problems += [f"n_inner {c['n_inner']}"] * (c.get("n_inner") not in (None, 4 * n_embd))
        problems += ["scale_attn_by_inverse_layer_idx"] * bool(c.get("scale_attn_by_inverse_layer_idx"))
        problems += ["scale_attn_weights false"] * (not c.get("scale_attn_weights", True))
        if problems:
            raise UserError(f"{d}: {', '.join(problems)}: this GPT cannot compute that (gelu or gelu_new, "
                            f"epsilon 1e-5, MLP 4 x n_embd)")
        self.tokenizer = d / "tokenizer.json"
        if not self.tokenizer.is_file():
            raise UserError(f"{d}: no tokenizer.json; save the model's fast tokenizer next to it "
                            f"(AutoTokenizer...save_pretrained) and try again")
        self.model = ModelConfig(vocab_size=c.get("vocab_size", 50257), n_layer=c.get("n_layer", 12),
                                 n_head=c.get("n_head", 12), n_embd=n_embd, block_size=c.get("n_positions", 1024),
                                 bias=True, gelu_approximate=ACTIVATIONS[act],
                                 tie_embeddings=c.get("tie_word_embeddings", True))
        n_tok = tokenizer.load(self.tokenizer).get_vocab_size()
        if n_tok != self.model.vocab_size:
            raise UserError(f"{d}: its tokenizer has {n_tok} tokens, its model vocab_size {self.model.vocab_size}; "
                            f"they must be equal")
        self.tensors = self._read_weights()

    def _read_weights(self) -> dict[str, np.ndarray]:
        from safetensors.numpy import load_file

        path = self.dir / WEIGHTS
        if not path.is_file():
            found = ", ".join(p.name for p in self.dir.glob("*.bin")) or "none"
            raise UserError(f"{self.dir}: no {WEIGHTS} (weight files found: {found}); re-save the model with "
                            f"save_pretrained in transformers >= 4.35, which writes safetensors")
        try:
            raw = load_file(str(path))
        except Exception as e:  # the Rust reader raises its own error types
            raise UserError(f"{path}: cannot read ({str(e).splitlines()[0]})") from None
        # GPT-2's own checkpoints name parameters without "transformer." and hold causal-mask buffers
        tensors = {k.removeprefix("transformer."): np.asarray(v, np.float32) for k, v in raw.items()
                   if not k.endswith((".attn.bias", ".attn.masked_bias"))}
        expected = _param_shapes(self.model)
        for path_, shape in expected.items():
            name = hf_name(path_)
            got = tensors.get(name)
            want = shape[::-1] if path_[0] == "head" else shape
            if got is None or got.shape != want:
                raise UserError(f"{path}: {name} is {'missing' if got is None else f'of shape {got.shape}'}, "
                                f"its config.json wants shape {want}")
        return tensors

    def overrides(self, user: list[str]) -> list[str]:
        """The `--set` list of a new run: the user's, then the checkpoint's shape and tokenizer, which win
        over a preset. A user's block_size may be smaller (the first positions are kept), not larger."""
        ckpt, block = self._config(), self.model.block_size
        for item in user:
            key, _, value = (s.strip() for s in item.partition("="))
            trial = self._config()
            trial.set(key, value)
            if key in SHAPE_KEYS and trial.get(key) != ckpt.get(key):
                raise UserError(f"{key}={value} conflicts with {self.dir}, whose {key} is {ckpt.get(key)} "
                                f"(--init-from takes the model's shape and tokenizer from the checkpoint)")
            if key == "block_size":
                if trial.get(key) > self.model.block_size:
                    raise UserError(f"block_size {trial.get(key)} is above {self.dir}'s n_positions "
                                    f"{self.model.block_size}: it has no position embeddings beyond that")
                block = trial.get(key)
        return list(user) + [f"{k}={ckpt.get(k)}" for k in SHAPE_KEYS] + [f"block_size={block}"]

    def _config(self) -> RunConfig:
        cfg = RunConfig(model=dataclasses.replace(self.model))
        cfg.data.tokenizer = str(self.tokenizer.resolve())
        return cfg

    def warm_start(self, params):
        """params -> params holding the checkpoint's weights (positions cut to the run's block size)."""
        pure = flatten_dict(nnx.to_pure_dict(params))
        for path, current in pure.items():
            value = self.tensors[hf_name(path)]
            value = value.T if path[0] == "head" else value[: current.shape[0]] if path[0] == "wpe" else value
            if value.shape != current.shape:
                raise UserError(f"{self.dir}: {hf_name(path)} has shape {value.shape}, this run wants "
                                f"{current.shape}")
            pure[path] = value
        nnx.replace_by_pure_dict(params, unflatten_dict(pure))
        return params
