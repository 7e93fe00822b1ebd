"""Faults during training, with real processes and real files: a signal at every phase, SIGKILL at five
moments, a damaged run directory, a full disk. Each fault is forced at a chosen point (`JAX_LLM_FAULT`),
and each run is compared with one uninterrupted run: the same losses, or a one-line refusal that leaves
the directory as it was. docs/reliability.md lists them."""

import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import JAX_LLM, losses, run_cli, snapshot, tiny_args

STEPS = 40


def checkpoints(run_dir):
    d = run_dir / "checkpoints"
    return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit()) if d.is_dir() else []


def assert_same_curve(run_dir, reference):
    got, want = losses(run_dir), losses(reference)
    assert sorted(got) == sorted(want)
    for step in want:
        assert got[step] == pytest.approx(want[step], rel=1e-5, abs=1e-6), step


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr[-3000:]
    return lines[0]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, corpus):
    """The uninterrupted run every fault is compared with (a sample at the end, so that phase exists)."""
    out = tmp_path_factory.mktemp("reference") / "run"
    r = run_cli(tiny_args(corpus, out, STEPS, "sample_tokens=20"))
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture(scope="module")
def stopped(tmp_path_factory, corpus):
    """A run stopped by Ctrl-C at step 20 (checkpoints 10 and 20), to be damaged and resumed."""
    out = tmp_path_factory.mktemp("stopped") / "run"
    r = run_cli(tiny_args(corpus, out, STEPS, "sample_tokens=20"), fault="INT@step:20")
    assert r.returncode == 130 and checkpoints(out) == [10, 20], r.stderr
    return out


def resume(corpus, out):
    return run_cli(tiny_args(corpus, out, STEPS, "sample_tokens=20") + ["--resume"])


# ------------------------------------------------------------------ Ctrl-C and SIGTERM at every phase

@pytest.mark.parametrize("sig, point, stop", [
    ("INT", "tokenizer", None), ("INT", "data", None),  # nothing trained yet: no checkpoint, a fresh run starts
    ("INT", "compile", 8),  # the first call compiles, then runs its 8 steps
    ("INT", "step:13", 18), ("INT", "eval:20", 20), ("INT", "save:20", 20), ("INT", "sample", STEPS),
    ("TERM", "data", None), ("TERM", "step:13", 18),  # SIGTERM (kill, SLURM, Docker) is Ctrl-C
])
def test_a_stop_at_any_phase_exits_130_in_one_line_and_the_run_continues(tmp_path, corpus, reference, sig, point,
                                                                         stop):
    out = tmp_path / "run"
    r = run_cli(tiny_args(corpus, out, STEPS, "sample_tokens=20"), fault=f"{sig}@{point}")
    assert r.returncode == 130
    assert one_line(r.stderr) == "jax-llm: interrupted"
    if stop is None:
        assert checkpoints(out) == []
        again = run_cli(tiny_args(corpus, out, STEPS, "sample_tokens=20"))  # a fresh run starts cleanly
    else:
        assert checkpoints(out)[-1] == stop and max(losses(out)) == stop
        if stop < STEPS:
            assert f"interrupted: saved a checkpoint at step {stop}" in r.stdout
        again = resume(corpus, out)
    assert again.returncode == 0, again.stderr
    assert "sample:" in again.stdout
    assert_same_curve(out, reference)


# ------------------------------------------------------------------ SIGKILL at five moments

@pytest.mark.parametrize("point", ["data", "compile", "step:13", "save:20", "eval:30"])
def test_sigkill_then_resume_continues_from_the_last_complete_checkpoint(tmp_path, corpus, reference, point):
    out = tmp_path / "run"
    r = run_cli(tiny_args(corpus, out, STEPS, "sample_tokens=20"), fault=f"KILL@{point}")
    assert r.returncode == -9
    if point == "save:20":  # killed while checkpoint 20 was being written: only its temporary directory is there
        assert checkpoints(out) == [10]
        assert any(p.name.startswith("20.") for p in (out / "checkpoints").iterdir())
    if (out / "config.json").exists():
        again = resume(corpus, out)
    else:  # killed before the run had a config: there is nothing to resume, a fresh run starts cleanly
        again = run_cli(tiny_args(corpus, out, STEPS, "sample_tokens=20"))
    assert again.returncode == 0, again.stderr
    assert_same_curve(out, reference)


# ------------------------------------------------------------------ a damaged run directory

def truncate_files(path: Path) -> None:
    for p in [path] if path.is_file() else path.rglob("*"):
        if p.is_file() and p.stat().st_size > 16:
            with open(p, "r+b") as f:
                f.truncate(p.stat().st_size // 2)


def delete_half(directory: Path) -> None:
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    for p in files[::2]:
        p.unlink()


@pytest.mark.parametrize("damage", ["truncated", "half-deleted"])
def test_a_damaged_latest_checkpoint_is_moved_aside_and_the_one_before_used(tmp_path, corpus, reference, stopped,
                                                                           damage):
    out = tmp_path / "run"
    shutil.copytree(stopped, out)
    (truncate_files if damage == "truncated" else delete_half)(out / "checkpoints" / "20")
    r = resume(corpus, out)
    assert r.returncode == 0, r.stderr
    assert "warning: checkpoint 20 cannot be read" in r.stderr and "20.damaged" in r.stderr
    assert (out / "checkpoints" / "20.damaged").is_dir()  # moved aside, never deleted
    assert_same_curve(out, reference)


def test_a_truncated_token_file_is_encoded_again_with_the_runs_tokenizer(tmp_path, corpus, reference, stopped):
    out = tmp_path / "run"
    shutil.copytree(stopped, out)
    truncate_files(out / "tokens.bin")
    r = resume(corpus, out)
    assert r.returncode == 0, r.stderr
    assert "tokens.bin is missing or damaged" in r.stderr
    assert_same_curve(out, reference)


def test_a_torn_last_line_of_metrics_is_left_out_with_a_warning(tmp_path, corpus, reference, stopped):
    out = tmp_path / "run"
    shutil.copytree(stopped, out)
    with open(out / "metrics.jsonl", "a") as f:
        f.write('{"step": 21, "lo')  # a process killed while writing a row
    r = resume(corpus, out)
    assert r.returncode == 0, r.stderr
    assert "metrics.jsonl: left out its torn last line" in r.stderr
    assert_same_curve(out, reference)


@pytest.mark.parametrize("name, damage", [
    ("tokenizer.json", "corrupt"), ("tokenizer.json", "missing"), ("config.json", "corrupt"),
    ("config.json", "missing"), ("config.json", "wrong shape"),
])
def test_a_damaged_run_file_is_refused_in_one_line_and_nothing_changes(tmp_path, corpus, stopped, name, damage):
    out = tmp_path / "run"
    shutil.copytree(stopped, out)
    path = out / name
    if damage == "missing":
        path.unlink()
    else:
        path.write_text('{"model": [1, 2]}' if damage == "wrong shape" else '{"model": {"n_layer": 2,')
    before = snapshot(out)
    r = resume(corpus, out)
    assert r.returncode == 2
    assert name in one_line(r.stderr)
    assert snapshot(out) == before


# ------------------------------------------------------------------ a full disk

def test_a_full_disk_is_one_line_and_the_previous_checkpoint_is_intact(tmp_path, corpus, reference):
    """The run directory on a small tmpfs of its own (a private mount namespace, as root): checkpoints 10
    and 20 fit, 30 does not. The directory is copied out before the namespace, and the tmpfs, go."""
    used = lambda files: sum(p.stat().st_blocks * 512 for p in files if p.is_file())  # noqa: E731 - as tmpfs counts
    one, rest = used((reference / "checkpoints" / "40").rglob("*")), used(reference.iterdir())
    size_kib = (rest + int(2.6 * one)) // 1024
    mnt, kept = tmp_path / "small", tmp_path / "kept"
    mnt.mkdir()
    cmd = " ".join([*JAX_LLM, *tiny_args(corpus, mnt / "run", STEPS, "sample_tokens=20")])
    script = (f"mount -t tmpfs -o size={size_kib}k tmpfs {mnt} && {{ {cmd} 2> {tmp_path}/err; echo $? > {tmp_path}/rc; "
              f"cp -r {mnt}/run {kept}; }}")
    done = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr  # the namespace and the mount worked
    assert (tmp_path / "rc").read_text().strip() == "2"
    line = one_line((tmp_path / "err").read_text())
    assert "no space left on the device for checkpoint 30" in line and "checkpoint 20 is intact" in line
    assert checkpoints(kept) == [10, 20]
    r = resume(corpus, kept)  # on a disk with room, the run goes on from checkpoint 20
    assert r.returncode == 0, r.stderr
    assert_same_curve(kept, reference)
