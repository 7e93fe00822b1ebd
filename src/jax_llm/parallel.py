"""Data parallelism on JAX's own runtime: one mesh axis `data` over every device of every process.

The batch is split over `data`; parameters and optimizer state are replicated, or with FSDP each
array is split over `data` along its largest divisible dimension and XLA inserts the all-gathers and
reduce-scatters. Several hosts join through `jax.distributed.initialize`; each process then feeds
only its own rows of every global batch.
"""

import math
import os
import socket
import time

import numpy as np
import jax
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jax_llm.errors import UserError

AXIS = "data"


def start_distributed(coordinator: str | None = None, num_processes: int | None = None,
                      process_id: int | None = None, init_timeout: int = 300, heartbeat_timeout: int = 100) -> bool:
    """Join a multi-process run; returns False (and does nothing) for a plain single-process run.

    The three values come from the arguments, else from JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES
    and JAX_PROCESS_ID, else JAX detects them in a SLURM or Open MPI job of several tasks. Must run
    before anything touches a device. A process that cannot join within `init_timeout` seconds, or
    whose peer stops sending heartbeats for `heartbeat_timeout` seconds, stops with an error.
    """
    coordinator = coordinator or os.environ.get("JAX_COORDINATOR_ADDRESS")
    num_processes = _first_int(num_processes, "JAX_NUM_PROCESSES")
    process_id = _first_int(process_id, "JAX_PROCESS_ID")
    given = (coordinator, num_processes, process_id)
    if all(v is None for v in given) and not _cluster_job():
        return False
    if None in given and not _cluster_job():
        raise UserError("a multi-process run needs all three of --coordinator HOST:PORT, --num-processes N and "
                        "--process-id I (or JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID)")
    if None not in (num_processes, process_id) and not 0 <= process_id < num_processes:
        raise UserError(f"--process-id must be in [0, {num_processes}) (got {process_id})")
    if coordinator is not None and process_id not in (None, 0):
        _wait_for_coordinator(coordinator, init_timeout)
    if "JAX_CPU_COLLECTIVES_IMPLEMENTATION" not in os.environ:  # collectives between CPU processes
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(coordinator, num_processes, process_id, initialization_timeout=init_timeout,
                                   heartbeat_timeout_seconds=heartbeat_timeout)
    except ValueError as e:  # a cluster job JAX could not read the three values from
        raise UserError(f"cannot start the multi-process run: {e} (pass --coordinator, --num-processes, "
                        f"--process-id)") from None
    return True


def _first_int(value, env: str) -> int | None:
    if value is not None or env not in os.environ:
        return value
    try:
        return int(os.environ[env])
    except ValueError:
        raise UserError(f"{env} must be an integer (got {os.environ[env]!r})") from None


def _cluster_job() -> bool:
    """A SLURM step or an Open MPI job with several tasks: JAX finds the coordinator itself."""
    tasks = os.environ.get("SLURM_STEP_NUM_TASKS") or os.environ.get("OMPI_COMM_WORLD_SIZE") or "1"
    return ("SLURM_PROCID" in os.environ or "OMPI_COMM_WORLD_RANK" in os.environ) and int(tasks) > 1


def _wait_for_coordinator(address: str, timeout: float) -> None:
    """Fail with one clear line, rather than JAX's abort, when process 0's port never answers."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--coordinator must be HOST:PORT (got {address!r})")
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
            return
        except OSError as e:
            if time.monotonic() >= deadline:
                raise UserError(f"cannot reach the coordinator {address} within {timeout:g} s ({e.strerror or e}); "
                                f"start process 0 there, or fix --coordinator") from None
            time.sleep(0.5)


def make_mesh(devices=None) -> Mesh:
    """A 1-D mesh over `devices` (default: all), ordered by process so each process owns a contiguous slice."""
    devices = sorted(devices or jax.devices(), key=lambda d: (d.process_index, d.id))
    counts = {p: sum(d.process_index == p for d in devices) for p in {d.process_index for d in devices}}
    if len(set(counts.values())) > 1:
        raise UserError(f"every process must have the same number of devices to split the batch evenly "
                        f"(devices per process: {counts})")
    return Mesh(np.array(devices), (AXIS,))


def batch_sharding(mesh: Mesh, ndim: int, batch_dim: int = 0) -> NamedSharding:
    spec = [None] * ndim
    spec[batch_dim] = AXIS
    return NamedSharding(mesh, P(*spec))


def param_sharding(mesh: Mesh, x, fsdp: bool) -> NamedSharding:
    """Replicated, or (FSDP) split along the largest dimension that the device count divides."""
    n = mesh.shape[AXIS]
    if fsdp and n > 1 and getattr(x, "ndim", 0) > 0:
        for dim in sorted(range(x.ndim), key=lambda d: -x.shape[d]):
            if x.shape[dim] % n == 0:
                spec = [None] * x.ndim
                spec[dim] = AXIS
                return NamedSharding(mesh, P(*spec))
    return NamedSharding(mesh, P())


def tree_shardings(mesh: Mesh, tree, fsdp: bool):
    return jax.tree.map(lambda x: param_sharding(mesh, x, fsdp), tree)


def bytes_per_device(tree, shardings) -> int:
    """Bytes one device holds for `tree` (arrays or shape/dtype structs) laid out with `shardings`."""
    return sum(math.prod(s.shard_shape(x.shape)) * np.dtype(x.dtype).itemsize
               for x, s in zip(jax.tree.leaves(tree), jax.tree.leaves(shardings)))


def global_rows(per_device: int, mesh: Mesh) -> int:
    """Rows of one global micro-batch: the per-device batch times the devices of every process."""
    if per_device < 1:
        raise UserError(f"batch_size (per device) must be >= 1 (got {per_device})")
    return per_device * mesh.size


def local_rows(mesh: Mesh, rows: int) -> slice:
    """This process's rows of a global batch dimension split over `mesh` (contiguous, see make_mesh)."""
    if rows % mesh.size:
        raise UserError(f"a global batch of {rows} rows does not divide over {mesh.size} devices")
    per_process = rows // mesh.size * sum(d.process_index == jax.process_index() for d in mesh.devices.flat)
    start = per_process * sorted({d.process_index for d in mesh.devices.flat}).index(jax.process_index())
    return slice(start, start + per_process)


def to_global(mesh: Mesh, local: dict, batch_dim: int) -> dict:
    """Assemble each process's rows into global arrays sharded over `data` along `batch_dim`."""
    n_proc = len({d.process_index for d in mesh.devices.flat})
    out = {}
    for k, v in local.items():
        shape = list(v.shape)
        shape[batch_dim] *= n_proc
        out[k] = jax.make_array_from_process_local_data(batch_sharding(mesh, v.ndim, batch_dim), v, tuple(shape))
    return out


def to_host(tree):
    """A numpy copy of a tree of global arrays on every process; all processes must call it together."""
    if all(x.is_fully_addressable or x.is_fully_replicated for x in jax.tree.leaves(tree)):
        return jax.device_get(tree)
    return multihost_utils.process_allgather(tree, tiled=True)


def sync(name: str) -> None:
    """Wait until every process gets here (a no-op in a single-process run)."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)


def any_process(flag: bool) -> bool:
    """Whether `flag` is set on any process; all processes must call it together."""
    if jax.process_count() == 1:
        return flag
    return bool(multihost_utils.process_allgather(np.array(flag)).any())


def is_main_process() -> bool:
    return jax.process_index() == 0
