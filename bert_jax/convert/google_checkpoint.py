"""Import of Google's original TensorFlow BERT checkpoints (github.com/google-research/bert):
`bert_config.json`, `bert_model.ckpt.{index,data-*}` and usually `vocab.txt` in one directory, as
the released models (`uncased_L-12_H-768_A-12`, ...) and `run_pretraining.py`'s outputs are laid out.

Google's variables are named as `modeling.py` and `run_pretraining.py` create them
(`bert/encoder/layer_0/attention/self/query/kernel`, `cls/predictions/output_bias`,
`cls/seq_relationship/output_weights`, ...) and their dense kernels are `[in, out]`, as Flax's
are; the names and reshapes (attention heads become an axis of their own) are the `google`
column of `bert_jax.convert.parameter_table`, read both ways (`from_google_variables`,
`to_google_variables`). Optimizer slots (`adam_m`, `adam_v`) and `global_step` are not
parameters and are skipped.

Two conventions differ from Hugging Face's: `bert_config.json`'s "gelu" is the tanh approximation
(`modeling.gelu`), so it becomes our "gelu_tanh"; and its LayerNorm epsilon is fixed at 1e-12
(`tf.contrib.layers.layer_norm`), so the file has no field for it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from bert_jax.convert.imported import ImportedModel
from bert_jax.convert.parameter_table import from_format, to_format
from bert_jax.convert.weight_files import check_finite
from bert_jax.errors import DamagedWeights
from bert_jax.model import BertConfig
from input_pipeline import remote_files

CONFIG_FILE, CHECKPOINT_PREFIX = "bert_config.json", "bert_model.ckpt"

# Google's activation names -> ours: its "gelu" is `modeling.gelu`, the tanh approximation.
ACTIVATIONS = {"gelu": "gelu_tanh"}

# Variables of a training checkpoint that are not model parameters.
_NOT_PARAMETERS = re.compile(r"(/adam_[mv]$|/lamb_[mv]$|^global_step$|/Momentum$)")


def find_checkpoint(path: str) -> tuple[str, str] | None:
    """(bert_config.json, checkpoint prefix) for a directory holding both (the prefix is
    `bert_model.ckpt`, else the directory's latest checkpoint), or for a checkpoint prefix with
    bert_config.json beside it; None if `path` is neither."""
    path = os.fspath(path).rstrip("/")
    if remote_files.isdir(path):
        config = os.path.join(path, CONFIG_FILE)
        prefix = os.path.join(path, CHECKPOINT_PREFIX)
        if not remote_files.exists(prefix + ".index"):
            import tensorflow as tf  # only for Google checkpoints: Hugging Face imports never load it
            prefix = tf.train.latest_checkpoint(path)
        return (config, prefix) if prefix and remote_files.exists(config) else None
    if remote_files.exists(path + ".index"):
        config = os.path.join(os.path.dirname(path), CONFIG_FILE)
        return (config, path) if remote_files.exists(config) else None
    return None


def bert_config_from_google(google: dict[str, Any], source: str = CONFIG_FILE) -> BertConfig:
    """Our `BertConfig` for a `bert_config.json` (as a dict)."""
    activation = google.get("hidden_act", "gelu")
    if activation not in ACTIVATIONS:
        raise ValueError(f"{source}: hidden_act={activation!r} cannot be imported; supported: "
                         f"{sorted(ACTIVATIONS)} (modeling.gelu, the tanh approximation).")
    return BertConfig(
        vocab_size=google["vocab_size"], hidden_size=google.get("hidden_size", 768),
        num_layers=google.get("num_hidden_layers", 12), num_heads=google.get("num_attention_heads", 12),
        intermediate_size=google.get("intermediate_size", 3072),
        max_position_embeddings=google.get("max_position_embeddings", 512),
        type_vocab_size=google.get("type_vocab_size", 16),
        hidden_dropout_rate=google.get("hidden_dropout_prob", 0.1),
        attention_dropout_rate=google.get("attention_probs_dropout_prob", 0.1),
        initializer_range=google.get("initializer_range", 0.02),
        layer_norm_eps=1e-12, hidden_act=ACTIVATIONS[activation], scan_layers=False)


def to_google_variables(params: Any, config: BertConfig) -> dict[str, np.ndarray]:
    """Our parameters (scanned layers or not) as the variables of Google's `run_pretraining.py`
    checkpoint: float32 numpy arrays by variable name (`bert/encoder/layer_0/...`), through the
    same table as the import."""
    return to_format(params, config, "google")


def from_google_variables(variables: Mapping[str, np.ndarray], config: BertConfig,
                          source: str = "the checkpoint", config_file: str = CONFIG_FILE,
                          kind: str = "pretraining", num_labels: int = 2) -> tuple[dict, list[str], list[str]]:
    """(our unscanned parameters as float32 numpy arrays, the paths of missing head parameters,
    the names of variables not used, optimizer slots aside) for a Google checkpoint's variables
    (a mapping that may read each when asked for), read as a model of `kind`
    (`parameter_table.HEADS`: `run_classifier.py`'s and `run_squad.py`'s heads are kinds).

    Raises ValueError naming every encoder variable that is missing and every variable whose
    shape does not fit `config` (read from `config_file`).
    """
    params, missing, errors, used = from_format(
        variables, config, "google",
        lambda name, shape, expected: f"{name} has shape {list(shape)}, which does not fit "
                                      f"{config_file} (it implies {list(expected)})",
        kind, num_labels)
    if errors:
        raise ValueError(f"{source}: not a complete BERT of its {CONFIG_FILE}:\n  - " + "\n  - ".join(errors))
    ignored = sorted(n for n in variables if n not in used and not _NOT_PARAMETERS.search(n))
    return params, missing, ignored


def _unreadable(what: str, error: Exception) -> DamagedWeights:
    """`what`, with the first line of TensorFlow's error and what to do."""
    first_line = str(error).splitlines()[0] if str(error) else ""
    return DamagedWeights(f"{what} ({type(error).__name__}: {first_line}). Download or copy the "
                          "checkpoint again.")


class _CheckpointVariables(Mapping):
    """A TensorFlow checkpoint's variables by name, each read when asked for: a training
    checkpoint's optimizer slots, twice the model's size, are never read."""

    def __init__(self, reader: Any, prefix: str):
        self._reader, self._shapes, self._prefix = reader, reader.get_variable_to_shape_map(), prefix

    def shape(self, name: str) -> tuple[int, ...]:
        """A variable's shape, without reading it."""
        return tuple(self._shapes[name])

    def __contains__(self, name: object) -> bool:  # Mapping's would read the tensor
        return name in self._shapes

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._shapes:
            raise KeyError(name)
        try:
            value = self._reader.get_tensor(name)
        except Exception as e:  # noqa: BLE001 - TensorFlow's DataLossError and kin: a damaged shard
            raise _unreadable(f"{self._prefix}: variable {name} is unreadable", e) from None
        check_finite({name: value}, self._prefix)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._shapes)

    def __len__(self) -> int:
        return len(self._shapes)


def vocab_do_lower_case(vocab_file: str | None) -> bool:
    """Whether text is lower-cased for a Google checkpoint whose vocab is `vocab_file`: unless
    the vocab is cased (`_vocab_is_cased`); True without a vocab, as BERT's default."""
    return not _vocab_is_cased(vocab_file) if vocab_file else True


def _vocab_is_cased(vocab_file: str) -> bool:
    """Whether a WordPiece vocab keeps case: an uncased one holds no token that lower-casing
    would change, outside its bracketed special tokens (upper-case letters without a lower-case
    form, such as "ℝ", stay). Google's checkpoints do not record do_lower_case; its release
    names, `uncased_...` and `cased_...`, say it, and so does the vocab."""
    with remote_files.open_file(vocab_file) as f:
        return any(token.lower() != token for token in (line.rstrip("\n") for line in f)
                   if not (token.startswith("[") and token.endswith("]")))


def load_google_checkpoint(path: str, vocab_file: str | None = None, model_kind: str = "pretraining",
                           num_labels: int | None = None) -> ImportedModel:
    """Reads a Google BERT checkpoint (a directory or a checkpoint prefix, see `find_checkpoint`)
    into our parameters, as a model of `model_kind`. The vocab is `vocab_file`, else the
    `vocab.txt` beside the checkpoint. A classifier has `num_labels` outputs, by default as many as
    `run_classifier.py`'s `output_weights` has rows (2 without one)."""
    import tensorflow as tf  # only for Google checkpoints: Hugging Face imports never load it

    found = find_checkpoint(path)
    if found is None:
        raise FileNotFoundError(f"{path}: not a Google BERT checkpoint (expected {CONFIG_FILE} and "
                                f"{CHECKPOINT_PREFIX}.index, or a checkpoint prefix with "
                                f"{CONFIG_FILE} beside it).")
    config_path, prefix = found
    with remote_files.open_file(config_path) as f:
        config = bert_config_from_google(json.load(f), config_path)
    try:
        reader = tf.train.load_checkpoint(prefix)
    except Exception as e:  # noqa: BLE001 - TensorFlow's DataLossError and kin: a damaged index
        raise _unreadable(f"{prefix}: unreadable as a TensorFlow checkpoint", e) from None
    variables = _CheckpointVariables(reader, prefix)
    if num_labels is None:
        num_labels = variables.shape("output_weights")[0] if "output_weights" in variables else 2
    params, missing, ignored = from_google_variables(variables, config, prefix, config_path,
                                                     model_kind, num_labels)

    if vocab_file is None:
        beside = os.path.join(os.path.dirname(prefix), "vocab.txt")
        vocab_file = beside if remote_files.exists(beside) else None
    do_lower_case = vocab_do_lower_case(vocab_file)
    return ImportedModel(config=config, params=params, missing=missing, ignored=ignored,
                         vocab_file=vocab_file, do_lower_case=do_lower_case, source=prefix,
                         kind="Google TensorFlow", model_kind=model_kind, num_labels=num_labels)
