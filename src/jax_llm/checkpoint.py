"""Checkpoints with Orbax: atomic (written aside, then renamed), the last N kept, multi-host aware.

A checkpoint holds params and optimizer state; its step number is the data position and the RNG
position too, since batches and dropout keys are functions of (seed, step).
"""

from pathlib import Path

import jax
import orbax.checkpoint as ocp


class Checkpoints:
    def __init__(self, directory: Path, keep: int):
        self.manager = ocp.CheckpointManager(
            Path(directory).absolute(),
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True),
        )

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state) -> None:
        self.manager.save(step, args=ocp.args.StandardSave(state), force=True)
        self.manager.wait_until_finished()

    def restore(self, step: int, like):
        """Restore into the shapes, dtypes and shardings of `like` (so 4 devices can restore on 1)."""
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        return self.manager.restore(step, args=ocp.args.StandardRestore(abstract))

    def close(self) -> None:
        self.manager.close()

