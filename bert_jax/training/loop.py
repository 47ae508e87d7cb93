"""The pretraining loop: mesh, data, sharded state, the jitted step, logging, evaluation and
checkpoints. Reads top to bottom; the step itself is the pure function in `bert_jax.training.step`.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import jax
import ml_collections
import numpy as np
import optax

from bert_jax.config.files import save_config
from bert_jax.config.validation import bert_config, validate
from bert_jax.errors import RunStopped
from bert_jax.model import BertForPreTraining, flops
from bert_jax.parallel import sharding
from bert_jax.state.checkpointer import Checkpointer
from bert_jax.state.optimizer import make_optimizer
from bert_jax.state.train_state import TrainState, state_shardings
from bert_jax.training.phases import (
    data_position,
    eval_batches,
    phase_at,
    phase_shapes,
    predictions_per_row,
    train_batches,
)
from bert_jax.training.preemption import PreemptionWatch
from bert_jax.training.progress import ProgressReporter
from bert_jax.training.resume import resume
from bert_jax.training.step import eval_step, summarize, train_step
from input_pipeline import remote_files
from input_pipeline.reading.reader import check_shards_match

logger = logging.getLogger("bert_jax")


def jit_train_step(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh, model: BertForPreTraining,
                   optimizer: optax.GradientTransformation, schedule: optax.Schedule,
                   shardings: TrainState) -> Callable:
    """`train_step` jitted for `mesh`: the state in `shardings` (donated), the batch split over the
    data-parallel axes, activations constrained by the config's rules, metrics replicated."""
    step = functools.partial(train_step, model=model, optimizer=optimizer, schedule=schedule,
                             seed=config.train.seed, grad_accum_steps=config.train.grad_accum_steps,
                             rng_impl=config.train.rng_impl)
    return jax.jit(sharding.with_logical_rules(step, mesh, sharding.config_rules(config)),
                   in_shardings=(shardings, sharding.batch_sharding(mesh)),
                   out_shardings=(shardings, sharding.replicated(mesh)), donate_argnums=0)


def evaluate(params: Any, config: ml_collections.ConfigDict, eval_fn, mesh) -> dict[str, float]:
    """Held-out loss and accuracies over `train.eval_steps` batches (all if 0)."""
    totals: dict[str, float] = {}
    for i, batch in enumerate(eval_batches(config)):
        if config.train.eval_steps and i >= config.train.eval_steps:
            break
        sums = jax.device_get(eval_fn(params, _global_batch(batch, mesh)))
        for k, v in sums.items():
            totals[k] = totals.get(k, 0.0) + float(v)
    if not totals:
        raise ValueError(f"data.eval_files={config.data.eval_files!r} holds no examples.")
    return {k: float(v) for k, v in summarize(totals).items()} | {"examples": totals["nsp_count"]}


def _global_batch(local_batch: dict[str, np.ndarray], mesh) -> dict[str, jax.Array]:
    """Assembles the processes' local batches into one global array per feature."""
    target = sharding.batch_sharding(mesh)
    # The global shape, stated, makes JAX refuse a layout where the processes' rows would not
    # add up to it instead of silently treating each process's rows as the whole batch.
    return {k: jax.make_array_from_process_local_data(target, v, (len(v) * jax.process_count(), *v.shape[1:]))
            for k, v in local_batch.items()}


class TrainingDiverged(RunStopped):
    """Too many consecutive steps had a non-finite loss or gradient."""


class NonFiniteStreak:
    """Counts consecutive skipped (non-finite) steps over the fetched per-step metrics and stops
    the run once `limit` come in a row."""

    def __init__(self, limit: int):
        self.limit = limit
        self.length = 0
        self.total = 0

    def update(self, fetched: list[dict[str, Any]], last_step: int, checkpointer: Checkpointer) -> None:
        for offset, metrics in enumerate(fetched):
            if metrics["skipped"]:
                self.length += 1
                self.total += 1
                if self.length == 1:
                    logger.warning("step %d: non-finite loss (%s) or gradient norm (%s); the update "
                                   "is skipped", last_step - len(fetched) + 1 + offset,
                                   metrics["loss"], metrics["grad_norm"])
            else:
                self.length = 0
            if self.length >= self.limit:
                first = last_step - len(fetched) + 1 + offset - self.length + 1
                checkpointer.wait_until_finished()
                latest = checkpointer.latest_step()
                kept = (f"the last checkpoint is step {latest} in {checkpointer.directory}" if latest
                        else "no checkpoint was saved")
                raise TrainingDiverged(
                    f"{self.length} consecutive steps ({first} to {first + self.length - 1}) had a "
                    f"non-finite loss or gradient (train.max_consecutive_nonfinite={self.limit}); "
                    f"their updates were skipped and the run stops. The parameters did not change "
                    f"since step {first - 1}; {kept}. Lower the learning rate, check the data, or "
                    "use float32 compute.")


def _interval_means(interval: list[dict[str, Any]]) -> dict[str, float]:
    """Means over a log interval's steps, skipped (non-finite) steps left out of all but the
    count of them."""
    good = [m for m in interval if not m["skipped"]] or interval
    means = {k: float(np.mean([m[k] for m in good])) for k in interval[0] if k != "skipped"}
    return means | {"skipped_steps": float(sum(m["skipped"] for m in interval))}


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | os.PathLike, *,
                       on_report: Callable[[dict[str, float]], None] | None = None) -> dict[str, float]:
    """Pretrains from `config` in `workdir`, resuming from its latest checkpoint if any.

    Returns the metrics of the last logged step and of the final evaluation (if `eval_files`).
    `on_report` is called with the metrics of every logged training interval.
    """

    validate(config, jax.device_count(), jax.process_count())
    for phase, files in ((1, config.data.train_files), (2, config.data.phase2_train_files),
                         (1, config.data.eval_files)):
        _, seq, preds = phase_shapes(config, phase)
        check_shards_match([p for p in files.split(",") if p], max_seq_length=seq,
                           max_predictions_per_seq=preds, vocab_size=config.model.vocab_size,
                           vocab_file=config.data.vocab_file,
                           dynamic_masking=config.data.dynamic_masking,
                           do_lower_case=config.data.do_lower_case,
                           config_prefix="data.phase2_" if phase == 2 else "data.")
    workdir = os.fspath(workdir)
    remote_files.makedirs(workdir)

    mesh = sharding.make_mesh(config.mesh.shape)
    model_config = bert_config(config)
    model = BertForPreTraining(model_config)
    optimizer, schedule = make_optimizer(config.optimizer, config.train.num_steps)
    shardings = state_shardings(model, optimizer, config, mesh)

    checkpointer = Checkpointer(workdir, max_to_keep=config.train.keep_checkpoints,
                                cleanup_tmp_directories=True)
    start_step, state, batches = resume(checkpointer, config, model, optimizer, shardings)
    if jax.process_index() == 0:  # after `resume` has accepted the config
        save_config(config, os.path.join(workdir, "config.json"))
    num_params = sum(x.size for x in jax.tree.leaves(state.params))
    logger.info("model: %s parameters; mesh %s over %d devices (%s)", f"{num_params:,}",
                dict(mesh.shape), jax.device_count(), jax.devices()[0].device_kind)

    step_fn = jit_train_step(config, mesh, model, optimizer, schedule, shardings)
    eval_fn = jax.jit(sharding.with_logical_rules(functools.partial(eval_step, model=model), mesh,
                                                  sharding.config_rules(config)),
                      in_shardings=(shardings.params, sharding.batch_sharding(mesh)),
                      out_shardings=sharding.replicated(mesh))

    phase = phase_at(config, start_step)
    peak = config.train.peak_flops_per_device or flops.peak_flops(jax.devices()[0].device_kind)
    reporter = ProgressReporter(
        workdir, config.train.num_steps, start_step, config.train.global_batch_size, 0, 0.0,
        peak * jax.device_count() if peak else None, is_main_process=jax.process_index() == 0)
    config_dict = config.to_dict()

    def compile_phase(phase: int, batch: dict[str, jax.Array]):
        """Compiles the step for the phase's shapes and points the reporter's FLOP count at it."""
        _, seq, _ = phase_shapes(config, phase)
        reporter.seq_length = seq
        reporter.flops_per_step = flops.train_flops_per_step(
            model_config, config.train.global_batch_size, seq, predictions_per_row(config, phase))
        compile_start = time.perf_counter()
        compiled = step_fn.lower(state, batch).compile()
        compile_seconds = time.perf_counter() - compile_start
        logger.info("compiled the phase-%d train step (sequence length %d) in %.1f s",
                    phase, seq, compile_seconds)
        reporter.write_scalars(int(state.step), {"compile_seconds": compile_seconds}, "train")
        return compiled

    last: dict[str, float] = {}
    preemption = PreemptionWatch()
    preempted_at = None
    try:
        if start_step < config.train.num_steps:
            batch = _global_batch(next(batches), mesh)
            compiled = compile_phase(phase, batch)
            reporter.restart_clock(start_step)
            pending: list[dict[str, jax.Array]] = []  # on the device, not yet fetched
            interval: list[dict[str, float]] = []     # fetched, not yet logged
            nonfinite = NonFiniteStreak(config.train.max_consecutive_nonfinite)
            for step in range(start_step + 1, config.train.num_steps + 1):
                state, metrics = compiled(state, batch)
                pending.append(metrics)
                preempted = preemption.reached(step)
                if step % config.train.checkpoint_every == 0 or step == config.train.num_steps or preempted:
                    # Saved before the next batch is read, so the data position matches `step`.
                    checkpointer.save(step, state, config_dict, batches, data_position(config, phase))
                log_now = step % config.train.log_every == 0 or step == config.train.num_steps or preempted
                # Fetching metrics only now and then keeps the host from waiting on the device
                # every step; often enough to stop after K bad steps in a row, not later.
                if log_now or len(pending) >= nonfinite.limit:
                    fetched = jax.device_get(pending)
                    pending = []
                    nonfinite.update(fetched, step, checkpointer)
                    interval += fetched
                if preempted:
                    last = reporter.report(step, _interval_means(interval))
                    if on_report is not None:
                        on_report(last | {"step": step})
                    checkpointer.wait_until_finished()
                    logger.warning("preempted: the checkpoint of step %d is saved in %s; rerun the "
                                   "same command to resume", step, checkpointer.directory)
                    preempted_at = step
                    break
                if step < config.train.num_steps:
                    if phase_at(config, step) != phase:
                        phase = phase_at(config, step)
                        logger.info("step %d: switching to phase %d data", step, phase)
                        batches = train_batches(config, phase)
                        batch = _global_batch(next(batches), mesh)
                        compiled = compile_phase(phase, batch)
                        reporter.restart_clock(step)
                    else:
                        batch = _global_batch(next(batches), mesh)  # Overlaps with the device's work.
                if log_now:
                    last = reporter.report(step, _interval_means(interval))
                    if on_report is not None:
                        on_report(last | {"step": step})
                    interval = []
                if config.data.eval_files and config.train.eval_every and step % config.train.eval_every == 0 \
                        and step < config.train.num_steps:
                    reporter.report(step, evaluate(state.params, config, eval_fn, mesh), prefix="eval")
                    reporter.restart_clock(step)
        else:
            logger.info("step %d reached: training is complete", config.train.num_steps)
        checkpointer.wait_until_finished()
    except BaseException:
        preemption.close()
        try:
            checkpointer.close()
        except Exception:  # noqa: BLE001 - the error that got us here is the one to report
            pass
        raise
    preemption.close()
    checkpointer.close()
    if preempted_at is not None:
        reporter.close()
        return {f"train_{k}": v for k, v in last.items()} | {"preempted_at_step": preempted_at}
    results = {f"train_{k}": v for k, v in last.items()}
    if config.data.eval_files:
        held_out = evaluate(state.params, config, eval_fn, mesh)
        reporter.report(int(state.step), held_out, prefix="eval")
        results |= {f"eval_{k}": v for k, v in held_out.items()}
    reporter.close()
    return results

