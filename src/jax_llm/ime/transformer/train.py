"""Training the input method's Transformer through the engine (`train.fit`), and warm-starting it from a
word-level language model pretrained on the same words (`export_words`, then `--warm-start`)."""

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from jax_llm.config import RunConfig
from jax_llm.errors import UserError
from jax_llm.ime.language.words import Vocab, WordCorpus, dev_split
from jax_llm.ime.transformer import candidates
from jax_llm.ime.transformer.job import ime_sizes, ime_vocab, save_meta, streams, typed_codes
from jax_llm.rundir import RunDir, resolve_config
from jax_llm.train import FitResult, fit, load_model


def train(corpus: WordCorpus, run_dir: Path, preset: str | None = "ime-small", overrides: Sequence[str] = (),
          confirmed: bool = True, restricted: bool = True, resume: bool = False, quiet: bool = False,
          warm_start: Path | None = None, lookahead: int = 0, whole_train: bool = False) -> FitResult:
    """Train on the first 90% of the train split, validating on the rest (the dev slice); test is unseen.
    `whole_train`: train on the dev slice too, once settings were chosen on it (its loss is then not held
    out)."""
    if lookahead < 0:
        raise UserError(f"--lookahead must be >= 0 (got {lookahead})")
    run = RunDir(run_dir)
    vocab = ime_vocab(corpus)
    cfg = resolve_config(run, resume, preset, list(overrides), derived=ime_sizes(vocab, confirmed, lookahead))
    fit_words, dev_words = dev_split(corpus.train)
    if whole_train:
        fit_words = list(corpus.train)
    if len(dev_words) <= cfg.model.block_size:
        raise UserError(f"corpus too small: the dev slice has {len(dev_words)} words, need more than "
                        f"block_size ({cfg.model.block_size})")
    # checked before anything is written; a resumed run restores its own parameters instead
    init = warm_start_from(warm_start, cfg, vocab) if warm_start and not resume else None
    run.path.mkdir(parents=True, exist_ok=True)
    cfg.save(run.config)
    save_meta(run.path, vocab, dataset=corpus.name, confirmed=confirmed, restricted=restricted, lookahead=lookahead,
              whole_train=whole_train, warm_start=str(warm_start) if warm_start else None)
    fit_streams = streams(vocab, fit_words, confirmed, lookahead)
    objective = None  # the engine's default: every word scored
    if restricted:
        positions = cfg.train.batch_size * jax.device_count() * cfg.model.block_size
        layout = candidates.fit_layout(vocab.code_of, typed_codes(fit_streams), fit_streams.targets, positions)
        objective = candidates.objective(layout, cfg.train.label_smoothing)
    return fit(run.path, cfg, fit_streams, streams(vocab, dev_words, confirmed, lookahead), resume, quiet=quiet,
               objective=objective, warm_start=init)



def export_words(corpus, out_dir: Path) -> tuple[Path, Path]:
    """The train split as a text file plus a word-level tokenizer whose ids are this corpus's `Vocab` ids,
    so `jax-llm train TEXT --tokenizer TOKENIZER` pretrains a language model over exactly these words."""
    from tokenizers import Tokenizer, models, pre_tokenizers  # here: only exporting needs it, and it is slow to load

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    vocab = ime_vocab(corpus)
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab.words)}, unk_token=vocab.words[0]))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    text, tok_path = out_dir / "train-words.txt", out_dir / "words-tokenizer.json"
    words = corpus.train
    text.write_text("\n".join(" ".join(words[i: i + 20]) for i in range(0, len(words), 20)) + "\n")
    tok.save(str(tok_path))
    return text, tok_path


def warm_start_from(lm_dir: Path, cfg: RunConfig, vocab: Vocab):
    """params -> params with the language model's blocks, positions, and word embeddings placed where
    the input method reads the previous word (`aux_embed`) and scores the next one (`head`)."""
    lm_cfg, lm, _ = load_model(Path(lm_dir))
    m, lm_m = cfg.model, lm_cfg.model
    blocks = ("n_layer", "n_head", "n_embd", "rope", "rms_norm", "qk_norm", "relu2", "bias")
    mine, theirs = (dataclasses.asdict(c) for c in (m, lm_m))
    same = all(mine[k] == theirs[k] for k in blocks)
    if not same or lm_m.vocab_size != len(vocab) or lm_m.block_size < m.block_size or not m.aux_vocab_size:
        raise UserError(f"{lm_dir}: cannot warm-start from it: need the same blocks "
                        f"({', '.join(f'{k}={mine[k]}' for k in blocks)}), a vocabulary of this corpus's "
                        f"{len(vocab)} words (see `jax-llm ime export-words`), block_size >= {m.block_size}, "
                        f"and confirmed words")
    source = nnx.to_pure_dict(nnx.state(lm))
    words = np.asarray(source["wte"]["embedding"])

    def apply(params):
        pure = nnx.to_pure_dict(params)
        pure["blocks"] = source["blocks"]
        if "ln_f" in source:  # LayerNorm's gains (a parameter-free RMSNorm has none)
            pure["ln_f"] = source["ln_f"]
        if "wpe" in source:  # learned positions (rotary ones have no table)
            pure["wpe"]["embedding"] = source["wpe"]["embedding"][: m.block_size]
        pure["aux_embed"]["embedding"] = np.asarray(pure["aux_embed"]["embedding"]).copy()
        pure["aux_embed"]["embedding"][: len(vocab)] = words
        if "head" in pure:  # untied; tied, the output layer is the aux embedding set above
            pure["head"]["kernel"] = words.T.copy()
        nnx.replace_by_pure_dict(params, pure)
        return params

    return apply
