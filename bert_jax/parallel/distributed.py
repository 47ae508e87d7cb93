"""Joining a multi-process (multi-host) run: JAX's own multi-controller runtime, nothing more.

Every process of a TPU pod slice or a multi-node GPU job runs the same command; after
`initialize`, `jax.devices()` lists the devices of all processes and each process feeds its part
of every global batch. On Cloud TPU pods and under SLURM (and other clusters JAX knows) the
coordinator, the number of processes and this process's index are detected; elsewhere they are
given explicitly (`--coordinator-address`, `--num-processes`, `--process-id`, or the
`BERT_JAX_COORDINATOR_ADDRESS` / `BERT_JAX_NUM_PROCESSES` / `BERT_JAX_PROCESS_ID` variables).
"""

from __future__ import annotations

import logging
import os

import jax

logger = logging.getLogger("bert_jax")

MODES = ("none", "auto", "explicit")


def initialize(mode: str = "none", coordinator_address: str | None = None,
               num_processes: int | None = None, process_id: int | None = None,
               initialization_timeout: int = 300, heartbeat_timeout: int = 100) -> None:
    """Starts JAX's distributed runtime for this process, before any other JAX call.

    mode "none": a single-process run (nothing to do). "auto": let JAX detect the cluster (TPU
    pod, SLURM, ...); where it detects none, one process, with a warning. "explicit": use the given coordinator (host:port of process 0), number of
    processes and process id, falling back to the BERT_JAX_* environment variables.

    A process silent for `heartbeat_timeout` seconds (dead, or stopped) counts as failed: the
    runtime then ends every other process with an error instead of letting it wait forever in a
    collective.
    """
    if mode not in MODES:
        raise ValueError(f"distributed mode {mode!r} must be one of {MODES}.")
    if mode == "none":
        return
    if mode == "explicit":
        coordinator_address = coordinator_address or os.environ.get("BERT_JAX_COORDINATOR_ADDRESS")
        num_processes = num_processes if num_processes is not None else _env_int("BERT_JAX_NUM_PROCESSES")
        process_id = process_id if process_id is not None else _env_int("BERT_JAX_PROCESS_ID")
        missing = [name for name, value in (("--coordinator-address", coordinator_address),
                                            ("--num-processes", num_processes),
                                            ("--process-id", process_id)) if value is None]
        if missing:
            raise ValueError(f"--distributed explicit needs {', '.join(missing)} (or the "
                             "BERT_JAX_COORDINATOR_ADDRESS, BERT_JAX_NUM_PROCESSES and "
                             "BERT_JAX_PROCESS_ID variables).")
        if not 0 <= process_id < num_processes:
            raise ValueError(f"--process-id={process_id} must be in [0, --num-processes={num_processes}).")
        jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                                   process_id=process_id, initialization_timeout=initialization_timeout,
                                   heartbeat_timeout_seconds=heartbeat_timeout)
    else:
        try:
            jax.distributed.initialize(initialization_timeout=initialization_timeout,
                                       heartbeat_timeout_seconds=heartbeat_timeout)
        except ValueError as e:
            # JAX found no cluster it knows (TPU pod, SLURM, ...): a laptop or a single GPU host,
            # where the pod's very command runs as one process.
            if "coordinator_address" not in str(e):
                raise
            logger.warning("--distributed auto: JAX detects no cluster here (no TPU pod, SLURM or "
                           "other multi-process environment): running as a single process")
            return
    logger.info("process %d of %d; %d local and %d global devices", jax.process_index(),
                jax.process_count(), jax.local_device_count(), jax.device_count())


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else None
