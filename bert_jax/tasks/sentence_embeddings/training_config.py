"""The config of a Sentence-BERT run (`bert-jax sbert-train`): the pretraining config's sections
(model, optimizer, train, mesh, sentence) and a `sbert` section for the objective and its data,
with SBERT's recipe as defaults (Reimers and Gurevych, 2019: batch 16, AdamW at 2e-5, warm-up over
10% of the steps, one epoch, sequences of at most 128 tokens, mean pooling).

The model's shape, vocabulary and lower-casing come from `train.init_from` (any source the
importers read: a Hugging Face or sentence-transformers directory, a Google checkpoint, a
bert-jax work directory, Sentence-BERT runs included); a sentence-transformers directory or a
work directory gives its sentence head (pooling, normalization) too. The user's `--set`s come
last and win. `validate` checks everything before anything is compiled.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence

import ml_collections

from bert_jax.config.defaults import default_config
from bert_jax.config.files import apply_overrides, load_config
from bert_jax.config.validation import RESUME_INVARIANT_FIELDS, bert_config, mesh_errors, sentence_config
from bert_jax.convert.sentence_transformers import is_sentence_transformers_directory, read_sentence_config
from bert_jax.convert.sources import is_workdir, load_pretrained
from bert_jax.parallel.sharding import data_parallel_axes_size, mesh_shape
from bert_jax.tasks.sentence_embeddings.evaluators import MAIN_METRICS
from bert_jax.tasks.sentence_embeddings.losses import RANKING_SCALE
from bert_jax.training.array_batches import doubling_lengths
from input_pipeline import remote_files
from input_pipeline.tasks.sentence_pairs import OBJECTIVES
from input_pipeline.text.tfds_spec import is_tfds_source

# Fields a resumed Sentence-BERT run must share with the one that wrote its checkpoints.
SENTENCE_RESUME_INVARIANTS = (*RESUME_INVARIANT_FIELDS, "sbert.objective")
CONFIG_NAMES = {objective: f"sbert_{objective}" for objective in OBJECTIVES}


def sentence_training_defaults(objective: str) -> ml_collections.ConfigDict:
    """The defaults of a Sentence-BERT run of `objective` ("nli", "sts", "pairs")."""
    config = default_config()
    config.data.max_seq_length = 128
    config.optimizer.learning_rate = 2e-5
    config.optimizer.warmup_steps = 0  # set from sbert.warmup_fraction at start-up
    config.train.global_batch_size = 16
    config.train.num_steps = 0         # 0: sbert.epochs passes over the training set
    config.train.log_every = 50
    config.train.checkpoint_every = 500
    config.train.eval_every = 500      # and at the end; 0: only at the end
    config.train.eval_steps = 0        # the whole evaluation set

    config.sbert = ml_collections.ConfigDict()
    config.sbert.objective = objective
    config.sbert.train_file = ""       # a file or tfds:NAME:SPLIT (input_pipeline.tasks.sentence_pairs)
    config.sbert.eval_file = ""        # evaluated every train.eval_every steps; "": none
    config.sbert.format = ""           # "": by the file's extension; or snli, kornli, glue/stsb, ...
    config.sbert.eval_format = ""      # "": as sbert.format
    config.sbert.fields = ""           # role=field,... e.g. "premise=s1,hypothesis=s2,label=gold"
    config.sbert.eval_fields = ""      # "": as sbert.fields
    config.sbert.tfds_data_dir = ""
    config.sbert.epochs = 1
    config.sbert.warmup_fraction = 0.1
    # Each batch is padded to the smallest of these that holds its longest text; () doubles from
    # 32 up to data.max_seq_length (32, 64, 128): a run compiles at most that many train steps
    # and as many evaluation programs.
    config.sbert.length_buckets = ()
    config.sbert.eval_batch_size = 64
    config.sbert.scale = RANKING_SCALE  # pairs: the ranking loss's similarity scale
    config.sbert.mini_batch_size = 0    # pairs: GradCache chunk rows; 0: one pass (or train.grad_accum_steps)
    # The evaluation metric whose best value's parameters are kept in workdir/best/.
    config.sbert.best_metric = MAIN_METRICS[objective]
    return config


def sentence_training_config(config_name: str | None = None, overrides: Sequence[str] = (), *,
                             objective: str | None = None, init_from: str | None = None,
                             train_file: str | None = None, eval_file: str | None = None,
                             format: str | None = None, fields: str | None = None) -> ml_collections.ConfigDict:
    """The config of a run: `config_name` (default `sbert_<objective>`), the given fields, then
    what `train.init_from` says about the model (`with_source`), then `overrides` again, so
    that the user's choices win over the source's."""
    if config_name is None:
        if objective not in OBJECTIVES:
            raise ValueError(f"--objective must be one of {OBJECTIVES} (or give --config).")
        config_name = CONFIG_NAMES[objective]
    config = load_config(config_name)
    if "sbert" not in config:
        raise ValueError(f"config {config_name!r} has no sbert section; start from "
                         f"sentence_training_defaults() (configs/sbert_nli.py shows how).")
    given = {"objective": objective, "train_file": train_file, "eval_file": eval_file, "format": format,
             "fields": fields}
    config.sbert.update({k: v for k, v in given.items() if v is not None})
    if init_from is not None:
        config.train.init_from = init_from
    apply_overrides(config, overrides)
    with_source(config)
    apply_overrides(config, overrides)
    return config


def weights_source(init_from: str) -> str:
    """Where `init_from`'s BERT weights are: a sentence-transformers directory's Transformer
    module (the directory itself or a subdirectory), else `init_from` itself."""
    if is_sentence_transformers_directory(init_from):
        return os.fspath(read_sentence_config(init_from)[1])
    return init_from


def with_source(config: ml_collections.ConfigDict) -> None:
    """Sets the model's shape, the vocab and its lower-casing from `train.init_from` (the run's
    choices of dtype, layer scan, remat and attention kept), and the sentence head of a
    sentence-transformers directory or a work directory. Nothing without `train.init_from`."""
    source = config.train.init_from
    if not source:
        return
    if not remote_files.exists_or_checkpoint_prefix(source):
        raise FileNotFoundError(f"train.init_from={source!r} does not exist (a Hugging Face or "
                                "sentence-transformers directory, a Google checkpoint or a bert-jax work directory).")
    imported = load_pretrained(weights_source(source))
    run_choices = {k: config.model[k] for k in ("dtype", "scan_layers", "remat", "attention")}
    config.model.update({**dataclasses.asdict(imported.config), **run_choices})
    if imported.vocab_file:
        config.data.vocab_file = imported.vocab_file
        config.data.do_lower_case = imported.do_lower_case
    config.data.max_seq_length = min(config.data.max_seq_length, imported.config.max_position_embeddings)
    if is_sentence_transformers_directory(source):
        sentence = read_sentence_config(source)[0]
        config.sentence.update(dataclasses.asdict(sentence))
    elif is_workdir(source) and os.path.isfile(os.path.join(source, "config.json")):
        with open(os.path.join(source, "config.json"), encoding="utf-8") as f:
            saved = json.load(f)
        if "sentence" in saved:
            config.sentence.update(saved["sentence"])


def bucket_lengths(config: ml_collections.ConfigDict) -> tuple[int, ...]:
    """The run's length buckets: `sbert.length_buckets`, or doubling from 32 to the longest."""
    return tuple(config.sbert.length_buckets) or doubling_lengths(config.data.max_seq_length)


def validate(config: ml_collections.ConfigDict, num_devices: int, num_processes: int = 1) -> None:
    """Raises a ValueError naming every field of a Sentence-BERT config that breaks a rule."""
    errors: list[str] = []
    model = None
    try:
        model = bert_config(config)
        sentence_config(config)
    except (ValueError, TypeError) as e:
        errors.append(str(e))
    sbert, data, train, opt = config.sbert, config.data, config.train, config.optimizer
    if sbert.objective not in OBJECTIVES:
        errors.append(f"sbert.objective={sbert.objective!r} must be one of {OBJECTIVES}.")
    if not sbert.train_file:
        errors.append("sbert.train_file is empty: give the training data (--train).")
    for field in ("train_file", "eval_file"):
        path = sbert[field]
        if path and not is_tfds_source(path) and not remote_files.exists(path):
            errors.append(f"sbert.{field}={path!r} does not exist.")
    if not data.vocab_file or not remote_files.exists(data.vocab_file):
        errors.append(f"data.vocab_file={data.vocab_file!r} does not exist: set train.init_from "
                      "(--init-from) to a model with its vocab, or data.vocab_file.")
    if model is not None and not 3 <= data.max_seq_length <= model.max_position_embeddings:
        errors.append(f"data.max_seq_length={data.max_seq_length} must be in [3, "
                      f"model.max_position_embeddings={model.max_position_embeddings}].")
    buckets = tuple(sbert.length_buckets)
    if buckets and (list(buckets) != sorted(set(buckets)) or buckets[0] < 3 or buckets[-1] != data.max_seq_length):
        errors.append(f"sbert.length_buckets={buckets} must be distinct lengths of at least 3, ascending, "
                      f"the last data.max_seq_length={data.max_seq_length} (or () for 32, 64, ...).")
    if sbert.epochs < 1 and train.num_steps < 1:
        errors.append(f"sbert.epochs={sbert.epochs} must be at least 1 (or train.num_steps set).")
    if train.num_steps < 0:
        errors.append(f"train.num_steps={train.num_steps} must be at least 1 (0: from sbert.epochs).")
    if not 0 <= sbert.warmup_fraction <= 1:
        errors.append(f"sbert.warmup_fraction={sbert.warmup_fraction} must be in [0, 1].")
    if opt.learning_rate <= 0:
        errors.append(f"optimizer.learning_rate={opt.learning_rate} must be positive.")
    if sbert.scale <= 0:
        errors.append(f"sbert.scale={sbert.scale} must be positive.")
    if sbert.mini_batch_size and (sbert.objective != "pairs" or train.global_batch_size % sbert.mini_batch_size):
        errors.append(f"sbert.mini_batch_size={sbert.mini_batch_size} is for the pairs objective and must "
                      f"divide train.global_batch_size={train.global_batch_size}.")
    for field in ("log_every", "checkpoint_every", "keep_checkpoints", "grad_accum_steps"):
        if train[field] < 1:
            errors.append(f"train.{field}={train[field]} must be at least 1.")
    if sbert.objective in MAIN_METRICS and sbert.best_metric and sbert.eval_file:
        known = {"nli": ("accuracy",), "sts": ("spearman_cosine", "pearson_cosine")}.get(sbert.objective)
        if known and sbert.best_metric not in known:
            errors.append(f"sbert.best_metric={sbert.best_metric!r} is not an evaluation metric of "
                          f"{sbert.objective}: {list(known)}.")
    errors += mesh_errors(config, model, num_devices, num_processes)
    try:
        dp = data_parallel_axes_size(mesh_shape(config.mesh.shape, num_devices))
    except ValueError:
        dp = 1  # mesh_errors has said why
    if sbert.eval_batch_size < 1 or sbert.eval_batch_size % max(dp, num_processes):
        errors.append(f"sbert.eval_batch_size={sbert.eval_batch_size} must be a positive multiple of the "
                      f"data-parallel size {dp} (mesh data x fsdp) and of the processes {num_processes}.")
    if errors:
        raise ValueError("invalid config:\n  - " + "\n  - ".join(errors))
