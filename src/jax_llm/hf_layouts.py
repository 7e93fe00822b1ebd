"""The two `transformers` layouts our model families map to, one class each.

- GPT-2 (`GPT2LMHeadModel`): the `gpt2` family. Linear kernels are (d_in, d_out), as GPT-2's Conv1D
  weights; only an untied output layer is transposed (`lm_head` is a torch Linear). A run without
  biases is exported with zero biases, which computes the same function.
- NanoChat (`NanoChatForCausalLM`, transformers 5): the `modern` family. Every weight is a torch
  Linear's (d_out, d_in); our fused qkv kernel is its q_proj, k_proj, v_proj; its norms have no
  weights; its rotary sign and RoPE-then-norm order are ours (model.rotate).

A layout says whether it can express a config, writes the config.json, and names our parameters its way.
"""

import dataclasses

import numpy as np
from flax import nnx
from flax.traverse_util import flatten_dict

from jax_llm.config import FAMILIES, ModelConfig
from jax_llm.errors import UserError
from jax_llm.model import GPT, RMS_EPS, ROPE_BASE

# our activation (gelu_approximate) <-> GPT-2's activation_function; gelu_new is what GPT-2 checkpoints use
ACTIVATIONS = {"gelu": False, "gelu_new": True, "gelu_pytorch_tanh": True}


def param_shapes(m: ModelConfig) -> dict[tuple, tuple]:
    """Every parameter path of a GPT with this config, e.g. ("blocks", 0, "attn", "qkv", "kernel"), and its shape."""
    abstract = nnx.eval_shape(lambda: GPT(m, nnx.Rngs(0)))
    return {k: v.shape for k, v in flatten_dict(nnx.to_pure_dict(nnx.state(abstract, nnx.Param))).items()}


def _family_problems(m: ModelConfig, family: str) -> list[str]:
    return [f"{k}={getattr(m, k)}" for k, v in FAMILIES[family].items()
            if k not in ("tie_embeddings", "logit_softcap") and getattr(m, k) != v]


class GPT2Layout:
    model_type, architecture = "gpt2", "GPT2LMHeadModel"
    _RENAME = {"blocks": "h", "ln1": "ln_1", "ln2": "ln_2", "qkv": "c_attn", "proj": "c_proj", "fc": "c_fc",
               "kernel": "weight", "scale": "weight", "embedding": "weight"}

    def problems(self, m: ModelConfig) -> list[str]:
        return _family_problems(m, "gpt2") + [f"logit_softcap={m.logit_softcap}"] * bool(m.logit_softcap)

    def hf_config(self, m: ModelConfig) -> dict:
        return dict(architectures=[self.architecture], model_type=self.model_type, vocab_size=m.vocab_size,
                    n_positions=m.block_size, n_embd=m.n_embd, n_layer=m.n_layer, n_head=m.n_head, n_inner=None,
                    activation_function="gelu_new" if m.gelu_approximate else "gelu", layer_norm_epsilon=1e-5,
                    resid_pdrop=m.dropout, embd_pdrop=m.dropout, attn_pdrop=m.dropout, initializer_range=0.02,
                    scale_attn_weights=True, use_cache=True, tie_word_embeddings=m.tie_embeddings, dtype="float32")

    def model_config(self, c: dict) -> ModelConfig:
        """Our config for a GPT-2 config.json; what this GPT cannot compute is refused in one line."""
        act, eps = c.get("activation_function", "gelu_new"), c.get("layer_norm_epsilon", 1e-5)
        n_embd = c.get("n_embd", 768)
        problems = [f"activation_function {act!r}"] * (act not in ACTIVATIONS)
        problems += [f"layer_norm_epsilon {eps}"] * (abs(eps - 1e-5) > 1e-12)
        problems += [f"n_inner {c['n_inner']}"] * (c.get("n_inner") not in (None, 4 * n_embd))
        problems += ["scale_attn_by_inverse_layer_idx"] * bool(c.get("scale_attn_by_inverse_layer_idx"))
        problems += ["scale_attn_weights false"] * (not c.get("scale_attn_weights", True))
        if problems:
            raise UserError(f"{', '.join(problems)}: this GPT cannot compute that (gelu or gelu_new, "
                            f"epsilon 1e-5, MLP 4 x n_embd)")
        return ModelConfig(vocab_size=c.get("vocab_size", 50257), n_layer=c.get("n_layer", 12),
                           n_head=c.get("n_head", 12), n_embd=n_embd, block_size=c.get("n_positions", 1024),
                           bias=True, gelu_approximate=ACTIVATIONS[act],
                           **{**FAMILIES["gpt2"], "tie_embeddings": c.get("tie_word_embeddings", True)})

    def name(self, path: tuple) -> str:
        return "lm_head.weight" if path[0] == "head" else ".".join(self._RENAME.get(str(p), str(p)) for p in path)

    def to_hf(self, params: dict, m: ModelConfig) -> dict[str, np.ndarray]:
        tensors = {}
        for path, shape in param_shapes(dataclasses.replace(m, bias=True)).items():  # no bias: zeros
            value = np.asarray(params[path], np.float32) if path in params else np.zeros(shape, np.float32)
            name = self.name(path)
            tensors[name if path[0] == "head" else "transformer." + name] = value.T if path[0] == "head" else value
        return tensors

    def from_hf(self, tensors: dict, path: tuple, take) -> np.ndarray:
        """Our parameter at `path` from the checkpoint; `take(name, shape)` reads one tensor, checked."""
        # GPT-2's own checkpoints name parameters without "transformer."
        name = self.name(path)
        return take(name).T if path[0] == "head" else take(name)

    def prepare(self, raw: dict) -> dict:
        """The checkpoint's tensors by the names `name` gives (OpenAI's own files also hold mask buffers)."""
        return {k.removeprefix("transformer."): v for k, v in raw.items()
                if not k.endswith((".attn.bias", ".attn.masked_bias"))}


class NanoChatLayout:
    model_type, architecture = "nanochat", "NanoChatForCausalLM"
    _PROJ = {("attn", "proj"): "self_attn.o_proj", ("mlp", "fc"): "mlp.fc1", ("mlp", "proj"): "mlp.fc2"}

    def problems(self, m: ModelConfig) -> list[str]:
        return (_family_problems(m, "modern") + ["bias=True"] * m.bias
                + ["tie_embeddings=True"] * m.tie_embeddings)

    def hf_config(self, m: ModelConfig) -> dict:
        return dict(architectures=[self.architecture], model_type=self.model_type, vocab_size=m.vocab_size,
                    hidden_size=m.n_embd, intermediate_size=4 * m.n_embd, num_hidden_layers=m.n_layer,
                    num_attention_heads=m.n_head, num_key_value_heads=m.n_head, max_position_embeddings=m.block_size,
                    hidden_act="relu2", attention_dropout=m.dropout, rms_norm_eps=RMS_EPS,
                    rope_parameters=dict(rope_type="default", rope_theta=ROPE_BASE), attention_bias=False,
                    final_logit_softcapping=m.logit_softcap or None, tie_word_embeddings=False, dtype="float32")

    def model_config(self, c: dict) -> ModelConfig:
        rope = c.get("rope_parameters") or {}
        hidden, heads = c.get("hidden_size", 768), c.get("num_attention_heads", 6)
        problems = [f"hidden_act {c.get('hidden_act')!r}"] * (c.get("hidden_act", "relu2") != "relu2")
        problems += [f"intermediate_size {c.get('intermediate_size')}"] * (c.get("intermediate_size") != 4 * hidden)
        problems += [f"num_key_value_heads {c['num_key_value_heads']}"] * (c.get("num_key_value_heads", heads) != heads)
        problems += [f"rms_norm_eps {c.get('rms_norm_eps')}"] * (abs(c.get("rms_norm_eps", 1e-6) - RMS_EPS) > 1e-12)
        problems += [f"rope {rope}"] * (rope.get("rope_type", "default") != "default"
                                        or rope.get("rope_theta", ROPE_BASE) != ROPE_BASE)
        problems += ["attention_bias"] * bool(c.get("attention_bias")) + ["tied"] * bool(c.get("tie_word_embeddings"))
        if problems:
            raise UserError(f"{', '.join(problems)}: this GPT cannot compute that (relu2, MLP 4 x hidden_size, "
                            f"as many key/value heads as heads, rms_norm_eps {RMS_EPS}, rope_theta {ROPE_BASE:g}, "
                            f"no biases, an untied head)")
        return ModelConfig(vocab_size=c.get("vocab_size", 50304), n_layer=c.get("num_hidden_layers", 12),
                           n_head=heads, n_embd=hidden, block_size=c.get("max_position_embeddings", 2048),
                           **{**FAMILIES["modern"], "logit_softcap": float(c.get("final_logit_softcapping") or 0.0)})

    def to_hf(self, params: dict, m: ModelConfig) -> dict[str, np.ndarray]:
        tensors = {"model.embed_tokens.weight": params[("wte", "embedding")],
                   "lm_head.weight": params[("head", "kernel")].T}
        for i in range(m.n_layer):
            q, k, v = np.split(params[("blocks", i, "attn", "qkv", "kernel")], 3, axis=1)
            for name, part in zip(("q_proj", "k_proj", "v_proj"), (q, k, v)):
                tensors[f"model.layers.{i}.self_attn.{name}.weight"] = part.T
            for (a, b), name in self._PROJ.items():
                tensors[f"model.layers.{i}.{name}.weight"] = params[("blocks", i, a, b, "kernel")].T
        return {k: np.asarray(v, np.float32) for k, v in tensors.items()}

    def from_hf(self, tensors: dict, path: tuple, take) -> np.ndarray:
        if path == ("wte", "embedding"):
            return take("model.embed_tokens.weight")
        if path == ("head", "kernel"):
            return take("lm_head.weight").T
        _, i, a, b, _ = path
        if (a, b) == ("attn", "qkv"):
            return np.concatenate([take(f"model.layers.{i}.self_attn.{n}_proj.weight").T for n in "qkv"], axis=1)
        return take(f"model.layers.{i}.{self._PROJ[(a, b)]}.weight").T

    def prepare(self, raw: dict) -> dict:
        return raw


LAYOUTS = {layout.model_type: layout for layout in (GPT2Layout(), NanoChatLayout())}


def layout_for(m: ModelConfig):
    """The layout that expresses this config, or a one-line refusal saying what neither can."""
    for layout in LAYOUTS.values():
        if not layout.problems(m):
            return layout
    raise UserError("this model mixes the two families (" + "; ".join(
        f"{layout.architecture} cannot have {', '.join(layout.problems(m))}" for layout in LAYOUTS.values())
        + "): no Hugging Face layout expresses it")
