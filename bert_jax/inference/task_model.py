"""What the fine-tuned task models share for inference (`TextClassifier`, `TokenClassifier`,
`QuestionAnswerer`): loading a model with its task head and label names from any source the
importers read, and a jitted forward pass over length buckets that are multiples of 64.

Labels, by precedence: a `labels.json` beside the model (`input_pipeline.tasks.labels`, what
fine-tuning saves), the source's own (`id2label` of a Hugging Face directory), else
`transformers`' default names `LABEL_0`, `LABEL_1`, ... (a Google checkpoint records none).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import numpy as np

from bert_jax.config.validation import bert_config
from bert_jax.convert.sources import is_workdir, load_pretrained
from bert_jax.inference.batching import BucketedModel, ShapeBuckets, Tokenizer
from bert_jax.model import BertConfig, model_of_kind, task_head_of
from bert_jax.state.best import best_metrics, load_best_params
from bert_jax.state.trained_params import load_saved_params
from input_pipeline import remote_files
from input_pipeline.tasks.labels import LABELS_FILE, load_labels
from input_pipeline.tokenizers.loading import load_tokenizer

LENGTH_STEP = 64  # Length buckets: 64, 128, 192, ... up to the model's longest input.


@dataclasses.dataclass
class TaskModel:
    """A model with a task head, ready for inference."""
    params: Any
    config: BertConfig
    tokenizer: Tokenizer
    kind: str                  # model.task_heads.TASK_KINDS
    labels: tuple[str, ...]    # by id; one name for a regression score
    problem_type: str = ""     # "regression", "single_label_classification" or "" (unknown)
    source: str = ""
    vocab_file: str = ""       # what `tokenizer` was loaded from, and its casing (for export)
    do_lower_case: bool = True


def default_labels(num_labels: int) -> tuple[str, ...]:
    """`transformers`' names for labels without names."""
    return tuple(f"LABEL_{i}" for i in range(num_labels))


def labels_beside(path: str) -> tuple[str, ...] | None:
    """The names of a `labels.json` in the directory `path` (or beside the file), if there is one."""
    directory = path if remote_files.isdir(path) else os.path.dirname(path)
    labels_file = os.path.join(directory, LABELS_FILE)
    return load_labels(labels_file).names if remote_files.exists(labels_file) else None


def load_task_model(path: str | os.PathLike, kind: str, step: int | None = None,
                    dtype: str | None = None) -> TaskModel:
    """A model of `kind` ("sequence_classification", "token_classification",
    "question_answering") from a fine-tuning work directory (its newest checkpoint, or `step`), a
    Hugging Face directory or a Google checkpoint (`run_classifier.py`'s and `run_squad.py`'s
    outputs), with its labels (see the module docstring).

    Raises:
      ValueError: if the source lacks the task head (a pretrained model that was never fine-tuned
        for it), or its `labels.json` does not have one name per output.
      FileNotFoundError: if `path` holds no model.
    """
    path = os.fspath(path)
    if is_workdir(path):
        return _load_workdir(path, kind, step, dtype)
    if step is not None:
        raise ValueError(f"{path} is not a work directory; --step applies to work directories only.")
    imported = load_pretrained(path, model_kind=kind)
    if imported.missing:
        raise ValueError(f"{imported.source} has no {kind.replace('_', ' ')} head (missing: "
                         f"{', '.join(imported.missing)}); it was not fine-tuned for this task. "
                         f"Fine-tune it first (bert-jax finetune), or give a model that has the head.")
    if imported.vocab_file is None:
        raise ValueError(f"{path} has no vocab (vocab.txt or spiece.model) to tokenize with.")
    outputs = 2 if kind == "question_answering" else imported.num_labels
    labels = labels_beside(path) or imported.labels or default_labels(outputs)
    if kind != "question_answering" and len(labels) != outputs:
        raise ValueError(f"{path}: {len(labels)} label names ({list(labels)}) for a head of "
                         f"{outputs} outputs; the names must be the model's, one per output.")
    config = imported.config if dtype is None else dataclasses.replace(imported.config, dtype=dtype)
    return TaskModel(jax.device_put(imported.params), config,
                     load_tokenizer(imported.vocab_file, do_lower_case=imported.do_lower_case),
                     kind, tuple(labels), imported.problem_type, imported.source,
                     imported.vocab_file, imported.do_lower_case)


def _load_workdir(path: str, kind: str, step: int | None, dtype: str | None) -> TaskModel:
    """A fine-tuned model from a work directory: the best evaluation's parameters where the run
    kept them (as `transformers`' `load_best_model_at_end`), else its newest checkpoint that
    restores; or checkpoint `step`. Its vocab is the run's `data.vocab_file`, its labels the
    `labels.json` there."""
    if step is None and best_metrics(path) is not None:
        params, run_config, step, _ = load_best_params(path)
        path_step = f"best evaluation, step {step}"
    else:
        params, run_config, step = load_saved_params(path, step)
        path_step = f"step {step}"
    head = task_head_of(params)
    if head is None or head[0] != kind:
        found = f"a {head[0].replace('_', ' ')} head" if head else "no task head (a pretraining run?)"
        raise ValueError(f"{path} ({path_step}) holds {found}; {kind.replace('_', ' ')} needs a model "
                         f"fine-tuned for it.")
    config = bert_config(run_config)
    if dtype is not None:
        config = dataclasses.replace(config, dtype=dtype)
    labels = labels_beside(path) or default_labels(head[1])
    if kind != "question_answering" and len(labels) != head[1]:
        raise ValueError(f"{path}: {len(labels)} label names in {LABELS_FILE} ({list(labels)}) for a "
                         f"head of {head[1]} outputs; the names must be the model's, one per output.")
    tokenizer = load_tokenizer(run_config.data.vocab_file, do_lower_case=run_config.data.do_lower_case)
    return TaskModel(params, config, tokenizer, kind, tuple(labels),
                     "regression" if head[1] == 1 else "", f"{path} ({path_step})",
                     run_config.data.vocab_file, run_config.data.do_lower_case)


class TaskPredictor(BucketedModel):
    """A `BucketedModel` whose model is a task head (`model.task_heads`) with its labels.

    Inputs are padded to lengths that are multiples of 64 (and power-of-two batch sizes), so a
    stream of texts of any length compiles a bounded number of programs
    (`buckets.num_shapes`); `trace_count` counts them.
    """
    kind = ""  # The model kind a subclass runs.

    def __init__(self, task: TaskModel, max_batch_size: int = 32):
        super().__init__(task.params, task.config, task.tokenizer, max_batch_size)
        num_labels = len(task.labels) if self.kind != "question_answering" else 2
        self.model = model_of_kind(task.config, self.kind, num_labels)
        self.buckets = bucket_lengths(task.config.max_position_embeddings, max_batch_size)
        self.labels = task.labels
        self.problem_type = task.problem_type
        self.source = task.source
        self._forward = self.jit(self._apply)

    @classmethod
    def load(cls, path: str | os.PathLike, step: int | None = None, dtype: str | None = None, **kwargs):
        """From a Hugging Face directory with the task's head (e.g. `bert-jax export`'s of a
        fine-tuned model) or a Google checkpoint of `run_classifier.py` / `run_squad.py`."""
        return cls(load_task_model(path, cls.kind, step, dtype), **kwargs)

    def _apply(self, params: Any, input_ids: jax.Array, input_mask: jax.Array, segment_ids: jax.Array):
        return self.model.apply({"params": params}, input_ids, input_mask, segment_ids)

    def forward(self, input_ids: np.ndarray, input_mask: np.ndarray, segment_ids: np.ndarray) -> Any:
        """The head's outputs (float32 numpy) for one padded batch of bucket shape."""
        return jax.device_get(self._forward(self.params, input_ids, input_mask, segment_ids))


def bucket_lengths(max_length: int, max_batch_size: int = 32) -> ShapeBuckets:
    """Lengths 64, 128, ... (multiples of `LENGTH_STEP`) and `max_length` itself; batch sizes
    powers of two up to `max_batch_size`."""
    base = ShapeBuckets.for_model(max_length, max_batch_size)
    lengths = tuple(range(LENGTH_STEP, max_length, LENGTH_STEP)) + (max_length,)
    return dataclasses.replace(base, lengths=lengths)
