"""Reading an input-method model directory's files so that a damaged one is refused with one line that names
the file and what is wrong with it (a `UserError`), never a traceback, and nothing in the directory changes.

Each file kind is read in one place, shared by every command (`convert`, `type`, `serve`, `eval`):
model.json by `read_meta` here; vocab.json by `words.Vocab.load`; arrays.npz by `ngram.store.load`;
config.json and checkpoints/ (the Transformer's) by `transformer.predictor.TransformerPredictor`.
"""

import json
from pathlib import Path

from jax_llm.errors import UserError, one_line

META_FILE, VOCAB_FILE = "model.json", "vocab.json"  # an input-method model's own files

# model.json: the keys each kind of model needs, and their types
KINDS = {
    "backoff": {"order": int},
    "kn": {"max_code_order": int, "max_word_order": int, "config": dict},
    "transformer": {"confirmed": bool},
}
JSON_TYPES = {dict: "an object", list: "a list", str: "a string", bool: "true or false", int: "an integer",
              float: "a number", type(None): "null"}


def unreadable(path: Path, e: Exception, what: str) -> UserError:
    """The one line for a file that could not be read as `what` ("JSON", "a .npz archive", ...)."""
    if isinstance(e, FileNotFoundError):
        return UserError(f"{path}: no such file")
    if isinstance(e, json.JSONDecodeError):
        return UserError(f"{path}: not valid JSON ({e.msg}: line {e.lineno} column {e.colno})")
    if isinstance(e, OSError) and e.strerror:
        return UserError(f"{path}: cannot be read ({e.strerror})")
    return UserError(f"{path}: not {what} ({one_line(e)})")


def json_type(value) -> str:
    return JSON_TYPES.get(type(value), type(value).__name__)


def check_fields(path: Path, data: dict, fields: dict[str, type], required: bool = True, where: str = "") -> None:
    """Each key of `fields` in `data` (all of them, if `required`) holds a value of its type; `where` names
    the object inside the file ("config.")."""
    for key, want in fields.items():
        if key not in data:
            if required:
                raise UserError(f"{path}: no {where}{key!r} key")
            continue
        if not _is_a(data[key], want):
            raise UserError(f"{path}: {where}{key!r} should be {JSON_TYPES[want]}, got {json_type(data[key])}")


def _is_a(value, want: type) -> bool:
    if isinstance(value, bool) and want is not bool:  # JSON's true is not a number
        return False
    return isinstance(value, (int, float) if want is float else want)


def read_json(path: Path, fields: dict[str, type]) -> dict:
    """A JSON object with (at least) the keys of `fields`, of their types."""
    path = Path(path)
    try:
        text = path.read_bytes()
        data = json.loads(text) if text else None
    except (OSError, ValueError, RecursionError) as e:  # ValueError: not JSON, or not UTF-8
        raise unreadable(path, e, "valid JSON") from None
    if not text:
        raise UserError(f"{path}: empty file")
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object, got {json_type(data)}")
    check_fields(path, data, fields)
    return data


def read_meta(model_dir: Path) -> dict:
    """model.json: the model's kind and the settings that kind needs."""
    path = Path(model_dir) / META_FILE
    meta = read_json(path, {"kind": str})
    if meta["kind"] not in KINDS:
        raise UserError(f"{path}: unknown model kind {meta['kind']!r} (one of: {', '.join(KINDS)})")
    check_fields(path, meta, KINDS[meta["kind"]])
    return meta
