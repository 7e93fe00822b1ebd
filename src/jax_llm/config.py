"""Run configuration: three plain dataclasses, named presets, `--set key=value` overrides, JSON on disk.

Every key name is unique across the three dataclasses, so `--set n_layer=6` needs no prefix.
"""

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from jax_llm.errors import UserError


@dataclass(frozen=True)  # hashable and unchangeable: the model's graph definition holds it as a static
class ModelConfig:
    vocab_size: int = 0  # input vocabulary; filled from the tokenizer
    out_vocab_size: int = 0  # output vocabulary; 0 means the same as the input one
    aux_vocab_size: int = 0  # optional second input stream (e.g. previous confirmed word); 0 = none
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 64
    dropout: float = 0.0
    aux_dropout: float = 0.0  # in training, the share of aux inputs (previous words) replaced by id 0 (<unk>)
    # inputs shaped (B, T, 1 + ahead): each position also reads the next `ahead` inputs (the input method's
    # later codes), each offset with its own embedding; the last input id means "not typed yet"
    ahead: int = 0
    bias: bool = False
    gelu_approximate: bool = False  # tanh GELU (GPT-2's gelu_new, for imported GPT-2 weights); default exact erf
    # the family's components (defaults: the modern family; `--set arch=gpt2` sets GPT-2's, see FAMILIES)
    rope: bool = True  # rotary positions; else learned ones (wpe)
    rms_norm: bool = True  # parameter-free RMSNorm, also right after the embedding; else LayerNorm
    qk_norm: bool = True  # RMSNorm of queries and keys (after rotation)
    relu2: bool = True  # ReLU² MLP; else GELU
    logit_softcap: float = 15.0  # logits = cap * tanh(logits / cap); 0 = none
    tie_embeddings: bool = False  # output layer = input embedding (same vocab) or aux embedding (input method)


@dataclass
class TrainConfig:
    batch_size: int = 12  # per device, per micro-step
    grad_accum: int = 1
    max_steps: int = 2000
    steps_per_call: int = 8  # steps run inside one compiled call (a scan): XLA:CPU's per-call cost is paid once
    learning_rate: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int = 100
    lr_decay_steps: int = 0  # 0 means max_steps
    beta1: float = 0.9
    beta2: float = 0.99
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    optimizer: str = "muon"  # muon (Muon for the blocks' matrices, AdamW at learning_rate for the rest) | adamw
    muon_lr: float = 0.02  # Muon's peak learning rate (its own scale), on the same schedule
    muon_ns_steps: int = 3  # Newton-Schulz iterations per Muon step (optax's default is 5; docs/performance.md)
    label_smoothing: float = 0.0  # share of the target's probability spread evenly over the scored outputs
    eval_interval: int = 250
    eval_batches: int = 20  # batches per periodic val estimate; the final eval covers the whole split
    log_interval: int = 10
    ckpt_interval: int = 500
    keep_checkpoints: int = 3
    seed: int = 1337
    precision: str = "fp32"  # fp32 | bf16 (bf16 compute, fp32 master weights)
    fsdp: bool = False  # shard parameters and optimizer state over the data axis
    sample_tokens: int = 200  # length of the sample printed at the end; 0 = none


@dataclass
class DataConfig:
    tokenizer: str = "bpe"  # bpe | char | path to a tokenizer.json
    bpe_vocab_size: int = 8192  # for a trained BPE tokenizer
    val_fraction: float = 0.1


# A model family is a set of component values; `--set arch=NAME` sets them all.
FAMILIES: dict[str, dict] = {
    "modern": dict(rope=True, rms_norm=True, qk_norm=True, relu2=True, logit_softcap=15.0, tie_embeddings=False),
    "gpt2": dict(rope=False, rms_norm=False, qk_norm=False, relu2=False, logit_softcap=0.0, tie_embeddings=True),
}
# What a config.json written before a key existed meant by leaving it out: such runs resume as they were.
LEGACY = {**FAMILIES["gpt2"], "optimizer": "adamw"}


def family_of(m: "ModelConfig") -> str | None:
    return next((name for name, keys in FAMILIES.items() if all(getattr(m, k) == v for k, v in keys.items())), None)


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        model, train = dict(d["model"]), dict(d["train"])
        for section, fields in ((model, ModelConfig), (train, TrainConfig)):
            names = {f.name for f in dataclasses.fields(fields)}
            section.update({k: v for k, v in LEGACY.items() if k in names and k not in section})
        return cls(ModelConfig(**model), TrainConfig(**train), DataConfig(**d["data"]))

    @classmethod
    def load(cls, path: Path) -> "RunConfig":
        return cls.from_dict(json.loads(Path(path).read_text()))

    def save(self, path: Path) -> None:
        Path(path).write_text(self.to_json() + "\n")

    def get(self, key: str):
        return getattr(self._section_of(key), key)

    def differences(self, other: "RunConfig") -> list[tuple[str, object, object]]:
        """(key, value here, value in `other`) for every key whose values differ."""
        return [(f.name, getattr(a, f.name), getattr(b, f.name))
                for a, b in zip(self._sections(), other._sections())
                for f in dataclasses.fields(a) if getattr(a, f.name) != getattr(b, f.name)]

    def _sections(self):
        return self.model, self.train, self.data

    def _section_of(self, key: str):
        for section in self._sections():
            if key in {f.name for f in dataclasses.fields(section)}:
                return section
        raise UserError(f"unknown config key '{key}' (see `jax-llm presets` for the keys)")

    def set(self, key: str, value) -> None:
        """Set one key in whichever section holds it, converting a string to the field's type. `arch`
        names a model family (FAMILIES) and sets its components."""
        if key == "arch":
            if value not in FAMILIES:
                raise UserError(f"unknown arch {value!r} (choose from: {', '.join(FAMILIES)})")
            for k, v in FAMILIES[value].items():
                self.set(k, v)
            return
        section = self._section_of(key)
        value = _convert(key, value, type(getattr(section, key))) if isinstance(value, str) else value
        if section is self.model:
            self.model = dataclasses.replace(self.model, **{key: value})
        else:
            setattr(section, key, value)

    def validate(self) -> None:
        m, t, d = self.model, self.train, self.data
        checks = [
            (m.n_layer >= 1, "n_layer must be >= 1"),
            (m.n_head >= 1 and m.n_embd >= 1, "n_head and n_embd must be >= 1"),
            (m.n_embd % m.n_head == 0, f"n_embd ({m.n_embd}) must be divisible by n_head ({m.n_head})"),
            (m.block_size >= 1, f"block_size must be >= 1 (got {m.block_size})"),
            (0.0 <= m.dropout < 1.0, f"dropout must be in [0, 1) (got {m.dropout})"),
            (0.0 <= m.aux_dropout <= 1.0, f"aux_dropout must be in [0, 1] (got {m.aux_dropout})"),
            (0.0 <= t.label_smoothing < 1.0, f"label_smoothing must be in [0, 1) (got {t.label_smoothing})"),
            (t.batch_size >= 1 and t.grad_accum >= 1, "batch_size and grad_accum must be >= 1"),
            (t.max_steps >= 1, f"max_steps must be >= 1 (got {t.max_steps})"),
            (t.steps_per_call >= 1, f"steps_per_call must be >= 1 (got {t.steps_per_call})"),
            (t.learning_rate > 0, f"learning_rate must be > 0 (got {t.learning_rate})"),
            (0 <= t.min_lr <= t.learning_rate, "min_lr must be in [0, learning_rate]"),
            (t.warmup_steps >= 0 and t.lr_decay_steps >= 0, "warmup_steps and lr_decay_steps must be >= 0"),
            (0 <= t.beta1 < 1 and 0 <= t.beta2 < 1, "beta1 and beta2 must be in [0, 1)"),
            (t.weight_decay >= 0 and t.grad_clip >= 0, "weight_decay and grad_clip must be >= 0"),
            (min(t.eval_interval, t.eval_batches, t.log_interval, t.ckpt_interval, t.keep_checkpoints) >= 1,
             "eval_interval, eval_batches, log_interval, ckpt_interval and keep_checkpoints must be >= 1"),
            (t.precision in ("fp32", "bf16"), f"precision must be fp32 or bf16 (got {t.precision!r})"),
            (t.optimizer in ("adamw", "muon"), f"optimizer must be adamw or muon (got {t.optimizer!r})"),
            (t.muon_lr > 0 and t.muon_ns_steps >= 1, "muon_lr must be > 0 and muon_ns_steps >= 1"),
            (m.ahead >= 0, f"ahead must be >= 0 (got {m.ahead})"),
            (m.logit_softcap >= 0, f"logit_softcap must be >= 0 (got {m.logit_softcap})"),
            (not m.rope or (m.n_embd // m.n_head) % 2 == 0, "rotary positions need an even head size (n_embd / n_head)"),
            (0.0 < d.val_fraction < 1.0, f"val_fraction must be in (0, 1) (got {d.val_fraction})"),
            (d.bpe_vocab_size >= 257 or d.tokenizer != "bpe", "vocab_size must be >= 257 for byte-level BPE"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(message)


def _convert(key: str, text: str, typ: type):
    try:
        if typ is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        return typ(text)
    except ValueError:
        raise UserError(f"bad value for {key}: {text!r} is not a {typ.__name__}") from None


# nanoGPT's presets, as plain overrides of the defaults above.
PRESETS: dict[str, dict] = {
    # Recognisable Shakespeare on 2 CPU cores in a few minutes.
    "tiny": dict(tokenizer="char", n_layer=3, n_head=4, n_embd=128, block_size=64, batch_size=16,
                 max_steps=1000, warmup_steps=50, eval_interval=200),
    # nanoGPT's CPU "baby GPT" for shakespeare_char (README: "I only get 1.88 val loss").
    "baby": dict(tokenizer="char", n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12,
                 dropout=0.0, bias=False, learning_rate=1e-3, min_lr=1e-4, beta2=0.99, weight_decay=0.1,
                 warmup_steps=100, max_steps=2000, lr_decay_steps=2000, grad_clip=1.0, eval_interval=250),
    # Japanese on 2 CPU cores in about 30 minutes: `aozora_sample.txt`, BPE 8192 (chosen by val bits per byte
    # in short trials, docs/training.md); 12000 steps of 2048 tokens is ~7 passes over the train split; the
    # rates decay to zero, weight decay 0.03 (1.5541 bits per byte against 1.5643 at 0.1 and 1.5741 to a tenth).
    "aozora-cpu": dict(tokenizer="bpe", bpe_vocab_size=8192, n_layer=4, n_head=4, n_embd=128, block_size=128,
                       batch_size=16, dropout=0.0, learning_rate=2e-3, min_lr=0.0, warmup_steps=200, max_steps=12000,
                       weight_decay=0.03,
                       eval_interval=1000, ckpt_interval=2000, sample_tokens=300),
    # nanoGPT's config/train_shakespeare_char.py (one A100: val 1.4697 in about 3 minutes).
    "shakespeare-char": dict(tokenizer="char", n_layer=6, n_head=6, n_embd=384, block_size=256, batch_size=64,
                             dropout=0.2, learning_rate=1e-3, min_lr=1e-4, beta2=0.99, warmup_steps=100,
                             max_steps=5000, lr_decay_steps=5000, eval_interval=250),
    # The reference run's size: about 80M parameters with a 32k BPE vocabulary; for an accelerator, where
    # Muon's Newton-Schulz steps cost ~4% of a step's FLOPs (docs/gpu.md).
    "gpt-80m": dict(tokenizer="bpe", bpe_vocab_size=32000, n_layer=12, n_head=9, n_embd=576, block_size=1024,
                    batch_size=32, optimizer="muon", muon_ns_steps=5, learning_rate=6e-4, min_lr=6e-5, beta2=0.95, warmup_steps=500,
                    max_steps=5000, dropout=0.0, precision="bf16", eval_interval=500, ckpt_interval=1000),
    # The input-method Transformer (`jax-llm ime train`): codes in, words out; small enough for a CPU. The
    # modern blocks; the output layer stays tied to the previous-word embedding (22k words x n_embd fewer
    # parameters) and uncapped: its candidate layer scores a code's few hundred words, linearly in their rows.
    "ime-small": dict(n_layer=2, n_head=4, n_embd=128, block_size=32, batch_size=32, dropout=0.1,
                      learning_rate=2e-3, min_lr=2e-4, warmup_steps=100, max_steps=2000, eval_interval=250,
                      weight_decay=0.1, sample_tokens=0, tie_embeddings=True, logit_softcap=0.0),
    "ime-base": dict(n_layer=4, n_head=4, n_embd=256, block_size=64, batch_size=32, dropout=0.1,
                     learning_rate=1e-3, min_lr=1e-4, warmup_steps=200, max_steps=4000, eval_interval=500,
                     weight_decay=0.1, sample_tokens=0, tie_embeddings=True, logit_softcap=0.0),
    # GPT-2 small, GPT-2's family (what its checkpoints import into).
    "gpt2-124m": dict(arch="gpt2", tokenizer="bpe", bpe_vocab_size=50257, n_layer=12, n_head=12, n_embd=768, block_size=1024,
                      batch_size=12, grad_accum=5, learning_rate=6e-4, min_lr=6e-5, beta2=0.95, warmup_steps=2000,
                      max_steps=600000, weight_decay=0.1, precision="bf16", eval_interval=2000, ckpt_interval=2000),
}


def make_config(preset: str | None, overrides: list[str] = ()) -> RunConfig:
    """Defaults, then the preset, then each `key=value` override (not validated: `validate` is)."""
    cfg = RunConfig()
    if preset is not None:
        if preset not in PRESETS:
            raise UserError(f"unknown preset '{preset}' (choose from: {', '.join(PRESETS)})")
        for key, value in PRESETS[preset].items():
            cfg.set(key, value)
    apply_overrides(cfg, overrides)
    return cfg


def apply_overrides(cfg: RunConfig, overrides) -> None:
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--set expects key=value, got {item!r}")
        cfg.set(key.strip(), value.strip())
