"""The language-modelling job: a text file in, a trained run directory out; and loading a run back."""

from dataclasses import dataclass
from pathlib import Path

import jax
from flax import nnx

from jax_llm import data, faults, metrics, parallel, tokenizer
from jax_llm.config import RunConfig
from jax_llm.errors import UserError
from jax_llm.model import GPT, count_params
from jax_llm.rundir import RunDir
from jax_llm.sample import generate
from jax_llm.textfile import check_text_file
from jax_llm.train import FitResult, fit, full_val_loss, load_model


@dataclass
class Pretrained:
    fit: FitResult
    final_val_loss: float  # over the whole val split, nats per token
    final_val_bpb: float  # the same, in bits per UTF-8 byte of the val text
    sample: str | None  # `sample_tokens` generated after training


def pretrain(text_path: Path, run_dir: Path, cfg: RunConfig, resume: bool, quiet: bool = False,
             warm_start=None) -> Pretrained:
    """`cfg` comes from `rundir.resolve_config`; its vocabulary size is set here, from the tokenizer.
    `warm_start(params) -> params` replaces the initial parameters of a run with no checkpoint (`--init-from`)."""
    text_path, run = Path(text_path), RunDir(run_dir)
    check_text_file(text_path)
    main = parallel.is_main_process()
    if not main:  # process 0 prepares the run directory first; the others then reuse its files
        parallel.sync("prepare")
    tok, corpus = data.prepare(text_path, run.path, cfg.data.tokenizer, cfg.data.bpe_vocab_size,
                               cfg.data.val_fraction, resume=resume)
    if main:
        parallel.sync("prepare")
    if resume and cfg.model.vocab_size != tok.get_vocab_size():
        raise UserError(f"cannot resume {run.path}: its model has vocab_size {cfg.model.vocab_size}, its "
                        f"tokenizer {tok.get_vocab_size()}")
    cfg.set("vocab_size", tok.get_vocab_size())  # the one size that follows from the tokenizer (a new, frozen
    cfg.validate()  # ModelConfig: nothing built from the old one changes), checked with the rest
    train, val = data.lm_splits(corpus, cfg.model.block_size)
    if main:
        cfg.save(run.config)
        n_params = count_params(nnx.eval_shape(lambda: GPT(cfg.model, nnx.Rngs(0))))
        n_val = len(corpus.tokens) - corpus.n_train
        print(f"{len(corpus.tokens):,} tokens: train {corpus.n_train:,} ({corpus.train_bytes:,} bytes), val {n_val:,} "
              f"({corpus.val_bytes:,} bytes, {val.bytes_per_token:.2f} per token); vocab {cfg.model.vocab_size}, "
              f"{n_params / 1e6:.2f}M parameters, {jax.device_count()} device(s)")
    result = fit(run.path, cfg, train, val, resume, quiet=quiet, warm_start=warm_start)
    engine = result.engine
    final_val_loss = full_val_loss(engine, val)
    final_val_bpb = metrics.bits_per_byte(final_val_loss, val.bytes_per_token)
    params = parallel.to_host(engine.state["params"]) if cfg.train.sample_tokens else None  # all processes
    sample = None
    if main:
        metrics.append(run.metrics, step=result.step, full_val_loss=final_val_loss, full_val_bpb=final_val_bpb)
        print(f"val loss over the whole val split: {final_val_loss:.4f} nats/token, {final_val_bpb:.4f} bits per byte")
        if cfg.train.sample_tokens:
            faults.reached("sample")
            model = nnx.merge(engine.graphdef, params)
            prompt = tok.encode("\n").ids or [0]
            ids = generate(model, prompt, cfg.train.sample_tokens, temperature=0.8, top_k=200, seed=cfg.train.seed)
            sample = tok.decode(ids[len(prompt):])
            print("sample:\n" + sample)
    return Pretrained(result, final_val_loss, final_val_bpb, sample)


def load_run(run_dir: Path):
    """(config, tokenizer, model, step) of a language-model run directory."""
    cfg, model, step = load_model(run_dir)
    return cfg, tokenizer.load(RunDir(run_dir).tokenizer), model, step
