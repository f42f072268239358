"""A test-only fault hook: die by SIGKILL at a named point, to prove recovery from there.

Set ``CS360_FAULT_AT`` to one point name (or several, comma-separated) and the process kills
itself the moment it reaches that point, as a power cut or the OOM killer would. Unset, a point
costs one environment lookup.
"""

from __future__ import annotations

import os
import signal

from cs360_pipeline.settings import FAULT_ENV, fault_point_wanted

__all__ = ["FAULT_ENV", "fault_point"]


def fault_point(name: str) -> None:
    """Die here when the environment names this point."""
    wanted = fault_point_wanted()
    if wanted and name in (part.strip() for part in wanted.split(",")):
        os.kill(os.getpid(), signal.SIGKILL)
