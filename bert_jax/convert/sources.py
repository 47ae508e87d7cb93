"""Pretrained BERT weights from elsewhere, as our parameters: to continue pretraining from
(`train.init_from`), for inference, or to turn into a work directory (`bert-jax import`).

Three sources, told apart by what the path holds (a Hugging Face repo id that is not a path is
first found in the local Hugging Face cache, or downloaded: `bert_jax.convert.hub`):

* a Hugging Face BERT directory (`config.json` and weights): `bert_jax.convert.hf_import`;
* a Google TensorFlow checkpoint (`bert_config.json` and `bert_model.ckpt`):
  `bert_jax.convert.google_checkpoint`;
* a bert-jax work directory (`checkpoints/`): its latest checkpoint.

Each gives an `ImportedModel` (`bert_jax.convert.imported`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Collection
from pathlib import Path
from typing import Any

import jax
import ml_collections

from bert_jax.config.validation import bert_config
from bert_jax.convert import google_checkpoint, hf_import
from bert_jax.convert.hub import resolve_model
from bert_jax.convert.imported import (FUNCTION_FIELDS, SHAPE_FIELDS, ImportedModel, check_compatible, flatten,
                                       in_layout)
from bert_jax.model import BertConfig, unscan_params
from bert_jax.state.checkpointer import CHECKPOINT_DIR
from bert_jax.state.trained_params import load_trained_params
from input_pipeline import remote_files
from input_pipeline.tokenizers.loading import load_tokenizer
from input_pipeline.tokenizers.sentencepiece_tokenizer import SentencePieceTokenizer

logger = logging.getLogger(__name__)


def is_workdir(path: str | os.PathLike) -> bool:
    return remote_files.isdir(os.path.join(os.fspath(path), CHECKPOINT_DIR))


def load_workdir(workdir: str | os.PathLike, step: int | None = None) -> ImportedModel:
    """The parameters of a bert-jax work directory's latest (or given) checkpoint."""

    params, config, step = load_trained_params(workdir, step)
    model = bert_config(config)
    params = jax.device_get(unscan_params(params, model.num_layers))
    return ImportedModel(config=dataclasses.replace(model, scan_layers=False), params=params,
                         missing=[], ignored=[], vocab_file=config.data.vocab_file or None,
                         do_lower_case=config.data.do_lower_case,
                         source=f"{os.fspath(workdir)} (step {step})", kind="bert-jax")


@dataclasses.dataclass(frozen=True)
class SourceModel:
    """What a source says of its model without loading its weights: the shape and function
    (`config`), and the tokenizer it was trained with (`vocab_file` None: the source has none)."""
    config: BertConfig
    vocab_file: str | None
    do_lower_case: bool


def source_model(source: str | os.PathLike) -> SourceModel:
    """The model at `source` (as `load_pretrained` tells sources apart) read from its config file
    alone: a work directory's `config.json`, a Hugging Face directory's `config.json`, a Google
    checkpoint's `bert_config.json`. What a run starting from `source` takes its shape from."""
    source = resolve_model(source)
    if is_workdir(source):
        config = ml_collections.ConfigDict(_read_json(os.path.join(source, "config.json")))
        return SourceModel(dataclasses.replace(bert_config(config), scan_layers=False),
                           config.data.get("vocab_file") or None, config.data.get("do_lower_case", True))
    if hf_import.is_huggingface_directory(source):
        path = os.path.join(source, "config.json")
        vocab_file, do_lower_case = hf_import.tokenizer_files(Path(source))
        return SourceModel(hf_import.bert_config_from_huggingface(_read_json(path), path),
                           vocab_file, do_lower_case)
    found = google_checkpoint.find_checkpoint(source)
    if found is not None:
        config_file, prefix = found
        vocab_file = os.path.join(os.path.dirname(prefix), "vocab.txt")
        vocab_file = vocab_file if remote_files.exists(vocab_file) else None
        return SourceModel(google_checkpoint.bert_config_from_google(_read_json(config_file), config_file),
                           vocab_file, google_checkpoint.vocab_do_lower_case(vocab_file))
    return load_pretrained(source)  # raises the error that says what the path is not


def source_config(source: str | os.PathLike) -> BertConfig:
    """The shape and function of the model at `source` (`source_model`)."""
    return source_model(source).config


def model_from_source(config: ml_collections.ConfigDict, kept: Collection[str] = ()) -> list[str]:
    """Sets the shape and function fields of `config.model` (`imported.SHAPE_FIELDS`,
    `FUNCTION_FIELDS`) to those of the model at `config.train.init_from`, as `transformers`'
    `from_pretrained` takes them from the checkpoint, except the fields named in `kept`
    ("model.num_layers", ...: what the user set, which the import then checks against the
    checkpoint). Returns "field: old -> new" for each field changed; nothing without init_from."""
    if not config.train.get("init_from"):
        return []
    source = source_config(config.train.init_from)
    changed = []
    for field in SHAPE_FIELDS + FUNCTION_FIELDS:
        new = getattr(source, field)
        if f"model.{field}" not in kept and config.model[field] != new:
            changed.append(f"model.{field}: {config.model[field]!r} -> {new!r}")
            config.model[field] = new
    return changed


def _read_json(path: str) -> dict:
    with remote_files.open_file(path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{e.lineno}: not JSON ({e.msg}).") from None


def load_pretrained(source: str | os.PathLike, vocab_file: str | None = None, model_kind: str = "pretraining",
                    num_labels: int | None = None) -> ImportedModel:
    """The weights at `source`: a Hugging Face directory (or repo id), a Google checkpoint
    (directory or prefix) or a bert-jax work directory. `vocab_file` replaces the source's own vocab. The
    Hugging Face and Google importers read the source as a model of `model_kind` (a key of
    `parameter_table.HEADS`; `num_labels` outputs for a classifier, by default the source's)."""

    source = resolve_model(source)
    if is_workdir(source):
        imported = load_workdir(source)
    elif hf_import.is_huggingface_directory(source):
        imported = hf_import.load_huggingface(source, model_kind, num_labels)
    elif google_checkpoint.find_checkpoint(source) is not None:
        imported = google_checkpoint.load_google_checkpoint(source, vocab_file, model_kind, num_labels)
    elif not remote_files.exists_or_checkpoint_prefix(source):
        raise FileNotFoundError(f"{source} does not exist.")
    else:
        raise ValueError(f"{source} is neither a Hugging Face BERT directory (config.json and "
                         f"{' or '.join(hf_import.WEIGHT_FILES)}), a Google BERT checkpoint "
                         f"(bert_config.json and bert_model.ckpt) nor a bert-jax work directory "
                         f"(checkpoints/).")
    if vocab_file is not None:

        imported.vocab_file = os.fspath(vocab_file)
        tokenizer = load_tokenizer(vocab_file)
        if isinstance(tokenizer, SentencePieceTokenizer):  # lower-casing is the model's own
            imported.do_lower_case = tokenizer.do_lower_case
    return imported


def initialize_params(source: str, params: Any, shardings: Any, model: BertConfig) -> Any:
    """`params` (a freshly initialized train state's, in `model`'s layout) with every parameter
    that `source` holds replaced by the imported value, placed with `shardings`; the heads the
    source lacks keep their fresh values. Logs the source and what stayed fresh.

    Every process reads `source` (it must be visible to all of them) and builds the shards of
    its own devices from the full arrays.
    """
    imported = load_pretrained(source)
    check_compatible(imported.config, model, imported.source)
    found = flatten(in_layout(imported.params, model))
    targets = flatten(shardings)

    def place(path, fresh):
        key = "/".join(str(getattr(k, "key", k)) for k in path)
        if key not in found:
            return fresh
        value = found[key]
        if value.shape != fresh.shape:  # check_compatible makes this unreachable; be explicit
            raise ValueError(f"{imported.source}: {key} has shape {value.shape}, the model's is {fresh.shape}")
        value = value.astype(fresh.dtype)
        # Each process builds its own shards from the full array (a multi-host safe device_put).
        return jax.make_array_from_callback(value.shape, targets[key], lambda index: value[index])

    initialized = jax.tree_util.tree_map_with_path(place, params)
    logger.info("train.init_from: initialized from the %s", imported.describe())
    return initialized

