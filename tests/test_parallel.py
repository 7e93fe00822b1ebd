"""Data parallelism on real (simulated CPU) devices: 4 devices = 1 device, with and without FSDP.

Each device count needs its own process (XLA_FLAGS is read when JAX starts), so this file is also the
worker script: the tests run `python tests/test_parallel.py DIR TASK...` and compare what the workers
save. In order: 1 device trains a step and saves a checkpoint; 4 devices train the same step
replicated and with fsdp, and restore the 1-device checkpoint; 1 device restores the fsdp checkpoint.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

GLOBAL_ROWS = 8  # 8 rows on 1 device = 2 rows on each of 4 devices


def run_worker(devices: int, *args) -> None:
    """Run this file as a worker on `devices` simulated CPU devices; each task is MODE:NAME:FSDP."""
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu")
    r = subprocess.run([sys.executable, __file__, *map(str, args)], env=env, capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]


@pytest.fixture(scope="module")
def workers(tmp_path_factory, data_dir):
    d = tmp_path_factory.mktemp("parallel")
    (d / "text.txt").write_bytes((data_dir / "tinyshakespeare.txt").read_bytes()[:100_000])
    run_worker(1, d, "train:one:false")
    run_worker(4, d, "train:four:false", "train:four_fsdp:true", "restore:one:true")
    run_worker(1, d, "restore:four_fsdp:false")
    return d


def load(d: Path, name: str):
    return json.loads((d / f"{name}.json").read_text()), dict(np.load(d / f"{name}.npz"))


def assert_same_params(a: dict, b: dict, atol: float) -> None:
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=0, atol=atol, err_msg=k)


@pytest.mark.parametrize("name", ["four", "four_fsdp"])
def test_one_step_on_four_devices_equals_one_device(workers, name):
    one, one_params = load(workers, "one")
    four, four_params = load(workers, name)
    assert (one["devices"], four["devices"]) == (1, 4)
    assert one["global_rows"] == four["global_rows"] == GLOBAL_ROWS
    assert four["loss"] == pytest.approx(one["loss"], rel=1e-5)
    assert_same_params(one_params, four_params, atol=1e-5)
    # the step moved the parameters by about the learning rate: the comparison above is not vacuous
    initial = dict(np.load(workers / "initial.npz"))
    assert max(np.abs(one_params[k] - initial[k]).max() for k in initial) > 5e-4


def test_fsdp_shards_params_and_optimizer_state(workers):
    rep, _ = load(workers, "four")
    fsdp, _ = load(workers, "four_fsdp")
    # what XLA actually used: the arrays coming out of the compiled step
    assert all(spec == [] for spec in rep["param_specs"].values())
    matrices = {k: s for k, s in fsdp["param_specs"].items() if "kernel" in k or "embedding" in k}
    assert matrices and all("data" in s for s in matrices.values()), matrices
    # bytes really held by device 0: about a quarter with fsdp (only the Adam step counters stay replicated)
    assert rep["device0_bytes"] == rep["total_bytes"]
    assert fsdp["device0_bytes"] < 0.26 * fsdp["total_bytes"]
    # the compiled fsdp step gathers parameters; the replicated one only all-reduces gradients
    assert fsdp["hlo"]["all-gather"] > 0 and rep["hlo"]["all-gather"] == 0 and rep["hlo"]["all-reduce"] > 0


def test_checkpoint_from_one_device_restores_on_four_and_back(workers):
    _, one_params = load(workers, "one")
    _, fsdp_params = load(workers, "four_fsdp")
    on_four, restored_on_four = load(workers, "restored_one")
    assert on_four["devices"] == 4 and on_four["sharded"]
    assert_same_params(one_params, restored_on_four, atol=0)
    on_one, restored_on_one = load(workers, "restored_four_fsdp")
    assert on_one["devices"] == 1
    assert_same_params(fsdp_params, restored_on_one, atol=0)


@pytest.mark.parametrize("flags, message", [
    (["--coordinator", "10.0.0.1:1234"], "needs all three of --coordinator HOST:PORT, --num-processes N and"),
    (["--coordinator", "10.0.0.1:1234", "--num-processes", "2", "--process-id", "2"], "must be in [0, 2) (got 2)"),
    (["--coordinator", "nohost", "--num-processes", "2", "--process-id", "1"], "must be HOST:PORT (got 'nohost')"),
])
def test_bad_distributed_flags_are_one_clear_line(tmp_path, monkeypatch, capsys, flags, message):
    from jax_llm.cli import main

    for var in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID", "SLURM_PROCID", "OMPI_COMM_WORLD_RANK"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "t.txt").write_text("hello " * 100)
    assert main(["train", str(tmp_path / "t.txt"), "--out", str(tmp_path / "run"), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "run").exists()


def test_processes_with_different_device_counts_are_refused():
    from types import SimpleNamespace as Device
    from jax_llm.errors import UserError
    from jax_llm.parallel import make_mesh

    devices = [Device(process_index=0, id=0), Device(process_index=0, id=1), Device(process_index=1, id=2)]
    with pytest.raises(UserError, match=r"same number of devices .*\{0: 2, 1: 1\}"):
        make_mesh(devices)


# ----------------------------------------------------------------------------------------------------
# worker side (runs in a subprocess with its own device count)


def worker_config(fsdp: bool):
    import jax
    from jax_llm.config import make_config

    sets = {"n_layer": 1, "n_head": 2, "n_embd": 32, "block_size": 32, "vocab_size": 256, "dropout": 0.1,
            "batch_size": GLOBAL_ROWS // jax.device_count(), "grad_accum": 2, "max_steps": 1, "warmup_steps": 0,
            "eval_batches": 1, "sample_tokens": 0, "fsdp": fsdp}
    return make_config(None, [f"{k}={v}" for k, v in sets.items()])


def flat(tree) -> dict:
    import jax

    return {jax.tree_util.keystr(p): np.asarray(x) for p, x in jax.tree_util.tree_leaves_with_path(tree)}


def worker_train(d: Path, name: str, fsdp: bool) -> None:
    import jax
    from jax_llm import data, parallel
    from jax_llm.train import build_engine, fit

    cfg = worker_config(fsdp)
    tokens = np.frombuffer((d / "text.txt").read_bytes(), np.uint8)
    train, val = data.lm_streams(tokens[:90_000]), data.lm_streams(tokens[90_000:])
    if name == "one":
        np.savez(d / "initial.npz", **flat(parallel.to_host(build_engine(cfg).state["params"])))
    (d / name).mkdir()
    result = fit(d / name, cfg, train, val, resume=False, quiet=True)
    engine = result.engine
    state = engine.state
    leaves = jax.tree.leaves(state)
    batch = parallel.to_global(engine.mesh, data.gather(train, np.zeros((2, engine.rows), int), 32), batch_dim=1)
    hlo = engine.train_step.lower(state, batch, jax.random.key(0)).compile().as_text() if engine.mesh.size > 1 else ""
    info = {
        "devices": jax.device_count(), "global_rows": engine.rows, "loss": result.last_loss,
        "param_specs": {k: list(x.sharding.spec) for k, x in
                        zip(flat(state["params"]), jax.tree.leaves(state["params"]))},
        "device0_bytes": sum(x.addressable_shards[0].data.nbytes for x in leaves),
        "total_bytes": sum(x.nbytes for x in leaves),
        "hlo": {op: hlo.count(f" {op}(") + hlo.count(f" {op}-start(") for op in ("all-gather", "all-reduce",
                                                                                   "reduce-scatter")},
    }
    (d / f"{name}.json").write_text(json.dumps(info))
    np.savez(d / f"{name}.npz", **flat(parallel.to_host(state["params"])))


def worker_restore(d: Path, name: str, fsdp: bool) -> None:
    import jax
    from jax_llm import parallel
    from jax_llm.checkpoint import Checkpoints
    from jax_llm.train import build_engine

    engine = build_engine(worker_config(fsdp))
    ckpts = Checkpoints(d / name / "checkpoints", 3)
    state = ckpts.restore(ckpts.latest_step(), engine.state)
    ckpts.close()
    sharded = any(not x.sharding.is_fully_replicated for x in jax.tree.leaves(state))
    (d / f"restored_{name}.json").write_text(json.dumps({"devices": jax.device_count(), "sharded": sharded}))
    np.savez(d / f"restored_{name}.npz", **flat(parallel.to_host(state["params"])))


if __name__ == "__main__":
    for task in sys.argv[2:]:
        mode, run_name, use_fsdp = task.split(":")
        {"train": worker_train, "restore": worker_restore}[mode](Path(sys.argv[1]), run_name, use_fsdp == "true")
