"""Fine-tuning configs: their defaults (BERT's recipe, Devlin et al. 2019, section 4 and
appendix A.3), their validation at start-up, and the typed configs read from them once: the
`TaskConfig` of the data and its metric, and the loop's `RunConfig` for a number of examples.

A fine-tuning config is a file under `configs/` (`finetune_glue.py`, ...) like a pretraining one,
with a `task` section instead of pretraining's data settings. Its model fields are None by
default: the model's shape and function come from the `train.init_from` checkpoint
(`resolve_model`); a field the user sets is kept, and a shape that differs from the
checkpoint's is refused when the weights are loaded (`convert.imported.check_compatible`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import ml_collections

from bert_jax.config.defaults import RNG_IMPLS, default_config
from bert_jax.config.run import CheckpointConfig, LoopConfig, MeshConfig, OptimizerConfig, RunConfig
from bert_jax.config.validation import mesh_errors
from bert_jax.model import BertConfig
from input_pipeline import remote_files

TASK_TYPES = ("classification", "regression", "tagging", "qa")
PAIR_TRUNCATIONS = ("google", "huggingface")

# What a resumed fine-tuning run cannot change: the arrays' shapes and what the data rows are.
RESUME_INVARIANT_FIELDS = (
    "model.vocab_size", "model.hidden_size", "model.num_layers", "model.num_heads",
    "model.intermediate_size", "model.max_position_embeddings", "model.type_vocab_size",
    "model.scan_layers", "task.type", "task.max_seq_length", "optimizer.name",
)


def is_finetuning_config(config: ml_collections.ConfigDict) -> bool:
    """Whether `config` is a fine-tuning config (it has a `task` section)."""
    return "task" in config


def default_finetuning_config() -> ml_collections.ConfigDict:
    """BERT's fine-tuning recipe for GLUE-sized tasks: AdamW at 2e-5 (the paper sweeps
    {2e-5, 3e-5, 5e-5}: `--set optimizer.learning_rate=3e-5`), weight decay 0.01, batch 32,
    3 epochs, linear warm-up over the first 10% of steps then linear decay, sequences of 128,
    an evaluation every epoch and the best one's parameters kept."""
    pretraining = default_config()
    config = ml_collections.ConfigDict()
    # None: as the init_from checkpoint's config says. Set a field to change it (dropout,
    # dtype, remat, attention) or to insist on it (a shape the checkpoint must have).
    config.model = ml_collections.ConfigDict({f.name: None for f in dataclasses.fields(BertConfig)})

    config.task = ml_collections.ConfigDict()
    config.task.type = "classification"   # classification, regression, tagging or qa
    # The data's layout: a known dataset ("glue/mrpc", "klue/nli", "conll2003", ...) or "tsv",
    # "csv", "jsonl", "json", "conll"; "": from the file's extension (".conll" and SQuAD's JSON
    # by the task type). `tfds:NAME:SPLIT` sources need none.
    config.task.format = ""
    config.task.text_fields = ""          # "sentence1,sentence2": the text field(s); "": the format's
    config.task.label_field = "label"     # with text_fields: the label's field
    config.task.labels_file = ""          # the label list (labels.json, or one per line); "": from train
    # The metric that picks the best checkpoint; "": the task's main one (tasks.metrics).
    config.task.metric = ""
    config.task.max_seq_length = 128
    config.task.pair_truncation = "google"  # "huggingface": tokenizers' longest_first
    # Extractive QA (run_squad.py's defaults, but the sequence length: BERT uses 384 for SQuAD).
    config.task.doc_stride = 128
    config.task.max_query_length = 64
    config.task.n_best_size = 20
    config.task.max_answer_length = 30
    config.task.version_2_with_negative = False  # SQuAD 2.0: questions may have no answer
    config.task.null_score_diff_threshold = 0.0

    config.data = ml_collections.ConfigDict()
    config.data.train_file = ""
    config.data.eval_file = ""            # "": no evaluation, the last step's parameters kept
    config.data.vocab_file = ""           # "": the init_from checkpoint's own tokenizer
    config.data.do_lower_case = None      # None: as the checkpoint's tokenizer
    config.data.tfds_data_dir = ""

    config.optimizer = ml_collections.ConfigDict()
    config.optimizer.name = "adamw"
    config.optimizer.learning_rate = 2e-5
    config.optimizer.warmup_fraction = 0.1
    config.optimizer.b1 = 0.9
    config.optimizer.b2 = 0.999
    config.optimizer.eps = 1e-6
    config.optimizer.weight_decay = 0.01
    config.optimizer.clip_norm = 1.0

    config.train = ml_collections.ConfigDict()
    # A Hugging Face BERT directory, a Google checkpoint or a bert-jax work directory: the encoder's
    # weights (the task head starts fresh) and, unless set above, the model's shape.
    config.train.init_from = ""
    config.train.global_batch_size = 32
    config.train.num_epochs = 3.0           # fractions allowed: 0.5 trains on half an epoch
    config.train.grad_accum_steps = 1
    config.train.seed = 0
    config.train.rng_impl = "threefry2x32"
    config.train.log_every = 50
    config.train.eval_every = 0           # steps; 0: at the end of every epoch
    config.train.checkpoint_every = 1000  # and at the last step; a SIGTERM saves at once
    config.train.keep_checkpoints = 2
    config.train.max_consecutive_nonfinite = 10
    config.train.peak_flops_per_device = 0.0

    config.mesh = pretraining.mesh
    return config


def validate_finetuning(config: ml_collections.ConfigDict, num_devices: int, num_processes: int = 1) -> None:
    """Raises a ValueError naming every field that breaks a rule (and its value), before any
    file is read or anything compiled."""
    errors: list[str] = []
    task, data, train, opt = config.task, config.data, config.train, config.optimizer
    if task.type not in TASK_TYPES:
        errors.append(f"task.type={task.type!r} must be one of {TASK_TYPES}.")
    if task.pair_truncation not in PAIR_TRUNCATIONS:
        errors.append(f"task.pair_truncation={task.pair_truncation!r} must be one of {PAIR_TRUNCATIONS}.")
    if task.text_fields and not 1 <= len(task.text_fields.split(",")) <= 2:
        errors.append(f"task.text_fields={task.text_fields!r} names one text field or two (a pair), "
                      f"separated by a comma.")
    minimum = task.max_query_length + 4 if task.type == "qa" else 4
    if task.max_seq_length < minimum:
        errors.append(f"task.max_seq_length={task.max_seq_length} must be at least {minimum}"
                      + (" (task.max_query_length + [CLS] + two [SEP] + a context token)." if task.type == "qa" else "."))
    if config.model.max_position_embeddings is not None and task.max_seq_length > config.model.max_position_embeddings:
        errors.append(f"task.max_seq_length={task.max_seq_length} exceeds "
                      f"model.max_position_embeddings={config.model.max_position_embeddings}.")
    for field in ("doc_stride", "max_query_length", "n_best_size", "max_answer_length"):
        if task[field] < 1:
            errors.append(f"task.{field}={task[field]} must be at least 1.")
    for field, what in (("train_file", "the training set"), ("eval_file", "the evaluation set")):
        path = data[field]
        if path and not path.startswith("tfds:") and not remote_files.exists(path):
            errors.append(f"data.{field}={path!r} does not exist ({what}).")
    if not data.train_file:
        errors.append("data.train_file is empty: the training set (--train FILE).")
    if task.labels_file and not remote_files.exists(task.labels_file):
        errors.append(f"task.labels_file={task.labels_file!r} does not exist.")
    if data.vocab_file and not remote_files.exists(data.vocab_file):
        errors.append(f"data.vocab_file={data.vocab_file!r} does not exist.")
    if not train.init_from:
        errors.append("train.init_from is empty: the pretrained model to fine-tune (--init-from: a "
                      "Hugging Face directory, a Google checkpoint or a bert-jax work directory).")
    elif not remote_files.exists_or_checkpoint_prefix(train.init_from):
        errors.append(f"train.init_from={train.init_from!r} does not exist.")
    if opt.name not in ("adamw", "lamb"):
        errors.append(f"optimizer.name={opt.name!r} must be 'adamw' or 'lamb'.")
    if not opt.learning_rate > 0:
        errors.append(f"optimizer.learning_rate={opt.learning_rate} must be positive.")
    if not 0 <= opt.warmup_fraction <= 1:
        errors.append(f"optimizer.warmup_fraction={opt.warmup_fraction} must be in [0, 1].")
    if not 0 <= opt.weight_decay < 1:
        errors.append(f"optimizer.weight_decay={opt.weight_decay} must be in [0, 1).")
    if not (isinstance(train.num_epochs, (int, float)) and train.num_epochs > 0 and math.isfinite(train.num_epochs)):
        errors.append(f"train.num_epochs={train.num_epochs} must be a positive number.")
    if train.rng_impl not in RNG_IMPLS:
        errors.append(f"train.rng_impl={train.rng_impl!r} must be one of {RNG_IMPLS}.")
    for field in ("global_batch_size", "grad_accum_steps", "log_every", "checkpoint_every",
                  "keep_checkpoints", "max_consecutive_nonfinite"):
        if train[field] < 1:
            errors.append(f"train.{field}={train[field]} must be at least 1.")
    if train.eval_every < 0:
        errors.append(f"train.eval_every={train.eval_every} must be 0 (every epoch) or a number of steps.")
    if task.metric and not data.eval_file:
        errors.append(f"task.metric={task.metric!r} picks the best evaluation, but data.eval_file is empty.")
    if train.global_batch_size % num_processes:
        errors.append(f"train.global_batch_size={train.global_batch_size} must be divisible by "
                      f"the number of processes {num_processes}.")
    model = None
    if all(value is not None for value in config.model.values()):
        try:
            model = BertConfig(**config.model.to_dict())
        except (TypeError, ValueError) as e:
            errors.append(str(e))
    errors += mesh_errors(config, model, num_devices, num_processes)
    if errors:
        raise ValueError("invalid fine-tuning config:\n  - " + "\n  - ".join(errors))


def resolve_model(config: ml_collections.ConfigDict, source: BertConfig) -> ml_collections.ConfigDict:
    """A copy of `config` whose model fields left None hold the `source` checkpoint's values."""
    resolved = ml_collections.ConfigDict(config.to_dict())
    for field, value in dataclasses.asdict(source).items():
        if resolved.model[field] is None:
            resolved.model[field] = value
    return resolved


@dataclasses.dataclass(frozen=True)
class TaskConfig:
    """The `task` and `data` sections: what is read, how it becomes features, how it is scored."""
    type: str
    train_file: str
    eval_file: str = ""
    format: str = ""
    text_fields: tuple[str, ...] = ()
    label_field: str = "label"
    labels_file: str = ""
    metric: str = ""
    max_seq_length: int = 128
    pair_truncation: str = "google"
    doc_stride: int = 128
    max_query_length: int = 64
    n_best_size: int = 20
    max_answer_length: int = 30
    version_2_with_negative: bool = False
    null_score_diff_threshold: float = 0.0
    tfds_data_dir: str = ""

    @classmethod
    def from_config(cls, config: ml_collections.ConfigDict) -> TaskConfig:
        task, data = config.task, config.data
        return cls(type=task.type, train_file=data.train_file, eval_file=data.eval_file,
                   format=task.format,
                   text_fields=tuple(f.strip() for f in task.text_fields.split(",")) if task.text_fields else (),
                   label_field=task.label_field, labels_file=task.labels_file, metric=task.metric,
                   max_seq_length=task.max_seq_length, pair_truncation=task.pair_truncation,
                   doc_stride=task.doc_stride, max_query_length=task.max_query_length,
                   n_best_size=task.n_best_size, max_answer_length=task.max_answer_length,
                   version_2_with_negative=task.version_2_with_negative,
                   null_score_diff_threshold=task.null_score_diff_threshold,
                   tfds_data_dir=data.tfds_data_dir)


def finetuning_run(config: ml_collections.ConfigDict, steps_per_epoch: int, *, best_metric: str = "",
                   best_mode: str = "max") -> RunConfig:
    """The loop's `RunConfig` for a (validated, `resolve_model`d) fine-tuning config whose
    training set gives `steps_per_epoch` batches: `num_epochs` of them (rounded up to a whole
    step), warm-up over `warmup_fraction` of the steps, an evaluation every epoch unless
    `train.eval_every` says otherwise, the best parameters kept by `best_metric`."""
    train, opt = config.train, config.optimizer
    num_steps = max(1, math.ceil(train.num_epochs * steps_per_epoch))
    optimizer = OptimizerConfig(**{f.name: opt[f.name] for f in dataclasses.fields(OptimizerConfig)
                                   if f.name != "warmup_steps"})
    loop = LoopConfig(num_steps=num_steps, global_batch_size=train.global_batch_size,
                      grad_accum_steps=train.grad_accum_steps, seed=train.seed, rng_impl=train.rng_impl,
                      log_every=train.log_every, eval_every=train.eval_every or steps_per_epoch,
                      eval_steps=0, max_consecutive_nonfinite=train.max_consecutive_nonfinite,
                      peak_flops_per_device=train.peak_flops_per_device)
    return RunConfig(
        model=BertConfig(**config.model.to_dict()),
        optimizer=optimizer.with_warmup_fraction(opt.warmup_fraction, num_steps), loop=loop,
        checkpoints=CheckpointConfig(every=train.checkpoint_every, keep=train.keep_checkpoints,
                                     best_metric=best_metric, best_mode=best_mode),
        mesh=MeshConfig.from_config(config), init_from=train.init_from,
        user_config=config.to_dict(), resume_invariants=RESUME_INVARIANT_FIELDS)


def config_with(config: ml_collections.ConfigDict, values: Mapping[str, Any]) -> ml_collections.ConfigDict:
    """A copy of `config` with `{"section.field": value}` set (the CLI's flags, a seed)."""
    copy = ml_collections.ConfigDict(config.to_dict())
    for key, value in values.items():
        section, field = key.split(".")
        copy[section][field] = value
    return copy
