"""Fixtures for the input method as people use it: a real n-gram model trained by the CLI on a small corpus
that contains "first two character input method", and a real `jax-llm ime serve` process on a free port.
The user data directory ($XDG_DATA_HOME, the user dictionary's home) is a temporary folder for every test."""

import hashlib
import os
import re
import signal
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import JAX_LLM, PHRASE


def model_digest(model_dir: Path) -> str:
    """Hash of every file in the model directory (names and bytes)."""
    h = hashlib.sha256()
    for p in sorted(model_dir.rglob("*")):
        if p.is_file():
            h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="session", autouse=True)
def user_data_home(tmp_path_factory):
    """No test reads or writes the real ~/.local/share: $XDG_DATA_HOME (inherited by the commands the tests
    start) is a temporary folder for the whole session; tests that learn give their own `--user-dict`."""
    saved = os.environ.get("XDG_DATA_HOME")
    os.environ["XDG_DATA_HOME"] = str(tmp_path_factory.mktemp("xdg_data_home"))
    yield Path(os.environ["XDG_DATA_HOME"])
    if saved is None:
        del os.environ["XDG_DATA_HOME"]
    else:
        os.environ["XDG_DATA_HOME"] = saved


@pytest.fixture(scope="session")
def ime_ui_model(tmp_path_factory, data_dir) -> Path:
    """A `kn` model trained with `jax-llm ime train-ngram` on 100 KB of Shakespeare, with a sentence holding
    the phrase spliced in every 4 KB of the train part (the last 10% of the words is the test split)."""
    root = tmp_path_factory.mktemp("ime_ui")
    text = (data_dir / "tinyshakespeare.txt").read_text(encoding="utf-8")[:100_000]
    sentence = f"\nThe {PHRASE} types each word as its first two letters; a {PHRASE} is quick.\n"
    chunks = [text[i:i + 4000] + sentence for i in range(0, 80_000, 4000)]
    corpus = root / "corpus.txt"
    corpus.write_text("".join(chunks) + text[80_000:], encoding="utf-8")
    out = root / "model"
    subprocess.run([*JAX_LLM, "ime", "train-ngram", "--dataset", str(corpus), "--model", "kn", "--out", str(out)],
                   check=True, capture_output=True, text=True, timeout=300)
    return out


@pytest.fixture(scope="session")
def ime_predictor(ime_ui_model):
    """The same model loaded in this process: what the terminal and the page must show."""
    from jax_llm.ime.predictor import load_predictor

    return load_predictor(ime_ui_model)


class Server:
    """A `jax-llm ime serve` subprocess; `url` is read from the line it prints once listening."""

    def __init__(self, model: Path, log: Path, *extra: str):
        self.log = log
        self.proc = subprocess.Popen([*JAX_LLM, "ime", "serve", "--model", str(model), "--port", "0", *extra],
                                     stdout=subprocess.PIPE, stderr=log.open("wb"), text=True)
        first = []
        reader = threading.Thread(target=lambda: first.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(120)
        m = re.search(r"http://[^/\s]+:(\d+)/", first[0] if first else "")
        if not m:
            self.stop()
            raise AssertionError(f"server did not start: {first} {log.read_text()}")
        self.url, self.port = m.group(0).rstrip("/"), int(m.group(1))

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def serving(model: Path, log_dir: Path):
    """A server of `model` until the session ends, learning nothing (its answers stay the model's own);
    `model_unchanged()` says whether serving wrote to the model."""
    digest = model_digest(model)
    server = Server(model, log_dir / "stderr.log", "--no-learn")
    server.model_unchanged = lambda: model_digest(model) == digest
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ime_server(ime_ui_model, tmp_path_factory):
    """One server for the whole session (the model is loaded once; every test may use it)."""
    yield from serving(ime_ui_model, tmp_path_factory.mktemp("ime_server"))


@pytest.fixture(scope="session")
def ime_transformer_model(ime_ui_model) -> Path:
    """A small Transformer trained with `jax-llm ime train` on the same corpus: a few steps, since what it
    is for is serving, not accuracy."""
    out = ime_ui_model.parent / "transformer"
    subprocess.run([*JAX_LLM, "ime", "train", "--dataset", str(ime_ui_model.parent / "corpus.txt"), "--out", str(out),
                    "--max-steps", "20", "--block-size", "16", "--set", "n_layer=1", "--set", "n_embd=32",
                    "--set", "batch_size=8", "--quiet"], check=True, capture_output=True, text=True, timeout=600)
    return out


@pytest.fixture(scope="session")
def ime_transformer_server(ime_transformer_model, tmp_path_factory):
    yield from serving(ime_transformer_model, tmp_path_factory.mktemp("ime_transformer_server"))


@pytest.fixture(scope="session")
def ime_lookahead_model(ime_ui_model) -> Path:
    """As `ime_transformer_model`, trained with `--lookahead 1`: it ranks a word again once the next code
    is typed, so the input method may revise the word before."""
    out = ime_ui_model.parent / "lookahead"
    subprocess.run([*JAX_LLM, "ime", "train", "--dataset", str(ime_ui_model.parent / "corpus.txt"), "--out", str(out),
                    "--max-steps", "20", "--block-size", "16", "--set", "n_layer=1", "--set", "n_embd=32",
                    "--set", "batch_size=8", "--lookahead", "1", "--quiet"],
                   check=True, capture_output=True, text=True, timeout=600)
    return out


@pytest.fixture(scope="session")
def ime_lookahead_predictor(ime_lookahead_model):
    from jax_llm.ime.predictor import load_predictor

    return load_predictor(ime_lookahead_model)


@pytest.fixture(scope="session")
def ime_lookahead_server(ime_lookahead_model, tmp_path_factory):
    yield from serving(ime_lookahead_model, tmp_path_factory.mktemp("ime_lookahead_server"))


@dataclass
class Revisions:
    """Codes typed one after another, and what a lookahead-1 input method shows for them."""

    codes: list[str]
    shown: list[str]  # each word as first shown, online
    words: list[str]  # each word at the end: revised when the next code came
    revisions: list[tuple[int, str, str]]  # (i, old, new): word i-1 replaced when code i was complete

    @property
    def keys(self) -> str:
        return "".join(self.codes)


def delayed(predictor, codes: list[str]) -> Revisions:
    """The delayed decision computed from the predictor directly: word i is shown from the codes up to i,
    then ranked again with code i+1 as `ahead`, and replaced if its top candidate changed."""
    from jax_llm.ime.predictor import context_word, shown_word

    def top(i, words, ahead=()):
        context = [context_word(w, c) for w, c in zip(words[:i], codes)]
        return shown_word(codes[i], predictor.candidates(codes[i], context, 10, ahead=ahead))

    shown, words, revisions = [], [], []
    for i, code in enumerate(codes):
        if i and (new := top(i - 1, words, [code])) != words[-1]:
            revisions.append((i, words[-1], new))
            words[-1] = new
        shown.append(top(i, words))
        words.append(shown[-1])
    return Revisions(codes, shown, words, revisions)


@pytest.fixture(scope="session")
def revision_case(ime_lookahead_predictor, data_dir) -> Revisions:
    """The first 8 words of Shakespeare past the model's 100 KB (from word 0, 8, 16, ...) whose codes make
    the lookahead model revise a word, and leave another as it was: both are then asserted."""
    from jax_llm.ime.language.codes import normalize, word_code

    text = (data_dir / "tinyshakespeare.txt").read_text(encoding="utf-8")[100_000:102_000]
    codes = [word_code(w) for w in normalize(text)]
    for start in range(0, len(codes) - 8, 8):
        case = delayed(ime_lookahead_predictor, codes[start:start + 8])
        if 1 <= len(case.revisions) < 7:
            return case
    raise AssertionError("no code sequence in the text makes the lookahead model revise a word")


@pytest.fixture
def start_ime_server(ime_ui_model, tmp_path):
    """Starts further servers (`start_ime_server(*extra_args)`), stopped after the test."""
    started = []

    def start(*extra: str) -> Server:
        started.append(Server(ime_ui_model, tmp_path / f"stderr{len(started)}.log", *extra))
        return started[-1]

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def playwright_driver():
    """Playwright's driver, once for the session (a second one cannot start beside it)."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=30_000)  # a bound for a loaded 2-core CI machine, not a timing assertion
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright_driver):
    """Headless Chromium driven by Playwright, for the page's tests."""
    from webpage import launch_chromium

    b = launch_chromium(playwright_driver)
    yield b
    b.close()
