"""Child processes the harness starts (a vLLM server, a training run) never outlive it."""

from __future__ import annotations

import ctypes
import signal


def die_with_parent() -> None:
    """Runs in the child: SIGTERM it when the harness dies, however it dies (PR_SET_PDEATHSIG)."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)
