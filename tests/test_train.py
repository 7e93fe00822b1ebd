"""Training through the real CLI: loss goes down, resume replays the same losses, bad input is refused."""

import json
import math
import shutil
import os
import signal
import subprocess
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import JAX_LLM, cut_corpus, losses, run_cli, snapshot, tiny_args
from jax_llm import train
from jax_llm.cli import main
from jax_llm.metrics import read_metrics


def start_cli(args):
    return subprocess.Popen([*JAX_LLM, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_checkpoint(run_dir, step, proc, timeout=300):
    deadline = time.time() + timeout
    while not (run_dir / "checkpoints" / str(step)).is_dir():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, corpus):
    """One uninterrupted 40-step run, shared by the tests below."""
    out = tmp_path_factory.mktemp("ref") / "run"
    assert main(tiny_args(corpus, out, 40)) == 0
    return out


def test_run_directory_contents_and_loss_decreases(reference_run):
    names = {p.name for p in reference_run.iterdir()}
    assert {"config.json", "tokenizer.json", "tokens.bin", "metrics.jsonl", "loss.png", "checkpoints"} <= names
    assert sorted(int(p.name) for p in (reference_run / "checkpoints").iterdir() if p.name.isdigit()) == [20, 30, 40]
    cfg = json.loads((reference_run / "config.json").read_text())
    assert cfg["model"]["n_embd"] == 32 and cfg["model"]["vocab_size"] > 30
    curve = losses(reference_run)
    assert sorted(curve) == list(range(1, 41))
    assert sum(curve[s] for s in range(36, 41)) / 5 < sum(curve[s] for s in range(1, 6)) / 5 - 0.5
    vals = [r["val_loss"] for r in read_metrics(reference_run / "metrics.jsonl") if "val_loss" in r]
    assert len(vals) == 4 and vals[-1] < vals[0]


def test_sigkill_then_resume_replays_the_same_losses(tmp_path, corpus, reference_run):
    out = tmp_path / "run"
    proc = start_cli(tiny_args(corpus, out, 40))
    wait_for_checkpoint(out, 20, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert run_cli(tiny_args(corpus, out, 40) + ["--resume"]).returncode == 0
    resumed, reference = losses(out), losses(reference_run)
    assert sorted(resumed) == sorted(reference)
    for step in reference:
        assert resumed[step] == pytest.approx(reference[step], rel=1e-5, abs=1e-6), step


@pytest.mark.parametrize("sig, at_step, extra, stop", [
    ("INT", 20, [], 20),  # on a checkpoint step
    ("INT", 13, [], 18),  # between checkpoints: the stop waits for the end of the call (steps 11-18)
    ("INT", 13, ["steps_per_call=1"], 13),
    ("TERM", 17, [], 18),
], ids=["on-a-checkpoint-step", "between-checkpoints", "one-step-per-call", "sigterm"])
def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(tmp_path, corpus, reference_run, sig, at_step, extra, stop):
    """The signal is delivered at a chosen step (fault hook), so the race is forced, not hoped for."""
    out = tmp_path / "run"
    r = run_cli(tiny_args(corpus, out, 40, *extra), env={**os.environ, "JAX_LLM_FAULT": f"{sig}@step:{at_step}"})
    assert r.returncode == 130, r.stderr
    assert "Traceback" not in r.stderr
    steps = sorted(int(p.name) for p in (out / "checkpoints").iterdir() if p.name.isdigit())
    assert steps[-1] == stop
    assert max(losses(out)) == stop  # the checkpoint is the last step trained
    assert run_cli(tiny_args(corpus, out, 40, *extra) + ["--resume"]).returncode == 0
    resumed, reference = losses(out), losses(reference_run)
    assert sorted(resumed) == sorted(reference)
    for step in reference:
        assert resumed[step] == pytest.approx(reference[step], rel=1e-5, abs=1e-6), step


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, corpus):
    out = tmp_path / "run"
    assert main(tiny_args(corpus, out, 10)) == 0
    before = sorted(p.name for p in (out / "checkpoints").iterdir())
    r = run_cli(tiny_args(corpus, out, 30, "learning_rate=1e30", "min_lr=0") + ["--resume"])
    assert r.returncode != 0
    assert "loss became" in r.stderr and "Traceback" not in r.stderr
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == before


def write(tmp_path, name, content):
    p = tmp_path / name
    p.write_bytes(content)
    return p


@pytest.mark.parametrize("case, expected", [
    ("missing", "no such file"), ("directory", "is a directory"), ("empty", "file is empty"),
    ("binary", "binary"), ("latin1", "not valid UTF-8"), ("short", "fewer than one block"),
    ("preset", "unknown preset"), ("key", "unknown config key"), ("heads", "divisible by n_head"),
    ("block", "block_size must be >= 1"), ("lr", "learning_rate must be > 0"), ("badvalue", "is not a int"),
])
def test_bad_input_is_one_line_and_keeps_checkpoints(tmp_path, corpus, reference_run, capsys, case, expected):
    text = corpus
    if case in ("missing", "directory", "empty", "binary", "latin1", "short"):
        text = {"missing": tmp_path / "nope.txt", "directory": tmp_path,
                "empty": write(tmp_path, "e.txt", b""), "binary": write(tmp_path, "b.bin", bytes(range(256)) * 4),
                "latin1": write(tmp_path, "l.txt", "na\xefve caf\xe9\n".encode("latin-1") * 10),
                "short": write(tmp_path, "s.txt", b"too short\n" * 3)}[case]
    args = tiny_args(text, tmp_path / "new", 5)
    args += {"preset": ["--preset", "huge"], "key": ["--set", "n_layers=3"], "heads": ["--set", "n_head=3"],
             "block": ["--set", "block_size=0"], "lr": ["--set", "learning_rate=-1"],
             "badvalue": ["--set", "n_layer=two"]}.get(case, [])
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and expected in err, err
    # an existing run is never touched by a refused command
    ckpts = sorted(p.name for p in (reference_run / "checkpoints").iterdir())
    args = tiny_args(text, reference_run, 5) + args[len(tiny_args(text, tmp_path / "new", 5)):]
    assert main(args) == 2
    assert sorted(p.name for p in (reference_run / "checkpoints").iterdir()) == ckpts


def test_fresh_run_over_existing_checkpoints_is_refused(reference_run, corpus, capsys):
    assert main(tiny_args(corpus, reference_run, 5)) == 2
    assert "already holds checkpoints" in capsys.readouterr().err


def test_cli_error_has_no_traceback(tmp_path):
    r = run_cli(["train", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "o")])
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "no such file" in r.stderr


def test_generate_from_run_directory(reference_run):
    r = run_cli(["generate", str(reference_run), "--prompt", "ROMEO:", "--max-new-tokens", "30", "--seed", "1"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ROMEO:") and len(r.stdout.rstrip("\n")) >= len("ROMEO:") + 10
    bad = run_cli(["generate", str(reference_run), "--top-p", "0"])
    assert bad.returncode == 2 and "top-p" in bad.stderr


@pytest.mark.parametrize("args, setting", [
    (["--set", "n_embd=64"], "n_embd"), (["--set", "block_size=16"], "block_size"),
    (["--tokenizer", "bpe"], "tokenizer"), (["--set", "val_fraction=0.2"], "val_fraction"),
])
def test_resume_refuses_settings_that_cannot_continue_the_run(reference_run, corpus, capsys, args, setting):
    before = snapshot(reference_run)
    assert main(tiny_args(corpus, reference_run, 40) + args + ["--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{setting}=" in err, err
    assert snapshot(reference_run) == before


def test_resume_on_another_text_is_refused(reference_run, tmp_path, data_dir, capsys):
    other = cut_corpus(data_dir, tmp_path / "other.txt", 50_000)
    before = snapshot(reference_run)
    assert main(tiny_args(other, reference_run, 40) + ["--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "trained on" in err, err
    assert snapshot(reference_run) == before


def test_resume_accepts_a_new_learning_rate_and_more_steps(reference_run, corpus, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(reference_run, run)
    assert main(tiny_args(corpus, run, 45, "learning_rate=5e-4", "eval_interval=5") + ["--resume"]) == 0
    assert "stretches the cosine" in capsys.readouterr().err  # max_steps 40 -> 45 moves the schedule: said
    assert sorted(losses(run)) == list(range(1, 46))
    assert json.loads((run / "config.json").read_text())["train"]["learning_rate"] == 5e-4


def test_several_steps_per_call_log_the_losses_of_one_step_per_call(tmp_path, corpus):
    """With grad accumulation and 2 devices; a call of 8 steps is shortened at the evals and checkpoints."""
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    curves = {}
    for k in (1, 8):
        out = tmp_path / f"k{k}"
        r = run_cli(tiny_args(corpus, out, 20, "grad_accum=2", f"steps_per_call={k}"), env=env)
        assert r.returncode == 0 and "2 device(s)" in r.stdout, r.stderr
        curves[k] = losses(out)
        assert [int(p.name) for p in sorted((out / "checkpoints").iterdir())] == [10, 20]
    assert sorted(curves[1]) == sorted(curves[8]) == list(range(1, 21))
    for step in curves[1]:
        assert curves[8][step] == pytest.approx(curves[1][step], rel=1e-5, abs=1e-6), step


def test_bits_per_byte_in_metrics_are_the_loss_over_the_bytes_of_the_text(tmp_path, data_dir, capsys):
    """Japanese with BPE (several bytes a token): train rows, periodic val rows and the whole-split row of
    metrics.jsonl give loss x tokens / bytes / ln 2 of their split, as tokens.json counts them."""
    text = tmp_path / "ja.txt"
    text.write_text((data_dir / "aozora_sample.txt").read_bytes()[:40000].decode("utf-8", "ignore"), encoding="utf-8")
    out = tmp_path / "run"
    assert main(tiny_args(text, out, 20) + ["--tokenizer", "bpe", "--vocab-size", "400"]) == 0  # the last flag counts
    printed = capsys.readouterr().out
    meta = json.loads((out / "tokens.json").read_text())
    per_byte = {"train": meta["train_tokens"] / meta["train_bytes"], "val": meta["val_tokens"] / meta["val_bytes"]}
    assert per_byte["val"] < 1 / 1.5  # the check below would also pass with bytes = tokens
    rows = read_metrics(out / "metrics.jsonl")
    kinds = {"loss": ("bpb", "train"), "val_loss": ("val_bpb", "val"), "full_val_loss": ("full_val_bpb", "val")}
    for loss_key, (bpb_key, split) in kinds.items():
        found = [r for r in rows if loss_key in r]
        assert found, loss_key
        for r in found:
            assert r[bpb_key] == pytest.approx(r[loss_key] * per_byte[split] / math.log(2), rel=1e-12)
    full = next(r for r in rows if "full_val_loss" in r)
    assert full["step"] == 20
    assert f"val loss over the whole val split: {full['full_val_loss']:.4f} nats/token, " \
           f"{full['full_val_bpb']:.4f} bits per byte" in printed


def test_the_aozora_cpu_preset_trains(tmp_path, data_dir):
    """The CPU reference run's preset, two steps on 100 KB of its text (the 30-minute run is in the docs)."""
    text = tmp_path / "ja.txt"
    text.write_text((data_dir / "aozora_sample.txt").read_bytes()[:100_000].decode("utf-8", "ignore"), encoding="utf-8")
    out = tmp_path / "run"
    args = ["train", str(text), "--out", str(out), "--preset", "aozora-cpu", "--max-steps", "2", "--quiet",
            "--set", "eval_batches=1", "--set", "sample_tokens=0"]
    assert main(args) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["data"]["tokenizer"], cfg["model"]["n_layer"], cfg["model"]["block_size"]) == ("bpe", 4, 128)
    assert any("full_val_bpb" in r for r in read_metrics(out / "metrics.jsonl"))


def test_label_smoothing_mixes_the_target_with_the_mean_over_outputs():
    logits = jnp.asarray(np.random.default_rng(0).normal(size=(2, 3, 5)), jnp.float32)
    targets = jnp.asarray([[1, 4, -1], [0, 2, 3]])
    got, n = train.cross_entropy(logits, targets, smoothing=0.3)
    logp = np.asarray(jax.nn.log_softmax(logits))
    want = -sum(0.7 * logp[b, t, targets[b, t]] + 0.3 * logp[b, t].mean()
                for b in range(2) for t in range(3) if targets[b, t] >= 0)
    assert int(n) == 5 and float(got) == pytest.approx(want, rel=1e-5)
