"""The training loop, for any objective (`training.objective`): mesh, sharded state, resume, the
jitted step, logging, evaluation with the best parameters kept, checkpoints and preemption.
`train` reads top to bottom; the step itself is the pure function in `training.step`.
`train_and_evaluate` is pretraining's entry point: its config read once into the typed
`RunConfig`, its objective, its phased shards and its held-out evaluation.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
from collections.abc import Callable, Hashable, Iterator
from typing import Any

import jax
import ml_collections
import numpy as np
import optax
from jax.experimental import multihost_utils

from bert_jax.config.files import save_config
from bert_jax.config.pretraining import PretrainingData
from bert_jax.config.run import LoopConfig, RunConfig
from bert_jax.config.validation import validate
from bert_jax.errors import WorkdirInUse
from bert_jax.model import BertForPreTraining, flops
from bert_jax.parallel import sharding
from bert_jax.state.best import BestParams
from bert_jax.state.checkpointer import Checkpointer
from bert_jax.state.optimizer import make_optimizer
from bert_jax.state.train_state import TrainState, state_shardings
from bert_jax.state.workdir_lock import locked
from bert_jax.training.nonfinite import NonFiniteStreak, TrainingDiverged
from bert_jax.training.objective import Batches, Evaluator, Objective, TrainData
from bert_jax.training.phases import PhasedShards, check_shards
from bert_jax.training.preemption import PreemptionWatch
from bert_jax.training.pretraining import PretrainingEvaluation, PretrainingObjective
from bert_jax.training.progress import ProgressReporter, interval_means, recorded_reports
from bert_jax.training.resume import resume
from bert_jax.training.step import train_step
from input_pipeline.progress import Progress, show_logs

__all__ = ["TrainingDiverged", "jit_train_step", "train", "train_and_evaluate"]

logger = logging.getLogger("bert_jax")

Report = Callable[[dict[str, float]], None]


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | os.PathLike, *,
                       on_report: Report | None = None) -> dict[str, float]:
    """Pretrains from `config` in `workdir`, resuming from its latest checkpoint if any.

    Returns the metrics of the last logged step and of the final evaluation (if `eval_files`).
    `on_report` is called with the metrics of every logged training interval.
    """
    validate(config, jax.device_count(), jax.process_count())
    run, data = RunConfig.from_config(config), PretrainingData.from_config(config)
    check_shards(data)
    objective = PretrainingObjective.for_data(BertForPreTraining(run.model), data)
    evaluator = PretrainingEvaluation(objective, data) if data.eval_files else None
    return train(run, objective, PhasedShards(data), workdir, evaluator=evaluator, on_report=on_report)


def train(run: RunConfig, objective: Objective, data: TrainData, workdir: str | os.PathLike, *,
          evaluator: Evaluator | None = None, on_report: Report | None = None) -> dict[str, float]:
    """Trains `objective` on `data` as `run` says, in `workdir`, resuming from its latest
    checkpoint if any; evaluates with `evaluator` every `run.loop.eval_every` steps and at the
    end, keeping the best parameters by `run.checkpoints.best_metric` (`state.best`).

    Returns the metrics of the last logged step ("train_" + name) and of the final evaluation
    ("eval_" + name), or with "preempted_at_step" when a SIGTERM stopped it early. `on_report`
    is called with the metrics of every logged training interval.
    """
    workdir = os.fspath(workdir)
    show_logs()  # a notebook or a script that configured no logging sees the run's lines too
    mesh = sharding.make_mesh(dict(run.mesh.shape))
    optimizer, schedule = make_optimizer(run.optimizer, run.loop.num_steps)
    shardings = state_shardings(objective.init_params, optimizer, mesh, run.mesh.rules)
    with contextlib.ExitStack() as resources:
        # Before anything is written (the checkpointer removes unfinished saves, config.json is
        # replaced): a second run in this directory stops here, naming the one that holds it.
        resources.enter_context(hold_workdir(workdir))
        checkpointer = resources.enter_context(_closed_after(Checkpointer(
            workdir, max_to_keep=run.checkpoints.keep, cleanup_tmp_directories=True)))
        start_step, state, batches = resume(checkpointer, run, objective.init_params, data, optimizer, shardings)
        if start_step >= run.loop.num_steps:
            finished = _finished_results(workdir, run.loop.num_steps, evaluator is not None)
            if finished is not None:
                return finished
        if jax.process_index() == 0:  # after `resume` has accepted the config
            save_config(run.user_config, os.path.join(workdir, "config.json"))
        num_params = sum(x.size for x in jax.tree.leaves(state.params))
        logger.info("model: %s parameters; mesh %s over %d devices (%s)", f"{num_params:,}",
                    dict(mesh.shape), jax.device_count(), jax.devices()[0].device_kind)
        peak = run.loop.peak_flops_per_device or flops.peak_flops(jax.devices()[0].device_kind)
        reporter = resources.enter_context(contextlib.closing(ProgressReporter(
            workdir, run.loop.num_steps, start_step, run.loop.global_batch_size, 0.0,
            peak * jax.device_count() if peak else None, is_main_process=jax.process_index() == 0,
            report_to=run.loop.report_to)))
        reporter.write_config(run.user_config)
        evaluation = None
        if evaluator is not None:
            best = None
            if run.checkpoints.best_metric:
                best = resources.enter_context(contextlib.closing(
                    BestParams(workdir, run.checkpoints.best_metric, run.checkpoints.best_mode)))
            evaluation = Evaluation(evaluator, mesh, run, shardings.params, reporter, best)
        steps = Steps(run, objective, data, mesh, checkpointer, reporter, evaluation, on_report,
                      jit_train_step(objective, optimizer, schedule, run.loop, mesh, run.mesh.rules, shardings))
        if start_step < run.loop.num_steps:
            if evaluation is not None and evaluation.best is not None and steps.evaluates_after(start_step):
                # This step's checkpoint may have been saved before its evaluation was made:
                # evaluated again, on the same parameters, the best is chosen among the same
                # evaluations as in a run that never stopped.
                evaluation(state.params, start_step)
            with contextlib.closing(PreemptionWatch()) as preemption:
                state, preempted_at = steps.run(state, batches, start_step, preemption)
        else:
            logger.info("step %d reached: training is complete; its final evaluation was not "
                        "recorded, so it is made now", run.loop.num_steps)
            preempted_at = None
        checkpointer.wait_until_finished()
        results = {f"train_{k}": v for k, v in steps.last.items()}
        if preempted_at is not None:
            return results | {"preempted_at_step": preempted_at}
        if evaluation is not None:
            results |= {f"eval_{k}": v for k, v in evaluation(state.params, int(state.step)).items()}
        return results


def _finished_results(workdir: str, num_steps: int, evaluates: bool) -> dict[str, float] | None:
    """The results of a run that has nothing left to do: trained to `num_steps` and, if it
    `evaluates`, its final evaluation recorded in `metrics.jsonl`; read back from there (empty on
    a process that cannot read it). None when the final evaluation is still to be made (a run
    stopped between its last checkpoint and that evaluation, a bucket without metrics.jsonl)."""
    reports = recorded_reports(workdir, num_steps) if jax.process_index() == 0 else {}
    done = not evaluates or "eval" in reports
    if jax.process_count() > 1:  # process 0's file decides for all: the evaluation is a collective
        done = bool(multihost_utils.broadcast_one_to_all(np.array(done)))
        reports = recorded_reports(workdir, num_steps)
    if not done:
        return None
    logger.info("step %d reached: training is complete%s in %s; nothing to do (its metrics are in "
                "metrics.jsonl and TensorBoard)", num_steps, " and evaluated" if evaluates else "", workdir)
    return {f"{prefix}_{name}": value for prefix in ("train", "eval")
            for name, value in reports.get(prefix, {}).items()}


@contextlib.contextmanager
def hold_workdir(workdir: str) -> Iterator[None]:
    """Holds the lock of `workdir` (`state.workdir_lock`) for the whole job: process 0 takes it,
    and if it could not, every process raises before writing anything (process 0 its reason,
    the others naming process 0). A collective: every process must enter it."""
    holding = contextlib.ExitStack()
    error = None
    if jax.process_index() == 0:
        try:
            holding.enter_context(locked(workdir))
        except Exception as e:  # noqa: BLE001 - the other processes must hear of it before it is raised
            error = e
    if jax.process_count() > 1:
        taken = bool(np.all(multihost_utils.process_allgather(np.array(error is None))))
        if not taken and error is None:
            error = WorkdirInUse(f"process 0 could not lock the work directory {workdir} (its log "
                                 "says why); this process stops too.")
    if error is not None:
        raise error
    with holding:
        yield


def jit_train_step(objective: Objective, optimizer: optax.GradientTransformation, schedule: optax.Schedule,
                   loop: LoopConfig, mesh: jax.sharding.Mesh, rules: Any, shardings: TrainState) -> Callable:
    """`train_step` jitted for `mesh`: the state in `shardings` (donated), the batch split over the
    data-parallel axes, activations constrained by `rules`, metrics replicated."""
    step = functools.partial(train_step, objective=objective, optimizer=optimizer, schedule=schedule,
                             seed=loop.seed, grad_accum_steps=loop.grad_accum_steps, rng_impl=loop.rng_impl)
    return jax.jit(sharding.with_logical_rules(step, mesh, rules),
                   in_shardings=(shardings, sharding.batch_sharding(mesh)),
                   out_shardings=(shardings, sharding.replicated(mesh)), donate_argnums=0)


def _global_batch(local_batch: dict[str, np.ndarray], mesh) -> dict[str, jax.Array]:
    """Assembles the processes' local batches into one global array per feature."""
    target = sharding.batch_sharding(mesh)
    # The global shape, stated, makes JAX refuse a layout where the processes' rows would not
    # add up to it instead of silently treating each process's rows as the whole batch.
    return {k: jax.make_array_from_process_local_data(target, v, (len(v) * jax.process_count(), *v.shape[1:]))
            for k, v in local_batch.items()}


class Evaluation:
    """The evaluator jitted for the mesh, its results reported, and the best parameters kept."""

    def __init__(self, evaluator: Evaluator, mesh: jax.sharding.Mesh, run: RunConfig, param_shardings: Any,
                 reporter: ProgressReporter, best: BestParams | None):
        self.evaluator, self.mesh, self.reporter, self.best = evaluator, mesh, reporter, best
        self.max_batches = run.loop.eval_steps
        self.user_config = run.user_config
        self.outputs = jax.jit(sharding.with_logical_rules(evaluator.outputs, mesh, run.mesh.rules),
                               in_shardings=(param_shardings, sharding.batch_sharding(mesh)),
                               out_shardings=sharding.replicated(mesh))

    def __call__(self, params: Any, step: int) -> dict[str, float]:
        """Evaluates `params` (those of `step`) over `loop.eval_steps` batches (all if 0),
        reports the metrics and keeps the parameters if they are the best so far."""
        metrics = self.evaluator.metrics(self._outputs(params))
        self.reporter.report(step, metrics, prefix="eval")
        if self.best is not None and self.best.update(step, metrics, params, self.user_config):
            logger.info("step %d: the best %s so far (%s); its parameters are kept in %s", step,
                        self.best.metric, metrics[self.best.metric], self.best.directory)
        return metrics

    def _outputs(self, params: Any) -> Iterator[Any]:
        for i, batch in enumerate(self.evaluator.batches()):
            if self.max_batches and i >= self.max_batches:
                break
            yield jax.device_get(self.outputs(params, _global_batch(batch, self.mesh)))


class Steps:
    """The loop over steps and what happens between them: checkpoints, metrics fetched from the
    device now and then, reports, evaluations, stage switches and preemption."""

    def __init__(self, run: RunConfig, objective: Objective, data: TrainData, mesh: jax.sharding.Mesh,
                 checkpointer: Checkpointer, reporter: ProgressReporter, evaluation: Evaluation | None,
                 on_report: Report | None, step_fn: Callable):
        self.loop = run.loop
        self.checkpoint_every = run.checkpoints.every
        self.user_config = run.user_config
        self.objective, self.data, self.mesh, self.step_fn = objective, data, mesh, step_fn
        self.checkpointer, self.reporter = checkpointer, reporter
        self.evaluation, self.on_report = evaluation, on_report
        self.nonfinite = NonFiniteStreak(run.loop.max_consecutive_nonfinite)
        self.pending: list[dict[str, jax.Array]] = []  # on the device, not yet fetched
        self.interval: list[dict[str, float]] = []     # fetched, not yet logged
        self.last: dict[str, float] = {}               # the last report
        self.programs: dict[Hashable, Callable] = {}   # the step compiled, by stage and batch shapes
        self.progress: Progress | None = None          # while `run` runs

    def evaluates_after(self, step: int) -> bool:
        """Whether an evaluation follows `step` (the final one excepted)."""
        every = self.loop.eval_every
        return (self.evaluation is not None and bool(every) and 0 < step < self.loop.num_steps
                and step % every == 0)

    def run(self, state: TrainState, batches: Batches, start_step: int,
            preemption: PreemptionWatch) -> tuple[TrainState, int | None]:
        """Trains from `start_step` to the last step, or to the step a preemption stops at;
        returns the state and that step (None if none)."""
        num_steps = self.loop.num_steps
        stage = self.data.stage_at(start_step)
        batch = _global_batch(next(batches), self.mesh)
        # A bar (on a terminal or in a notebook) and the closing summary; the reporter logs the lines.
        with Progress("pretrain", num_steps, unit="steps", initial=start_step, log_lines=False,
                      counts=("sequences",), shown=self.reporter.is_main) as self.progress:
            for step in range(start_step + 1, num_steps + 1):
                state, metrics = self._program(stage, state, batch, step - 1)(state, batch)
                self.pending.append(metrics)
                self.progress.update(1, sequences=self.loop.global_batch_size)
                preempted = preemption.reached(step)
                if step % self.checkpoint_every == 0 or step == num_steps or preempted:
                    # Saved before the next batch is read, so the data position matches `step`.
                    self.checkpointer.save(step, state, self.user_config, batches, self.data.position(stage))
                log_now = step % self.loop.log_every == 0 or step == num_steps or preempted
                self._fetch(step, everything=log_now)
                if preempted:
                    self._report(step)
                    self.checkpointer.wait_until_finished()
                    self.progress.close(f"preempted at step {step}")
                    logger.warning("preempted: the checkpoint of step %d is saved in %s; rerun the "
                                   "same command to resume", step, self.checkpointer.directory)
                    return state, step
                if step < num_steps:
                    if self.data.stage_at(step) != stage:
                        stage = self.data.stage_at(step)
                        logger.info("step %d: switching to %s data", step, stage)
                        batches = self.data.batches(stage)
                        batch = _global_batch(next(batches), self.mesh)
                    else:
                        batch = _global_batch(next(batches), self.mesh)  # Overlaps with the device's work.
                if log_now:
                    self._report(step)
                if self.evaluates_after(step):
                    self.evaluation(state.params, step)
                    self.reporter.restart_clock(step)
            self.progress.close(f"checkpoints in {self.checkpointer.directory}, metrics in "
                                f"{os.path.join(self.checkpointer.workdir, 'metrics.jsonl')} and TensorBoard")
        return state, None

    def _program(self, stage: Hashable, state: TrainState, batch: dict[str, jax.Array], step: int) -> Callable:
        """The step compiled for `stage` and the shapes of `batch`, compiled when first met (a
        stage's batches may come in several shapes: length buckets) and reused after; `step` is
        the last step done, where the throughput clock restarts after a compilation."""
        key = (stage, tuple(sorted((name, value.shape) for name, value in batch.items())))
        if key not in self.programs:
            self.programs[key] = self._compile(stage, state, batch)
            self.reporter.restart_clock(step)
        return self.programs[key]

    def _compile(self, stage: Hashable, state: TrainState, batch: dict[str, jax.Array]) -> Callable:
        """Compiles the step for the stage's shapes and points the reporter's FLOP count at it."""
        self.reporter.flops_per_step = self.objective.train_flops(stage, self.loop.global_batch_size)
        compile_start = time.perf_counter()
        compiled = self.step_fn.lower(state, batch).compile()
        compile_seconds = time.perf_counter() - compile_start
        shapes = sorted({tuple(value.shape) for value in batch.values() if value.ndim > 1})
        logger.info("compiled the train step for %s (batch shapes %s) in %.1f s", stage,
                    ", ".join(map(str, shapes)), compile_seconds)
        self.reporter.write_scalars(int(state.step), {"compile_seconds": compile_seconds}, "train")
        return compiled

    def _fetch(self, step: int, everything: bool) -> None:
        """Brings the pending metrics to the host when a report is due, or when enough have piled
        up: fetching only now and then keeps the host from waiting on the device every step,
        and often enough to stop after K bad steps in a row, not later."""
        if everything or len(self.pending) >= self.nonfinite.limit:
            fetched = jax.device_get(self.pending)
            self.pending = []
            self.nonfinite.update(fetched, step, self.checkpointer)
            self.interval += fetched

    def _report(self, step: int) -> None:
        self.last = self.reporter.report(step, interval_means(self.interval))
        if self.progress is not None and "loss" in self.last:
            self.progress.describe(f"loss {self.last['loss']:.4f}")
        if self.on_report is not None:
            self.on_report(self.last | {"step": step})
        self.interval = []


@contextlib.contextmanager
def _closed_after(resource):
    """Closes `resource` on the way out. When an error is already on its way, that error is the
    one reported, not a failure to close (a checkpointer whose last save failed raises again)."""
    try:
        yield resource
    except BaseException:
        with contextlib.suppress(Exception):
            resource.close()
        raise
    resource.close()
