"""The pretraining loop: mesh, data, sharded state, the jitted step, logging, evaluation and
checkpoints. Reads top to bottom; the step itself is the pure function in `bert_jax.train_step`."""

from __future__ import annotations

import functools
import logging
import os
import time
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
    return sharding.logical_to_sharding(specs, mesh)


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


def _reader_config(config: ml_collections.ConfigDict, files: str, repeat: bool,
                   max_seq_length: int, max_predictions_per_seq: int):
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
        batch_size=config.train.global_batch_size // jax.process_count(),
        max_seq_length=max_seq_length, max_predictions_per_seq=max_predictions_per_seq,
        seed=config.train.seed, shuffle_buffer=config.data.shuffle_buffer, repeat=repeat,
        dynamic_masking=masking)


def train_batches(config: ml_collections.ConfigDict, phase: int):
    """This process's part of every global batch of `phase`, from the start of its stream
    (`DataIterator.restore` moves it to a checkpoint's position)."""
    from input_pipeline.reader import DataIterator

    files, seq, preds = phase_shapes(config, phase)
    return DataIterator(_reader_config(config, files, True, seq, preds),
                        jax.process_index(), jax.process_count())


def data_position(config: ml_collections.ConfigDict, phase: int) -> dict:
    """What a saved data position means; a checkpoint's position is used only if it matches."""
    files, seq, preds = phase_shapes(config, phase)
    return {"phase": phase, "files": files, "max_seq_length": seq, "max_predictions_per_seq": preds,
            "global_batch_size": config.train.global_batch_size, "seed": config.train.seed,
            "shuffle_buffer": config.data.shuffle_buffer, "dynamic_masking": config.data.dynamic_masking}


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
                           dynamic_masking=config.data.dynamic_masking)
    workdir = os.fspath(workdir)
    remote_files.makedirs(workdir)
    if jax.process_index() == 0:
        experiment_config.save_config(config, os.path.join(workdir, "config.json"))

    mesh = sharding.make_mesh(config.mesh.shape)
    model_config = experiment_config.bert_config(config)
    model = BertForPreTraining(model_config)
    optimizer, schedule = make_optimizer(config.optimizer, config.train.num_steps)
    shardings = state_shardings(model, optimizer, config, mesh)

    checkpointer = Checkpointer(workdir, max_to_keep=config.train.keep_checkpoints)
    start_step = checkpointer.latest_step()
    if start_step is None:
        state = create_state(model, optimizer, config, shardings)
        start_step = 0
    else:
        logger.info("resuming from the checkpoint of step %d in %s", start_step, checkpointer.directory)
        state = checkpointer.restore(start_step, abstract_state(model, optimizer, config, shardings))
    num_params = sum(x.size for x in jax.tree.leaves(state.params))
    logger.info("model: %s parameters; mesh %s over %d devices (%s)", f"{num_params:,}",
                dict(mesh.shape), jax.device_count(), jax.devices()[0].device_kind)

    batch_shard = sharding.batch_sharding(mesh)
    step_fn = jax.jit(
        functools.partial(train_step, model=model, optimizer=optimizer, schedule=schedule,
                          seed=config.train.seed, grad_accum_steps=config.train.grad_accum_steps,
                          rng_impl=config.train.rng_impl),
        in_shardings=(shardings, batch_shard), out_shardings=(shardings, sharding.replicated(mesh)),
        donate_argnums=0)
    eval_fn = jax.jit(functools.partial(eval_step, model=model),
                      in_shardings=(shardings.params, batch_shard), out_shardings=sharding.replicated(mesh))

    phase = phase_at(config, start_step)
    batches = train_batches(config, phase)
    if start_step:
        checkpointer.restore_data(start_step, batches, data_position(config, phase))
    peak = config.train.peak_flops_per_device or flops.peak_flops(jax.devices()[0].device_kind)
    reporter = ProgressReporter(
        workdir, config.train.num_steps, start_step, config.train.global_batch_size, 0, 0.0,
        peak * jax.device_count() if peak else None, is_main_process=jax.process_index() == 0)
    config_dict = config.to_dict()

    def compile_phase(phase: int, batch: dict[str, jax.Array]):
        """Compiles the step for the phase's shapes and points the reporter's FLOP count at it."""
        _, seq, preds = phase_shapes(config, phase)
        reporter.seq_length = seq
        reporter.flops_per_step = flops.train_flops_per_step(
            model_config, config.train.global_batch_size, seq, preds)
        compile_start = time.perf_counter()
        compiled = step_fn.lower(state, batch).compile()
        compile_seconds = time.perf_counter() - compile_start
        logger.info("compiled the phase-%d train step (sequence length %d) in %.1f s",
                    phase, seq, compile_seconds)
        reporter.write_scalars(int(state.step), {"compile_seconds": compile_seconds}, "train")
        return compiled

    last: dict[str, float] = {}
    if start_step < config.train.num_steps:
        batch = _global_batch(next(batches), mesh)
        compiled = compile_phase(phase, batch)
        reporter.restart_clock(start_step)
        pending: list[dict[str, jax.Array]] = []
        for step in range(start_step + 1, config.train.num_steps + 1):
            state, metrics = compiled(state, batch)
            pending.append(metrics)
            if step % config.train.checkpoint_every == 0 or step == config.train.num_steps:
                # Saved before the next batch is read, so the data position matches `step`.
                checkpointer.save(step, state, config_dict, batches, data_position(config, phase))
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
            if step % config.train.log_every == 0 or step == config.train.num_steps:
                # Fetching metrics only here keeps the host from waiting on the device every step.
                fetched = jax.device_get(pending)
                last = {k: float(np.mean([m[k] for m in fetched])) for k in fetched[0]}
                last = reporter.report(step, last)
                if on_report is not None:
                    on_report(last | {"step": step})
                pending = []
            if config.data.eval_files and config.train.eval_every and step % config.train.eval_every == 0 \
                    and step < config.train.num_steps:
                reporter.report(step, evaluate(state.params, config, eval_fn, mesh), prefix="eval")
                reporter.restart_clock(step)
    else:
        logger.info("step %d reached: training is complete", config.train.num_steps)

    checkpointer.wait_until_finished()
    checkpointer.close()
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
