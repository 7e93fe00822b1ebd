"""A run directory: the name of every file a run writes, and the config a run starts or resumes with.

`generate`, `eval` and `--resume` need nothing but this directory. Its config is resolved once, before
anything is written: on a new run from the defaults, a preset and `--set`; on a resume from the saved
config.json and `--set`, where only settings that keep the model, its tokens and its data may differ.
"""

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path

from jax_llm.config import RunConfig, TrainConfig, apply_overrides, make_config
from jax_llm.errors import UserError

# What a resumed run may change. The rest would not restore into the saved checkpoint (model shapes),
# or would train on other tokens than the saved ones (tokenizer, split).
# everything but the model's shape and the optimizer (whose state the checkpoint holds)
CHANGEABLE_ON_RESUME = {f.name for f in dataclasses.fields(TrainConfig)} - {"optimizer"} | {"dropout", "aux_dropout"}


@dataclass(frozen=True)
class RunDir:
    path: Path

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))

    config = property(lambda self: self.path / "config.json")
    tokenizer = property(lambda self: self.path / "tokenizer.json")
    tokens = property(lambda self: self.path / "tokens.bin")  # the prepared corpus, memory-mapped
    tokens_meta = property(lambda self: self.path / "tokens.json")  # its source, tokenizer and dtype
    checkpoints = property(lambda self: self.path / "checkpoints")
    metrics = property(lambda self: self.path / "metrics.jsonl")
    loss_plot = property(lambda self: self.path / "loss.png")

    def has_checkpoints(self) -> bool:
        d = self.checkpoints
        return d.is_dir() and any(p.name.isdigit() for p in d.iterdir())

    def load_config(self) -> RunConfig:
        if not self.config.is_file():
            raise UserError(f"{self.config}: no such file (not a run directory)")
        try:
            return RunConfig.load(self.config)
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            raise UserError(f"{self.config}: not a valid run config ({type(e).__name__}: {e})") from None


def resolve_config(run: RunDir, resume: bool, preset: str | None, overrides: list[str],
                   derived: dict | None = None) -> RunConfig:
    """The run's config, validated; nothing is written.

    `derived` holds sizes that follow from the data (the input method's vocabularies); on a resume they
    must equal the saved ones. A refusal names the setting and leaves the directory as it was.
    """
    if run.path.exists() and not run.path.is_dir():
        raise UserError(f"{run.path}: exists and is not a directory")
    if not resume:
        if run.has_checkpoints():
            raise UserError(f"{run.path}: already holds checkpoints; pass --resume to continue it, "
                            f"or choose another --out")
        cfg = make_config(preset, overrides)
        for key, value in (derived or {}).items():
            cfg.set(key, value)
    else:
        if not run.config.is_file():
            raise UserError(f"{run.path}: nothing to resume (no config.json); drop --resume to start a new run")
        saved, cfg = run.load_config(), run.load_config()
        apply_overrides(cfg, overrides)
        for key, value in (derived or {}).items():
            if saved.get(key) != value:
                raise UserError(f"cannot resume {run.path}: it was trained with {key}={saved.get(key)}, "
                                f"this data gives {value}")
        for key, before, after in saved.differences(cfg):
            if key not in CHANGEABLE_ON_RESUME:
                raise UserError(f"cannot resume {run.path} with {key}={after}: it was trained with "
                                f"{key}={before} (start a new run to change it)")
            if key == "max_steps" and not cfg.train.lr_decay_steps:
                print(f"warning: max_steps {before} -> {after} also stretches the cosine learning-rate schedule, "
                      f"which follows max_steps (--set lr_decay_steps={before} keeps it)", file=sys.stderr)
    cfg.validate()
    return cfg
