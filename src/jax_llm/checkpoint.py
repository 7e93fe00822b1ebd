"""Checkpoints with Orbax: atomic (written aside, then renamed), the last N kept, multi-host aware.

A checkpoint holds params and optimizer state; its step number is the data position and the RNG
position too, since batches and dropout keys are functions of (seed, step). A checkpoint that cannot be
read is moved aside (`N.damaged`, never deleted) and the one before it is used.
"""

import errno
import logging
import os
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path

import jax
import orbax.checkpoint as ocp

from jax_llm import faults, parallel
from jax_llm.errors import UserError, one_line


class Checkpoints:
    def __init__(self, directory: Path, keep: int):
        self.directory = Path(directory).absolute()
        self.manager = ocp.CheckpointManager(self.directory,
                                             options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True))

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state) -> None:
        """Refused before writing when the disk cannot hold it (a write that fails half-way makes Orbax's
        threads print tracebacks); a full disk met anyway is still reported as one line."""
        need = int(sum(x.nbytes for x in jax.tree.leaves(state)) * 1.2) + (1 << 16)  # data + Orbax's metadata
        free = shutil.disk_usage(self.directory).free
        if free < need:
            self._refuse_full(step, f"needs about {need / 2**20:.1f} MiB, {free / 2**20:.1f} MiB free")
        try:
            self.manager.save(step, args=ocp.args.StandardSave(state), force=True)
            faults.reached(f"save:{step}")  # the write is in flight
            self.manager.wait_until_finished()
        except Exception as e:  # Orbax wraps the OS error in its own types; find it in the chain
            if not _caused_by_full_disk(e):
                raise
            self._refuse_full(step, "the write failed")

    def _refuse_full(self, step: int, detail: str):
        kept = self.manager.all_steps()
        raise UserError(f"no space left on the device for checkpoint {step} in {self.directory} ({detail}); "
                        f"{f'checkpoint {max(kept)} is intact' if kept else 'there is no earlier checkpoint'}: "
                        f"free some space, then --resume")

    def restore(self, step: int, like):
        """Restore into the shapes, dtypes and shardings of `like` (so 4 devices can restore on 1)."""
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        return self.manager.restore(step, args=ocp.args.StandardRestore(abstract))

    def restore_latest(self, like) -> tuple[int, object]:
        """(step, state) of the newest checkpoint that can be read, or (0, None) when there is none."""
        for step in sorted(self.manager.all_steps(), reverse=True):
            try:
                return step, self.restore(step, like)
            except Exception as e:  # a damaged checkpoint fails in many ways, deep inside Orbax
                aside = self.directory / f"{step}.damaged"
                if parallel.is_main_process():
                    os.replace(self.directory / str(step), aside)
                    print(f"warning: checkpoint {step} cannot be read ({one_line(e)}); moved it to {aside} and "
                          f"used the one before", file=sys.stderr)
                parallel.sync(f"damaged-checkpoint-{step}")
                self.manager.reload()
        return 0, None

    def close(self) -> None:
        self.manager.close()


def steps_in(directory: Path) -> list[int]:
    """The checkpoints' steps, read from the directory's names (nothing is created)."""
    d = Path(directory)
    return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit()) if d.is_dir() else []


def read_latest(directory: Path, like) -> tuple[int, object]:
    """(step, state) of the latest checkpoint, for a reader (`generate`, the input method): the directory
    is left as it is, and a checkpoint that cannot be read is refused in one line naming it."""
    steps = steps_in(directory)
    if not steps:
        raise UserError(f"{directory}: {'no checkpoint in it' if Path(directory).is_dir() else 'no such directory'}")
    try:
        with _quiet_failure():
            checkpoints = Checkpoints(directory, keep=len(steps))
            try:
                return steps[-1], checkpoints.restore(steps[-1], like)
            finally:
                checkpoints.close()
    except Exception as e:  # a damaged checkpoint fails in many ways, deep inside Orbax
        raise UserError(f"{Path(directory) / str(steps[-1])}: the checkpoint cannot be read ({one_line(e)})") from None


@contextmanager
def _quiet_failure():
    """While a checkpoint is read, the failure of a damaged one is left to its one line: Orbax's own log
    lines about it are held back, and so are tensorstore's reads still in flight when Orbax gives up, which
    report into the event loop Orbax has closed (each an unraisable "Event loop is closed" traceback, some
    after the failure has been raised: so after a failure that filter stays)."""
    absl_log, hook = logging.getLogger("absl"), sys.unraisablehook
    level = absl_log.level

    def unraisable(u):
        if not (isinstance(u.exc_value, RuntimeError) and "Event loop is closed" in str(u.exc_value)):
            hook(u)

    absl_log.setLevel(logging.CRITICAL)
    sys.unraisablehook = unraisable
    try:
        yield
    finally:
        absl_log.setLevel(level)
    sys.unraisablehook = hook  # on success only: after a failure, late reports keep arriving


def _caused_by_full_disk(e: BaseException | None) -> bool:
    while e is not None:
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            return True
        if any(s in str(e) for s in ("No space left on device", "File too large")):
            return True
        e = e.__cause__ or e.__context__
    return False
