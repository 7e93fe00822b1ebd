"""The language-modelling job: a text file in, a run directory out; and loading a run back.

A run directory holds everything `generate` needs: config.json, tokenizer.json, checkpoints/,
plus tokens.bin (the prepared corpus), metrics.jsonl and loss.png.
"""

from pathlib import Path

import jax
from flax import nnx

from jax_llm import data, parallel, tokenizer
from jax_llm.checkpoint import Checkpoints
from jax_llm.config import RunConfig
from jax_llm.errors import UserError
from jax_llm.model import GPT, count_params
from jax_llm.sample import generate
from jax_llm.train import build_engine, fit, full_val_loss, prepare_run_dir


def pretrain(text_path: Path, run_dir: Path, cfg: RunConfig, resume: bool, quiet: bool = False) -> dict:
    text_path, run_dir = Path(text_path), Path(run_dir)
    prepare_run_dir(run_dir, resume)
    data.check_text_file(text_path)
    cfg.validate()
    d = cfg.data
    main = parallel.is_main_process()
    if not main:  # process 0 prepares the run directory first; the others then reuse its files
        parallel.sync("prepare")
    tok, corpus = data.prepare(text_path, run_dir, d.tokenizer, d.bpe_vocab_size, d.val_fraction)
    if main:
        parallel.sync("prepare")
    cfg.model.vocab_size = tok.get_vocab_size()
    train, val = data.lm_splits(corpus, cfg.model.block_size)
    if main:
        cfg.save(run_dir / "config.json")
        n_params = count_params(nnx.eval_shape(lambda: GPT(cfg.model, nnx.Rngs(0))))
        print(f"{len(corpus.tokens):,} tokens ({len(train):,} train, {len(val):,} val), vocab {cfg.model.vocab_size}, "
              f"{n_params / 1e6:.2f}M parameters, {jax.device_count()} device(s)")
    summary = fit(run_dir, cfg, train, val, resume, quiet=quiet)
    engine = summary.pop("engine")
    summary["final_val_loss"] = full_val_loss(engine, val)
    params = parallel.to_host(engine.state["params"]) if cfg.train.sample_tokens else None  # all processes
    if main:
        print(f"val loss over the whole val split: {summary['final_val_loss']:.4f}")
        if cfg.train.sample_tokens:
            model = nnx.merge(engine.graphdef, params)
            prompt = tok.encode("\n").ids or [0]
            ids = generate(model, prompt, cfg.train.sample_tokens, temperature=0.8, top_k=200, seed=cfg.train.seed)
            summary["sample"] = tok.decode(ids[len(prompt):])
            print("sample:\n" + summary["sample"])
    return summary


def load_model(run_dir: Path):
    """(config, model with the latest checkpoint's parameters, step) of any run directory."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise UserError(f"{run_dir}: not a run directory (no config.json)")
    cfg = RunConfig.load(run_dir / "config.json")
    ckpts = Checkpoints(run_dir / "checkpoints", cfg.train.keep_checkpoints)
    step = ckpts.latest_step()
    if step is None:
        raise UserError(f"{run_dir}: no checkpoint yet")
    engine = build_engine(cfg)
    state = ckpts.restore(step, engine.state)
    ckpts.close()
    return cfg, nnx.merge(engine.graphdef, parallel.to_host(state["params"])), step


def load_run(run_dir: Path):
    """(config, tokenizer, model, step) of a language-model run directory."""
    cfg, model, step = load_model(run_dir)
    return cfg, tokenizer.load(Path(run_dir) / "tokenizer.json"), model, step
