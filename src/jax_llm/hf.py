"""Hugging Face `transformers` interchange: export a run; start a run from a checkpoint (`--init-from`).

A `gpt2` run goes to and from GPT-2's layout, a `modern` run to and from NanoChat's (hf_layouts.py).
Neither direction needs PyTorch: weights go through `safetensors.numpy`. What a layout cannot express
is refused in one line: the input method's two vocabularies and second input stream, a model mixing
the two families, or a checkpoint whose config this GPT cannot compute.
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
from jax_llm.config import FAMILIES, ModelConfig, RunConfig
from jax_llm.errors import UserError
from jax_llm.hf_layouts import LAYOUTS, layout_for, param_shapes
from jax_llm.rundir import RunDir

WEIGHTS = "model.safetensors"


# ---------------------------------------------------------------- export


def check_exportable(run: RunDir, m: ModelConfig):
    """The layout that expresses the run's model, or a one-line refusal."""
    if m.aux_vocab_size or m.out_vocab_size not in (0, m.vocab_size):
        raise UserError(f"{run.path} is an input-method model (codes in, words out, a second input stream): "
                        f"GPT-2 and NanoChat have one vocabulary and one input, so it cannot be exported to "
                        f"Hugging Face")
    try:
        return layout_for(m)
    except UserError as e:
        raise UserError(f"{run.path}: {e}") from None


def export(run_dir: Path, out: Path) -> int:
    """Write `out` (config.json, model.safetensors, tokenizer, generation config) from the run's latest
    checkpoint; the step exported. `out` must be new or empty; it appears complete or not at all."""
    from safetensors.numpy import save

    from jax_llm.pretrain import load_run

    run, out = RunDir(run_dir), Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out}: exists and is not empty; export writes a new directory")
    layout = check_exportable(run, run.load_config().model)
    cfg, tok, model, step = load_run(run.path)
    m = cfg.model
    ours = flatten_dict(nnx.to_pure_dict(nnx.state(model, nnx.Param)))
    tensors = {k: np.ascontiguousarray(v) for k, v in layout.to_hf(ours, m).items()}
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"  # renamed to `out` once complete
    try:
        tmp.mkdir(parents=True)
        (tmp / WEIGHTS).write_bytes(save(tensors, metadata={"format": "pt"}))  # ("pt": what transformers expects)
        special = special_tokens(tok)
        ids = {f"{k}_id": tok.token_to_id(special[k]) if k in special else None for k in ("bos_token", "eos_token")}
        _write_json(tmp / "config.json", layout.hf_config(m) | ids)
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
              "gelu_approximate", *FAMILIES["gpt2"], "tokenizer")


class Checkpoint:
    """A local GPT-2 or NanoChat checkpoint (`save_pretrained` output), read and checked before anything is written."""

    def __init__(self, hf_dir: Path):
        self.dir = d = Path(hf_dir)
        if not (d / "config.json").is_file():
            raise UserError(f"{d}: no config.json (--init-from wants a directory written by save_pretrained)")
        try:
            c = json.loads((d / "config.json").read_text())
        except ValueError as e:
            raise UserError(f"{d / 'config.json'}: not valid JSON ({e})") from None
        if c.get("model_type") not in LAYOUTS:
            raise UserError(f"{d}: model_type {c.get('model_type')!r}; --init-from reads "
                            f"{' and '.join(LAYOUTS)} checkpoints only")
        self.layout = LAYOUTS[c["model_type"]]
        try:
            self.model = self.layout.model_config(c)
        except UserError as e:
            raise UserError(f"{d}: {e}") from None
        self.tokenizer = d / "tokenizer.json"
        if not self.tokenizer.is_file():
            raise UserError(f"{d}: no tokenizer.json; save the model's fast tokenizer next to it "
                            f"(AutoTokenizer...save_pretrained) and try again")
        n_tok = tokenizer.load(self.tokenizer).get_vocab_size()
        if n_tok != self.model.vocab_size:
            raise UserError(f"{d}: its tokenizer has {n_tok} tokens, its model vocab_size {self.model.vocab_size}; "
                            f"they must be equal")
        self.params = self._read_weights()

    def _read_weights(self) -> dict[tuple, np.ndarray]:
        """Every parameter of our model with the checkpoint's config, by our path, each checked."""
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
        tensors = {k: np.asarray(v, np.float32) for k, v in self.layout.prepare(raw).items()}

        def take(name):
            if name not in tensors:
                raise UserError(f"{path}: {name} is missing")
            return tensors[name]

        params = {}
        for ours, want in param_shapes(self.model).items():
            params[ours] = value = self.layout.from_hf(tensors, ours, take)
            if value.shape != want:
                raise UserError(f"{path}: {'.'.join(map(str, ours))} would be of shape {value.shape}, its "
                                f"config.json wants shape {want}")
        return params

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
                if trial.get(key) > self.model.block_size and not self.model.rope:
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
            value = self.params[path][: current.shape[0]] if path[0] == "wpe" else self.params[path]
            if value.shape != current.shape:
                raise UserError(f"{self.dir}: {'.'.join(map(str, path))} has shape {value.shape}, this run wants "
                                f"{current.shape}")
            pure[path] = value
        nnx.replace_by_pure_dict(params, unflatten_dict(pure))
        return params
