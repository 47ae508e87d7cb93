"""Checking a run configuration before anything is compiled: every error names the field, its
value and the rule; and whether a work directory's saved config can be continued by a new one.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections

from bert_jax.config.defaults import REPORT_TO, RNG_IMPLS, report_destinations
from bert_jax.model import BertConfig, SentenceConfig
from bert_jax.parallel.sharding import (
    MESH_AXES,
    data_parallel_axes_size,
    logical_rules,
    mesh_axes_of,
    mesh_shape,
)
from input_pipeline import remote_files
from input_pipeline.shards.manifest import file_sha256


def config_rules(config: ml_collections.ConfigDict) -> tuple[tuple[str, Any], ...]:
    """The logical-axis rules of a run config (`mesh.rules` over `parallel.sharding`'s defaults;
    configs saved before `mesh.rules` existed get the defaults)."""
    rules = config.mesh.get("rules")
    return logical_rules(None if rules is None else dict(rules))


def bert_config(config: ml_collections.ConfigDict) -> BertConfig:
    known = {f.name for f in dataclasses.fields(BertConfig)}
    unknown = set(config.model.keys()) - known
    if unknown:
        raise ValueError(f"model has unknown fields {sorted(unknown)}; known: {sorted(known)}.")
    return BertConfig(**config.model.to_dict())


# A Hugging Face repo id, `name` or `owner/name`, optionally `@revision` (huggingface_hub's rules:
# letters, digits, "-", "_", "."; neither "--" nor ".." ; at most 96 characters a part).
_HUB_REPO_ID = re.compile(r"(?!.*(--|\.\.))[A-Za-z0-9][\w.-]{0,95}(/[A-Za-z0-9][\w.-]{0,95})?(@[\w./-]+)?")


def looks_like_hub_repo_id(name: str) -> bool:
    """Whether `name` can be a Hugging Face model repo id (`google-bert/bert-base-uncased`),
    optionally with `@revision`: what `--from`, `--model` and `train.init_from` look up in the
    Hugging Face cache when no such path exists."""
    return bool(_HUB_REPO_ID.fullmatch(name)) and not name.endswith((".", "-"))


def sentence_config(config: ml_collections.ConfigDict) -> SentenceConfig:
    """The run's sentence-embedding head (the defaults for a run saved before it had one)."""
    fields = config.sentence.to_dict() if "sentence" in config else {}
    known = {f.name for f in dataclasses.fields(SentenceConfig)}
    unknown = set(fields) - known
    if unknown:
        raise ValueError(f"sentence has unknown fields {sorted(unknown)}; known: {sorted(known)}.")
    return SentenceConfig(**fields)


def validate(config: ml_collections.ConfigDict, num_devices: int, num_processes: int = 1) -> None:
    """Raises a ValueError naming every field that breaks a rule, before anything is compiled."""
    if "task" in config:
        raise ValueError("this is a fine-tuning config (it has a task section): run it with "
                         "`bert-jax finetune --config ...`, not `bert-jax pretrain`.")
    errors: list[str] = []
    try:
        model = bert_config(config)
    except (ValueError, TypeError) as e:
        errors.append(str(e))
        model = None
    try:
        sentence_config(config)
    except ValueError as e:
        errors.append(str(e))
    data, train, opt = config.data, config.train, config.optimizer
    errors += _phase_errors(data, "", model)
    if data.phase2_train_files:
        errors += _phase_errors(data, "phase2_", model)
        if not 0 < data.phase2_start_fraction < 1:
            errors.append(f"data.phase2_start_fraction={data.phase2_start_fraction} must be in (0, 1).")
    if data.packing:
        if data.max_sequences_per_pack < 1:
            errors.append(f"data.max_sequences_per_pack={data.max_sequences_per_pack} must be at least 1.")
        per_process = train.global_batch_size // max(num_processes, 1)
        if data.packing_window < per_process:
            errors.append(f"data.packing_window={data.packing_window} must be at least the batch of "
                          f"one process (train.global_batch_size / processes = {per_process}).")
    if data.dynamic_masking and not data.vocab_file:
        errors.append("data.dynamic_masking=True needs data.vocab_file (the reader masks with it).")
    if not 0 < data.masked_lm_prob < 1:
        errors.append(f"data.masked_lm_prob={data.masked_lm_prob} must be in (0, 1).")
    if train.num_steps < 1:
        errors.append(f"train.num_steps={train.num_steps} must be at least 1.")
    if not 0 <= opt.warmup_steps <= train.num_steps:
        errors.append(f"optimizer.warmup_steps={opt.warmup_steps} must be in [0, "
                      f"train.num_steps={train.num_steps}].")
    if opt.learning_rate <= 0:
        errors.append(f"optimizer.learning_rate={opt.learning_rate} must be positive.")
    if train.rng_impl not in RNG_IMPLS:
        errors.append(f"train.rng_impl={train.rng_impl!r} must be one of {RNG_IMPLS}.")
    unknown = [name for name in report_destinations(train.get("report_to", "")) if name not in REPORT_TO]
    if unknown:
        errors.append(f"train.report_to={train.report_to!r}: {', '.join(unknown)} unknown; name some "
                      f"of {', '.join(REPORT_TO)}, separated by commas (metrics.jsonl is always written).")
    for field in ("log_every", "checkpoint_every", "keep_checkpoints", "grad_accum_steps",
                  "max_consecutive_nonfinite"):
        if train[field] < 1:
            errors.append(f"train.{field}={train[field]} must be at least 1.")
    errors += mesh_errors(config, model, num_devices, num_processes)
    if train.global_batch_size % num_processes:
        errors.append(f"train.global_batch_size={train.global_batch_size} must be divisible by "
                      f"the number of processes {num_processes}.")
    # A Hub name is looked up in the local cache (or downloaded) when the weights are read.
    if train.get("init_from") and not (remote_files.exists_or_checkpoint_prefix(train.init_from)
                                       or looks_like_hub_repo_id(train.init_from)):
        errors.append(f"train.init_from={train.init_from!r} does not exist (a Hugging Face "
                      "directory or repo id, a Google checkpoint or a bert-jax work directory).")
    if not data.train_files:
        errors.append("data.train_files is empty: point it at the shards made by "
                      "`bert-jax create-data`.")
    if errors:
        raise ValueError("invalid config:\n  - " + "\n  - ".join(errors))


def _phase_errors(data: ml_collections.ConfigDict, prefix: str, model: BertConfig | None) -> list[str]:
    """The shapes of one phase (`prefix` "" for phase 1, "phase2_" for phase 2): its sequences
    fit the position table, and it masks at least one and at most every position."""
    errors = []
    seq, preds = data[f"{prefix}max_seq_length"], data[f"{prefix}max_predictions_per_seq"]
    if model is not None and seq > model.max_position_embeddings:
        errors.append(f"data.{prefix}max_seq_length={seq} exceeds "
                      f"model.max_position_embeddings={model.max_position_embeddings}.")
    if not 1 <= preds <= seq:
        errors.append(f"data.{prefix}max_predictions_per_seq={preds} must be in "
                      f"[1, data.{prefix}max_seq_length={seq}].")
    return errors


def mesh_errors(config: ml_collections.ConfigDict, model: BertConfig | None, num_devices: int,
                 num_processes: int) -> list[str]:
    """The mesh fits the devices and processes, and splits evenly every model axis and the
    batch that its rules shard."""
    errors = []
    train = config.train
    try:
        shape = mesh_shape(config.mesh.shape, num_devices)
        dp = data_parallel_axes_size(shape)
        if dp % num_processes:
            errors.append(f"mesh.shape={dict(config.mesh.shape)}: the data-parallel size {dp} "
                          f"(data x fsdp) must be a multiple of the number of processes "
                          f"{num_processes}, since each process feeds its own rows of the batch.")
        rules = config_rules(config)
        if model is not None:
            sized = [("num_heads", model.num_heads, "heads"), ("head_dim", model.head_dim, "kv"),
                     ("intermediate_size", model.intermediate_size, "mlp"),
                     ("vocab_size", model.vocab_size, "vocab"),
                     ("hidden_size", model.hidden_size, "embed"),
                     ("hidden_size", model.hidden_size, "embed_out")]
            if model.scan_layers:
                sized.append(("num_layers", model.num_layers, "layers"))
            for field, size, logical in sized:
                axes = mesh_axes_of(rules, logical)
                n = math.prod(shape[MESH_AXES.index(a)] for a in axes)
                if size % n:
                    hint = (" (pad it: a model vocab larger than the vocab file is allowed, e.g. "
                            f"{-(-size // (128 * n)) * 128 * n})" if field == "vocab_size" else "")
                    where = f"{' x '.join(axes)} {'axes' if len(axes) > 1 else 'axis'} ({n})"
                    errors.append(f"model.{field}={size} must be divisible by the mesh's {where}, "
                                  f"which shards its {logical!r} axis (mesh.rules.{logical}){hint}.")
        if train.global_batch_size % (dp * train.grad_accum_steps):
            errors.append(f"train.global_batch_size={train.global_batch_size} must be divisible "
                          f"by the data-parallel size {dp} (mesh data x fsdp) times "
                          f"train.grad_accum_steps={train.grad_accum_steps}.")
    except ValueError as e:
        errors.append(str(e))
    return errors


# What a checkpoint's arrays and a resumed run's data depend on: a work directory whose saved
# config differs in any of these cannot be resumed. Everything else (the learning-rate schedule,
# logging, checkpoint intervals, the mesh, dropout, dtype) may change between restarts.
RESUME_INVARIANT_FIELDS = (
    "model.vocab_size", "model.hidden_size", "model.num_layers", "model.num_heads",
    "model.intermediate_size", "model.max_position_embeddings", "model.type_vocab_size",
    "model.scan_layers", "data.max_seq_length", "data.do_lower_case", "optimizer.name",
)


def check_resumable(saved: Mapping[str, Any], config: ml_collections.ConfigDict | Mapping[str, Any],
                    workdir: str, fields: Sequence[str] = RESUME_INVARIANT_FIELDS) -> None:
    """Raises a ValueError naming every field in which `config` differs from the `saved` config
    of the run in `workdir` in a way a resumed run cannot follow: the `fields` ("section.name";
    for pretraining the model shape, sequence length and optimizer) and the vocabulary's
    contents."""
    new = config.to_dict() if isinstance(config, ml_collections.ConfigDict) else config
    differences = []
    for field in fields:
        section, name = field.split(".")
        before, after = saved.get(section, {}).get(name), new[section][name]
        if before != after:
            differences.append(f"{field}: saved {before!r}, now {after!r}")
    before_vocab, after_vocab = saved.get("data", {}).get("vocab_file"), new.get("data", {}).get("vocab_file")
    if before_vocab and after_vocab and before_vocab != after_vocab:
        before_hash, after_hash = (_file_sha256(p) for p in (before_vocab, after_vocab))
        if before_hash and after_hash and before_hash != after_hash:
            differences.append(f"data.vocab_file: saved {before_vocab!r}, now {after_vocab!r}, "
                               "whose contents differ")
    if differences:
        raise ValueError(
            f"the work directory {workdir} holds a run whose saved config cannot be continued "
            "with this one:\n  - " + "\n  - ".join(differences) + "\nUse another --workdir for "
            "a new run, or set these fields back to their saved values.")


def _file_sha256(path: str) -> str | None:
    return file_sha256(path) if remote_files.exists(path) else None

