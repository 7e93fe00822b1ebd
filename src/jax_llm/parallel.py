"""Data parallelism on JAX's own runtime: one mesh axis `data` over every device of every process.

The batch is split over `data`; parameters and optimizer state are replicated, or with FSDP each
array is split over `data` along its largest divisible dimension and XLA inserts the all-gathers and
reduce-scatters. Several hosts join through `jax.distributed.initialize`; each process then feeds
only its own rows of every global batch.
"""

import numpy as np
import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

AXIS = "data"


def make_mesh() -> Mesh:
    return Mesh(np.array(jax.devices()), (AXIS,))


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


def local_rows(global_rows: int) -> slice:
    """This process's rows of a global batch dimension split evenly over processes."""
    per_process = global_rows // jax.process_count()
    return slice(jax.process_index() * per_process, (jax.process_index() + 1) * per_process)


def to_global(mesh: Mesh, local: dict, batch_dim: int) -> dict:
    """Assemble each process's rows into global arrays sharded over `data` along `batch_dim`."""
    out = {}
    for k, v in local.items():
        shape = list(v.shape)
        shape[batch_dim] *= jax.process_count()
        out[k] = jax.make_array_from_process_local_data(batch_sharding(mesh, v.ndim, batch_dim), v, tuple(shape))
    return out


def is_main_process() -> bool:
    return jax.process_index() == 0
