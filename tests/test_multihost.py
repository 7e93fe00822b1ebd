"""Several hosts for real: `jax-llm train` as two processes on 127.0.0.1 with 2 CPU devices each.

They must log the losses of one process with 4 devices, save and resume together, stop together on
Ctrl-C, and stop (not hang) when a peer dies or the coordinator cannot be reached.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from jax_llm.metrics import read_metrics

SETS = ["n_layer=1", "n_head=2", "n_embd=32", "block_size=32", "batch_size=2", "eval_interval=3", "eval_batches=1",
        "log_interval=1", "ckpt_interval=3", "warmup_steps=2", "lr_decay_steps=6", "fsdp=true", "sample_tokens=0"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_cmd(text, out, steps, *extra):
    args = [sys.executable, "-m", "jax_llm", "train", str(text), "--out", str(out), "--tokenizer", "char",
            "--max-steps", str(steps), "--quiet"]
    for s in SETS:
        args += ["--set", s]
    return args + list(extra)


def start(cmd, devices):
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu",
               PYTHONUNBUFFERED="1")
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc, timeout=600):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def run_two(text, out, steps, *extra, timeout=600):
    """Both processes of a 2-host run (2 devices each); returns [(rc, stdout, stderr)] by process id."""
    flags = ["--coordinator", f"127.0.0.1:{free_port()}", "--num-processes", "2", "--init-timeout", "120"]
    procs = [start(train_cmd(text, out, steps, *flags, "--process-id", str(i), *extra), 2) for i in (0, 1)]
    results = [finish(p, timeout) for p in procs]
    for rc, _, err in results:
        assert rc == 0, err[-4000:]
    return results


def curve(run_dir):
    rows = read_metrics(run_dir / "metrics.jsonl")
    return {r["step"]: r["loss"] for r in rows if "loss" in r}, {r["step"]: r["val_loss"] for r in rows if "val_loss" in r}


@pytest.fixture(scope="module")
def text(tmp_path_factory, data_dir):
    path = tmp_path_factory.mktemp("corpus") / "text.txt"
    path.write_bytes((data_dir / "tinyshakespeare.txt").read_bytes()[:100_000])
    return path


def test_two_processes_log_the_losses_of_four_devices_and_resume_together(tmp_path, text):
    ref = start(train_cmd(text, tmp_path / "ref", 6), 4)
    run = tmp_path / "two"
    first = run_two(text, run, 3)
    assert sorted(p.name for p in (run / "checkpoints").iterdir() if p.name.isdigit()) == ["3"]
    second = run_two(text, run, 6, "--resume", "--set", "sample_tokens=16")
    rc, _, err = finish(ref)
    assert rc == 0, err[-4000:]

    (losses, vals), (ref_losses, ref_vals) = curve(run), curve(tmp_path / "ref")
    assert sorted(losses) == sorted(ref_losses) == [1, 2, 3, 4, 5, 6]
    assert sorted(vals) == sorted(ref_vals) == [3, 6]
    for step in ref_losses:
        assert losses[step] == pytest.approx(ref_losses[step], rel=1e-5), step
    for step in ref_vals:
        assert vals[step] == pytest.approx(ref_vals[step], rel=1e-5), step
    assert sorted(p.name for p in (run / "checkpoints").iterdir() if p.name.isdigit()) == ["3", "6"]
    # only process 0 reports; the sample at the end needs the fsdp-sharded params of both processes
    for (_, out0, _), (_, out1, _) in (first, second):
        assert "4 device(s)" in out0 and "val loss" in out0
        assert without_gloo(out1).strip() == "", out1
    assert "sample:" in second[0][1]


def without_gloo(out: str) -> str:
    """Output without Gloo's connection messages, which its threads print, sometimes mixed into each other
    (even mid-line: "... is : 3[Gloo] Rank 2 is ..."). The expected count is matched as the connected one
    (a backreference), so it cannot swallow the digits of a rank printed right after it."""
    return re.sub(r"\d*\s*is connected to (\d+) peer ranks\. Expected number of connected peer ranks is : \1", "",
                  out.replace("[Gloo] Rank ", ""))


def start_long_run(run_dir, text, *flags):
    """Two processes training for (nearly) ever; returns once both are past their first steps."""
    flags = ["--coordinator", f"127.0.0.1:{free_port()}", "--num-processes", "2", *flags]
    procs = [start(train_cmd(text, run_dir, 100_000, *flags, "--process-id", str(i)), 2) for i in (0, 1)]
    metrics = run_dir / "metrics.jsonl"
    deadline = time.time() + 300
    while not (metrics.exists() and len(read_metrics(metrics)) >= 2):
        assert all(p.poll() is None for p in procs), [finish(p)[2][-2000:] for p in procs]
        assert time.time() < deadline, "training did not start"
        time.sleep(0.2)
    return procs


def test_ctrl_c_on_one_process_stops_both_at_one_checkpoint(tmp_path, text):
    procs = start_long_run(tmp_path / "run", text, "--set", "steps_per_call=4", "--set", "eval_interval=1000",
                           "--set", "ckpt_interval=1000")
    procs[1].send_signal(signal.SIGINT)
    (rc0, out0, err0), (rc1, _, err1) = finish(procs[0], 300), finish(procs[1], 300)
    assert (rc0, rc1) == (130, 130), err0[-2000:] + err1[-2000:]
    last = max(int(p.name) for p in (tmp_path / "run" / "checkpoints").iterdir() if p.name.isdigit())
    assert last % 4 == 0  # the processes compare their Ctrl-C flags after every call of steps_per_call steps
    assert f"interrupted: saved a checkpoint at step {last}" in out0


@pytest.mark.parametrize("victim", [1, 0], ids=["worker-dies", "coordinator-dies"])
def test_a_dead_peer_stops_the_other_process(tmp_path, text, victim):
    procs = start_long_run(tmp_path / "run", text, "--heartbeat-timeout", "5")
    procs[victim].send_signal(signal.SIGKILL)
    killed, survivor = time.time(), procs[1 - victim]
    try:
        rc, _, err = finish(survivor, timeout=120)  # heartbeat 5 s: far less than this unless it hangs
    except subprocess.TimeoutExpired:
        survivor.kill()
        pytest.fail("the surviving process hung after its peer died")
    finish(procs[victim])
    assert rc != 0
    assert "another task died" in err or "unhealthy" in err, err[-3000:]
    print(f"survivor stopped {time.time() - killed:.1f} s after its peer was killed")


def test_unreachable_coordinator_and_missing_peer_fail_within_the_timeout(tmp_path, text):
    ports = free_port(), free_port()
    client, coordinator = (start(train_cmd(text, tmp_path / str(i), 5, "--coordinator", f"127.0.0.1:{ports[i]}",
                                           "--num-processes", "2", "--init-timeout", "3", "--process-id", str(i)), 2)
                           for i in (1, 0))
    rc, _, err = finish(client, timeout=120)
    assert rc == 2 and err.strip().splitlines() == [
        f"jax-llm: error: cannot reach the coordinator 127.0.0.1:{ports[1]} within 3 s (Connection refused); "
        "start process 0 there, or fix --coordinator"]
    # process 0 whose peer never comes gives up after --init-timeout too
    rc, _, err = finish(coordinator, timeout=120)
    assert rc != 0 and "DEADLINE_EXCEEDED" in err, err[-3000:]
