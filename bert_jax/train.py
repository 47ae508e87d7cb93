"""The pretraining loop: mesh, data, sharded state, the jitted step, logging, evaluation and
checkpoints. Reads top to bottom; the step itself is the pure function in `bert_jax.train_step`."""

from __future__ import annotations

import functools
import json
import logging
import os
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from bert_jax import experiment_config, flops, sharding
from bert_jax.checkpointing import Checkpointer
from bert_jax.errors import RunStopped
from bert_jax.preemption import PreemptionWatch
from bert_jax.model import BertForPreTraining
from bert_jax.optimizer import make_optimizer
from bert_jax.progress import ProgressReporter
from bert_jax.train_step import TrainState, eval_step, summarize, train_step
from input_pipeline import remote_files

logger = logging.getLogger("bert_jax")


def _dummy_batch(config: ml_collections.ConfigDict, batch_size: int = 1) -> dict[str, jax.Array]:
    seq, preds = config.data.max_seq_length, config.data.max_predictions_per_seq
    ids = jnp.zeros((batch_size, seq), jnp.int32)
    return {"input_ids": ids, "input_mask": ids, "segment_ids": ids,
            "masked_lm_positions": jnp.zeros((batch_size, preds), jnp.int32)}


def init_params(model: BertForPreTraining, config: ml_collections.ConfigDict, rng: jax.Array) -> Any:
    """Parameters with their logical-axis annotations (`nn.Partitioned` boxes)."""
    batch = _dummy_batch(config)
    return model.init(rng, batch["input_ids"], batch["input_mask"], batch["segment_ids"],
                      batch["masked_lm_positions"])["params"]


def state_shardings(model: BertForPreTraining, optimizer: optax.GradientTransformation,
                    config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh) -> TrainState:
    """Where every array of the train state lives: parameters by their logical axes and the rules
    in `bert_jax.sharding`; optimizer moments like the parameters they track."""
    boxed = jax.eval_shape(functools.partial(init_params, model, config), jax.random.key(0))
    param_specs = nn.get_partition_spec(boxed)
    abstract_params = nn.unbox(boxed)
    opt_specs = optax.tree_map_params(
        optimizer, lambda _, spec: spec, jax.eval_shape(optimizer.init, abstract_params), param_specs,
        transform_non_params=lambda _: jax.sharding.PartitionSpec(),
        is_leaf=lambda x: isinstance(x, jax.sharding.PartitionSpec))
    specs = TrainState(step=jax.sharding.PartitionSpec(), params=param_specs, opt_state=opt_specs)
    return sharding.logical_to_sharding(specs, mesh, sharding.config_rules(config))


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


def abstract_state(model: BertForPreTraining, optimizer: optax.GradientTransformation,
                   config: ml_collections.ConfigDict, shardings: TrainState) -> TrainState:
    """Shapes, dtypes and shardings of the train state, without allocating it (for restoring)."""
    shapes = jax.eval_shape(functools.partial(_init_state, model, optimizer, config), jax.random.key(0))
    return jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh), shapes, shardings)


def create_state(model: BertForPreTraining, optimizer: optax.GradientTransformation,
                 config: ml_collections.ConfigDict, shardings: TrainState) -> TrainState:
    """A freshly initialized train state, created directly in its sharded layout."""
    init = functools.partial(_init_state, model, optimizer, config)
    return jax.jit(init, out_shardings=shardings)(jax.random.key(config.train.seed))


def _init_state(model: BertForPreTraining, optimizer: optax.GradientTransformation,
                config: ml_collections.ConfigDict, rng: jax.Array) -> TrainState:
    params = nn.unbox(init_params(model, config, rng))
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=optimizer.init(params))


def phase2_start_step(config: ml_collections.ConfigDict) -> int | None:
    """The first step of phase 2 (long sequences), or None for a one-phase run."""
    if not config.data.phase2_train_files:
        return None
    return round(config.data.phase2_start_fraction * config.train.num_steps)


def phase_at(config: ml_collections.ConfigDict, step: int) -> int:
    """The phase (1 or 2) whose data the step after `step` trains on."""
    start = phase2_start_step(config)
    return 2 if start is not None and step >= start else 1


def phase_shapes(config: ml_collections.ConfigDict, phase: int) -> tuple[str, int, int]:
    """(shard files, sequence length, masked predictions) of `phase`."""
    data = config.data
    if phase == 2:
        return data.phase2_train_files, data.phase2_max_seq_length, data.phase2_max_predictions_per_seq
    return data.train_files, data.max_seq_length, data.max_predictions_per_seq


def predictions_per_row(config: ml_collections.ConfigDict, phase: int) -> int:
    """Masked-LM predictions in one row of `phase`'s batches: a packed row has room for one
    more per sequence, the rounding of each sequence's 15%."""
    _, _, preds = phase_shapes(config, phase)
    return preds + config.data.max_sequences_per_pack if config.data.packing else preds


def _reader_config(config: ml_collections.ConfigDict, files: str, repeat: bool,
                   max_seq_length: int, max_predictions_per_seq: int, batch_size: int | None = None):
    from input_pipeline.masking import MaskingConfig
    from input_pipeline.reader import ReaderConfig
    from input_pipeline.tokenization import load_tokenizer

    masking = None
    if config.data.dynamic_masking:
        masking = MaskingConfig.from_tokenizer(
            load_tokenizer(config.data.vocab_file, do_lower_case=config.data.do_lower_case),
            masked_lm_prob=config.data.masked_lm_prob, max_predictions_per_seq=max_predictions_per_seq,
            whole_word_masking=config.data.whole_word_masking)
    return ReaderConfig(
        file_patterns=tuple(p for p in files.split(",") if p),
        batch_size=batch_size or config.train.global_batch_size // jax.process_count(),
        max_seq_length=max_seq_length, max_predictions_per_seq=max_predictions_per_seq,
        seed=config.train.seed, shuffle_buffer=config.data.shuffle_buffer, repeat=repeat,
        dynamic_masking=masking, vocab_size=config.model.vocab_size)


def train_batches(config: ml_collections.ConfigDict, phase: int):
    """This process's part of every global batch of `phase`, from the start of its stream
    (`restore` moves it to a checkpoint's position); packed rows with `data.packing`."""
    from input_pipeline.packing import PackedBatches, PackingConfig
    from input_pipeline.reader import DataIterator

    files, seq, preds = phase_shapes(config, phase)
    if not config.data.packing:
        return DataIterator(_reader_config(config, files, True, seq, preds),
                            jax.process_index(), jax.process_count())
    windows = DataIterator(_reader_config(config, files, True, seq, preds, config.data.packing_window),
                           jax.process_index(), jax.process_count())
    packing = PackingConfig(config.data.max_sequences_per_pack, predictions_per_row(config, phase))
    return PackedBatches(windows, config.train.global_batch_size // jax.process_count(), seq, packing,
                         seed=config.train.seed)


def data_position(config: ml_collections.ConfigDict, phase: int) -> dict:
    """What a saved data position means; a checkpoint's position is used only if it matches."""
    files, seq, preds = phase_shapes(config, phase)
    return {"phase": phase, "files": files, "max_seq_length": seq, "max_predictions_per_seq": preds,
            "global_batch_size": config.train.global_batch_size, "seed": config.train.seed,
            "shuffle_buffer": config.data.shuffle_buffer, "dynamic_masking": config.data.dynamic_masking,
            **({"max_sequences_per_pack": config.data.max_sequences_per_pack,
                "packing_window": config.data.packing_window} if config.data.packing else {})}


def eval_batches(config: ml_collections.ConfigDict) -> Iterator[dict[str, np.ndarray]]:
    """One pass over the held-out shards (phase-1 shapes), the same number of batches on every
    process; padding examples have weight 0 in `example_weights`."""
    from input_pipeline.reader import DataIterator

    return DataIterator(_reader_config(config, config.data.eval_files, False,
                                       config.data.max_seq_length, config.data.max_predictions_per_seq),
                        jax.process_index(), jax.process_count())


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


def resume(checkpointer: Checkpointer, config: ml_collections.ConfigDict, model: BertForPreTraining,
           optimizer: optax.GradientTransformation, shardings: TrainState):
    """(step, train state, data iterator) to start from: the newest checkpoint that restores,
    else a fresh state at step 0 (holding the weights of `train.init_from`, if set).

    The saved config must be compatible (`experiment_config.check_resumable`). A checkpoint that
    fails to restore on any process is set aside on all of them, with a warning naming it, and
    the one before it is tried. Finally every process checks that all agree on the step and the
    data position.
    """
    abstract = abstract_state(model, optimizer, config, shardings)
    start_step, state, batches, data_restored = 0, None, None, False
    steps = checkpointer.all_steps()
    _check_processes_agree({"newest checkpoint": steps[0] if steps else -1})
    for step in steps:
        error = None
        try:
            saved_config = checkpointer.restore_config(step)
        except Exception as e:  # noqa: BLE001 - any failure to read means a damaged checkpoint
            error = e
        if _all_processes(error is None):  # every process makes the same collective calls
            experiment_config.check_resumable(saved_config, config, checkpointer.workdir)
            try:
                state = checkpointer.restore(step, abstract)
                phase = phase_at(config, step)
                batches = train_batches(config, phase)
                # At the phase switch the new phase's stream starts afresh, as it does unbroken.
                data_restored = (phase_at(config, step - 1) != phase or
                                 checkpointer.restore_data(step, batches, data_position(config, phase)))
            except Exception as e:  # noqa: BLE001
                error = e
        if _all_processes(error is None):
            logger.info("resuming from the checkpoint of step %d in %s", step, checkpointer.directory)
            start_step = step
            break
        checkpointer.set_aside(step, f"{type(error).__name__}: {error}"[:500] if error
                               else "it failed to restore on another process")
        state = batches = None
    if state is None:
        state = create_state(model, optimizer, config, shardings)
        if config.train.get("init_from"):
            # Only a fresh run starts from imported weights; a resumed one has its own.
            from bert_jax.checkpoint_import import initialize_params
            state = state.replace(params=initialize_params(config.train.init_from, state.params,
                                                           shardings.params, model.config))
        batches = train_batches(config, phase_at(config, 0))
    position = json.dumps(data_position(config, phase_at(config, start_step)), sort_keys=True)
    # 31 bits of the CRC: the all-gather narrows integers to int32 (JAX without x64).
    _check_processes_agree({"step": start_step, "data position": zlib.crc32(position.encode()) & 0x7FFFFFFF,
                            "data position restored": data_restored})
    return start_step, state, batches


def _all_processes(ok: bool) -> bool:
    """Whether `ok` holds on every process (a collective: every process must call it)."""
    if jax.process_count() == 1:
        return ok
    from jax.experimental import multihost_utils
    return bool(np.all(multihost_utils.process_allgather(np.array(ok))))


def _check_processes_agree(values: dict[str, int]) -> None:
    """Raises unless every process holds the same `values`: processes that resumed from other
    checkpoints or data positions (another work directory, another config) would silently train
    on inconsistent state. A collective: every process must call it."""
    if jax.process_count() == 1:
        return
    from jax.experimental import multihost_utils
    everyone = np.asarray(multihost_utils.process_allgather(np.array(list(values.values()), np.int64)))
    if not (everyone == everyone[0]).all():
        per_process = "; ".join(f"process {i}: {dict(zip(values, row.tolist()))}" for i, row in enumerate(everyone))
        raise RuntimeError(f"the processes do not agree on {', '.join(values)} ({per_process}); every "
                           "process must see the same work directory and config.")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | os.PathLike, *,
                       on_report: Callable[[dict[str, float]], None] | None = None) -> dict[str, float]:
    """Pretrains from `config` in `workdir`, resuming from its latest checkpoint if any.

    Returns the metrics of the last logged step and of the final evaluation (if `eval_files`).
    `on_report` is called with the metrics of every logged training interval.
    """
    from input_pipeline.reader import check_shards_match

    experiment_config.validate(config, jax.device_count(), jax.process_count())
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
    model_config = experiment_config.bert_config(config)
    model = BertForPreTraining(model_config)
    optimizer, schedule = make_optimizer(config.optimizer, config.train.num_steps)
    shardings = state_shardings(model, optimizer, config, mesh)

    checkpointer = Checkpointer(workdir, max_to_keep=config.train.keep_checkpoints,
                                cleanup_tmp_directories=True)
    start_step, state, batches = resume(checkpointer, config, model, optimizer, shardings)
    if jax.process_index() == 0:  # after `resume` has accepted the config
        experiment_config.save_config(config, os.path.join(workdir, "config.json"))
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


def load_trained_params(workdir: str | os.PathLike, step: int | None = None
                        ) -> tuple[Any, ml_collections.ConfigDict, int]:
    """The parameters and config of a checkpoint in `workdir` (the latest if `step` is None),
    on this host's first device, for export and inference."""
    checkpointer = Checkpointer(workdir, async_save=False)
    try:
        step = checkpointer.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {checkpointer.directory}; run "
                                    "`bert-jax pretrain` with this work directory first.")
        config = ml_collections.ConfigDict(checkpointer.restore_config(step))
        mesh = sharding.make_mesh({"data": 1, "fsdp": 1, "tensor": 1}, jax.local_devices()[:1])
        model = BertForPreTraining(experiment_config.bert_config(config))
        optimizer, _ = make_optimizer(config.optimizer, config.train.num_steps)
        shardings = state_shardings(model, optimizer, config, mesh)
        state = checkpointer.restore(step, abstract_state(model, optimizer, config, shardings))
    finally:
        checkpointer.close()
    return state.params, config, step
