"""A damaged model directory, n-gram or Transformer, given to `jax-llm ime convert|type|serve|eval`: one line on
stderr naming the damaged file and what is wrong, exit status 2, no traceback, and the directory left as it was.

Each case runs the real CLI in a subprocess on a copy of a model trained by the CLI (conftest.py), with one file
damaged. Every damage is tried with one command, and every command with one damage of each model kind; the
commands share one loader per file kind (`jax_llm.ime.modelfiles`), which the in-process tests at the end probe
with finer damages.
"""

import shutil
import subprocess
from functools import partial
from pathlib import Path

import pytest

from helpers import JAX_LLM
from jax_llm.errors import UserError

COMMANDS = ("convert", "type", "serve", "eval")


def latest_checkpoint(model: Path) -> Path:
    return max((p for p in (model / "checkpoints").iterdir() if p.name.isdigit()), key=lambda p: int(p.name))


def truncate(path: Path, data_only: bool = False) -> None:
    """Keep the first half of the file (a write cut short); for a directory, of each file in it (with
    `data_only`, of the array data only, in the `d/` folders of Orbax's OCDBT store: its metadata stays whole)."""
    for f in [path] if path.is_file() else sorted(path.rglob("*")):
        if f.is_file() and (f.parent.name == "d" or not data_only):
            f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def rewrite(text: str):
    return lambda path: path.write_text(text)


def remove(path: Path) -> None:
    shutil.rmtree(path) if path.is_dir() else path.unlink()


def empty_dir(path: Path) -> None:
    for p in path.iterdir():
        remove(p)


# name: (model kind, the file damaged (relative path, or a function of the model directory), damage)
DAMAGES = {
    "model.json missing": ("ngram", "model.json", remove),
    "model.json not JSON": ("ngram", "model.json", rewrite('{"kind": "kn",')),
    "model.json a list": ("ngram", "model.json", rewrite("[]")),
    "model.json without its orders": ("ngram", "model.json", rewrite('{"kind": "kn"}')),
    "vocab.json missing": ("ngram", "vocab.json", remove),
    "vocab.json not JSON": ("ngram", "vocab.json", rewrite("x")),
    "vocab.json of the wrong shape": ("ngram", "vocab.json", rewrite('{"words": 3, "counts": []}')),
    "arrays.npz missing": ("ngram", "arrays.npz", remove),
    "arrays.npz truncated": ("ngram", "arrays.npz", truncate),
    "transformer model.json missing": ("transformer", "model.json", remove),
    "transformer model.json not JSON": ("transformer", "model.json", rewrite("{")),
    "transformer model.json without 'confirmed'": ("transformer", "model.json", rewrite('{"kind": "transformer"}')),
    "transformer vocab.json not JSON": ("transformer", "vocab.json", rewrite("")),
    "transformer vocab.json a list": ("transformer", "vocab.json", rewrite("[]")),
    "config.json missing": ("transformer", "config.json", remove),
    "config.json not JSON": ("transformer", "config.json", rewrite('{"model": ')),
    "checkpoints/ missing": ("transformer", "checkpoints", remove),
    "checkpoints/ emptied": ("transformer", "checkpoints", empty_dir),
    "latest checkpoint truncated": ("transformer", latest_checkpoint, truncate),
    "latest checkpoint's arrays truncated": ("transformer", latest_checkpoint, partial(truncate, data_only=True)),
}
ONE_COMMAND = {"ngram": "vocab.json not JSON", "transformer": "latest checkpoint's arrays truncated"}


def cases():
    """Every damage with one command (taken in turn), then the other commands with one damage per kind."""
    out = [(name, COMMANDS[i % len(COMMANDS)]) for i, name in enumerate(DAMAGES)]
    return out + [(name, c) for name in ONE_COMMAND.values() for c in COMMANDS if (name, c) not in out]


def tree(root: Path) -> dict[str, bytes | None]:
    """Every path below `root` with its bytes (None for a directory)."""
    return {str(p.relative_to(root)): None if p.is_dir() else p.read_bytes() for p in sorted(root.rglob("*"))}


def run_command(command: str, model: Path, corpus: Path) -> subprocess.CompletedProcess:
    args = {"convert": ["convert", "fitw", "--model", str(model)],
            "type": ["type", "--model", str(model)],
            "serve": ["serve", "--model", str(model), "--port", "0"],
            "eval": ["eval", "--dataset", str(corpus), "--model", str(model)]}[command]
    return subprocess.run([*JAX_LLM, "ime", *args], input="fi\n" if command == "type" else "", capture_output=True,
                          text=True, timeout=180)


@pytest.fixture(scope="module")
def models(ime_ui_model, ime_transformer_model):
    return {"ngram": ime_ui_model, "transformer": ime_transformer_model}


@pytest.mark.parametrize(("damage", "command"), cases(), ids=[f"{d}-{c}" for d, c in cases()])
def test_a_damaged_model_is_refused_with_one_line(models, tmp_path, damage, command):
    kind, target, spoil = DAMAGES[damage]
    model = tmp_path / "model"
    shutil.copytree(models[kind], model)
    damaged = target(model) if callable(target) else model / target
    spoil(damaged)
    before = tree(model)

    r = run_command(command, model, models["ngram"].parent / "corpus.txt")

    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 2, r.stderr
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith("jax-llm: error: ") and f"{damaged}:" in lines[0], lines[0]
    assert r.stdout == "", r.stdout  # serve never said it was serving
    assert tree(model) == before


# ---------------------------------------------------------------- the loaders in-process: finer damages


NGRAM_DAMAGES = [  # (file, contents, what the one line says, the file it names if not that one)
    ("model.json", '{"kind": "lstm"}', "unknown model kind 'lstm'", None),
    ("model.json", '{"kind": "backoff", "order": "6"}', "'order' should be an integer, got a string", None),
    ("model.json", '{"kind": "backoff", "order": 0}', "orders must be 1 or more", None),
    ("model.json", '{"kind": "backoff", "order": 2}', "no array 'keys1'", "arrays.npz"),  # a kn model's arrays
    ("model.json", b"\xff\xfe\x00", "not valid JSON", None),
    ("vocab.json", "", "empty file", None),
    ("vocab.json", '{"words": ["the"]}', "no 'counts' key", None),
    ("vocab.json", '{"words": ["the", "a"], "counts": [1]}', "2 words but 1 counts", None),
    ("vocab.json", '{"words": ["the"], "counts": ["1"]}', "'counts' integers", None),
    ("vocab.json", '{"words": ["The"], "counts": [1]}', "not a code: 'Th'", None),
    ("arrays.npz", "not an archive", "not a valid .npz archive", None),
]


@pytest.mark.parametrize(("name", "contents", "says", "named"), NGRAM_DAMAGES)
def test_ngram_loader_names_the_file(ime_ui_model, tmp_path, name, contents, says, named):
    from jax_llm.ime.predictor import load_predictor

    model = tmp_path / "model"
    shutil.copytree(ime_ui_model, model)
    (model / name).write_bytes(contents if isinstance(contents, bytes) else contents.encode())
    with pytest.raises(UserError) as e:
        load_predictor(model)
    assert str(e.value).startswith(f"{model / (named or name)}: ") and says in str(e.value), e.value
    assert "\n" not in str(e.value)


def test_kn_settings_are_checked(ime_ui_model, tmp_path):
    import json

    from jax_llm.ime.predictor import load_predictor

    model = tmp_path / "model"
    shutil.copytree(ime_ui_model, model)
    meta = json.loads((model / "model.json").read_text())
    for config, says in [({**meta["config"], "code_order": "3"}, "config.'code_order' should be an integer"),
                         ({**meta["config"], "colour": 1}, "unknown setting 'config.colour'")]:
        (model / "model.json").write_text(json.dumps({**meta, "config": config}))
        with pytest.raises(UserError, match=says):
            load_predictor(model)
    (model / "model.json").write_text(json.dumps({**meta, "max_word_order": meta["max_word_order"] + 1}))
    with pytest.raises(UserError, match=f"{model / 'arrays.npz'}: no array 'words_"):
        load_predictor(model)


def test_transformer_vocabulary_must_fit_the_model(ime_transformer_model, tmp_path):
    from jax_llm.ime.predictor import load_predictor

    model = tmp_path / "model"
    shutil.copytree(ime_transformer_model, model)
    (model / "vocab.json").write_text('{"words": ["the", "a"], "counts": [2, 1]}')
    with pytest.raises(UserError, match=r"vocab\.json: 3 words \(with <unk>\), but the model in .*config\.json scores"):
        load_predictor(model)
