"""Test-only fault injection, so that tests force a race instead of hoping the timing hits it.

`JAX_LLM_FAULT="SIGNAL@POINT"` (e.g. `INT@step:20`, `KILL@save:10`) sends SIGNAL to this process when
the run reaches POINT. Unset, `reached` returns at once and does nothing.
"""

import os
import signal


def reached(point: str) -> None:
    spec = os.environ.get("JAX_LLM_FAULT")
    if not spec:
        return
    name, _, where = spec.partition("@")
    if where == point:
        os.kill(os.getpid(), getattr(signal, "SIG" + name.upper()))
