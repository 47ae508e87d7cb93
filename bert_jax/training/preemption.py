"""Preemption: a SIGTERM (what TPU VMs, SLURM and Kubernetes send before taking a machine away)
makes the run finish its step, save a checkpoint and exit cleanly.

In a multi-process run, JAX's distributed runtime catches SIGTERM itself and agrees with every
process on one step to stop at (`multihost_utils.reached_preemption_sync_point`), so that all of
them save the same step even if only some were signalled. A single process has no such service;
a plain signal handler sets a flag instead.
"""

from __future__ import annotations

import logging
import signal
import threading

import jax
from jax.experimental import multihost_utils

logger = logging.getLogger("bert_jax")


class PreemptionWatch:
    """Call `reached(step)` after every step, on every process, with the same steps."""

    def __init__(self):
        self._signalled = False
        self._previous_handler = None
        self._multi_process = jax.process_count() > 1
        # Installing a Python handler in a multi-process run would replace the runtime's own.
        if not self._multi_process and threading.current_thread() is threading.main_thread():
            self._previous_handler = signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum, frame) -> None:
        self._signalled = True
        logger.warning("SIGTERM: finishing the current step, then saving a checkpoint and exiting")

    def reached(self, step: int) -> bool:
        """True at the step where every process should save and stop."""
        if self._multi_process:
            return multihost_utils.reached_preemption_sync_point(step)
        return self._signalled

    def close(self) -> None:
        if self._previous_handler is not None:
            signal.signal(signal.SIGTERM, self._previous_handler)
            self._previous_handler = None
