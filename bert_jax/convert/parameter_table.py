"""One table of our parameters and how the other formats store them, read by every converter:
Hugging Face export (`hf_export`) and import (`hf_import`), Google import and export
(`google_checkpoint`).

Each `Parameter` is the path of one of our (unscanned) parameters, and for each format a `Stored`:
the tensor's name there and the exact conversions between our array and theirs, both ways. They
are transposes and reshapes only, so a round trip through either format gives back the same bits.
The formats differ in three ways: PyTorch's Linear weights are `[out, in]` where Flax's kernels
(and TensorFlow's) are `[in, out]`; our attention kernels keep the heads as an axis of their own
(for sharding) where both formats flatten them; and the names.

The table is the encoder's parameters followed by the heads of a model kind (`HEADS`). A head
is a function of the `BertConfig` yielding `Parameter`s; `parameter_table` marks them `head`
(a source may lack them: a `BertModel` has no pretraining heads, and a pretrained encoder has no
task head; the importers leave them to be initialized afresh). A format without the tensor
(Google's scripts have no token classifier) gets `None`. A task head is one function and one
entry (`sequence_classifier`, `token_classifier`, `span_classifier` below); our paths are those of
the Flax module holding the head (`model.task_heads`). `from_format` checks shapes against
`imported.parameter_shapes`, which builds the model of the kind (`model.model_of_kind`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal

import numpy as np

from bert_jax.convert.imported import parameter_shapes, set_path
from bert_jax.model import BertConfig, unscan_params

Transform = Callable[[np.ndarray], np.ndarray]
Format = Literal["huggingface", "google"]
FORMATS: tuple[Format, ...] = ("huggingface", "google")


def _same(x: np.ndarray) -> np.ndarray:
    return x


def _transpose(x: np.ndarray) -> np.ndarray:
    """A Flax kernel [in, out] as a PyTorch Linear weight (or Google's `output_weights`)
    [out, in], and back."""
    return x.T


@dataclasses.dataclass(frozen=True)
class Stored:
    """One of our parameters as a format stores it: the tensor's name there, and the exact
    conversions of our array into theirs and back."""
    name: str
    to_theirs: Transform = _same
    from_theirs: Transform = _same


@dataclasses.dataclass(frozen=True)
class Parameter:
    """One of our parameters (its path in the unscanned tree) and how each format stores it
    (None: the format has no such tensor)."""
    path: tuple[str, ...]
    huggingface: Stored | None
    google: Stored | None
    head: bool = False  # set by `parameter_table`: a source may lack it (then initialized afresh)

    def stored(self, format: Format) -> Stored | None:
        return getattr(self, format)


Head = Callable[[BertConfig], Iterator[Parameter]]


# The building blocks, each a Flax module of ours, its Hugging Face name and its Google scope.

def dense(ours: tuple[str, ...], hf: str, google: str) -> Iterator[Parameter]:
    """A Dense layer: the kernel [in, out] is Google's as is, PyTorch's transposed."""
    yield Parameter((*ours, "kernel"), Stored(f"{hf}.weight", _transpose, _transpose),
                    Stored(f"{google}/kernel"))
    yield Parameter((*ours, "bias"), Stored(f"{hf}.bias"), Stored(f"{google}/bias"))


def layer_norm(ours: tuple[str, ...], hf: str, google: str) -> Iterator[Parameter]:
    """A LayerNorm: weight/bias in PyTorch, gamma/beta in `tf.contrib.layers.layer_norm`."""
    yield Parameter((*ours, "scale"), Stored(f"{hf}.weight"), Stored(f"{google}/gamma"))
    yield Parameter((*ours, "bias"), Stored(f"{hf}.bias"), Stored(f"{google}/beta"))


def output_layer(ours: tuple[str, ...], hf: str, google_scope: str) -> Iterator[Parameter]:
    """A head's last layer as Google's scripts write it by hand: `output_weights` [out, hidden],
    multiplied transposed (`run_pretraining.py`, `run_classifier.py`, `run_squad.py`), and
    `output_bias`; in PyTorch a Linear. `google_scope` "" is the top level (`run_classifier.py`)."""
    prefix = f"{google_scope}/" if google_scope else ""
    yield Parameter((*ours, "kernel"), Stored(f"{hf}.weight", _transpose, _transpose),
                    Stored(f"{prefix}output_weights", _transpose, _transpose))
    yield Parameter((*ours, "bias"), Stored(f"{hf}.bias"), Stored(f"{prefix}output_bias"))


def _attention(config: BertConfig, ours: tuple[str, ...], hf: str, google: str) -> Iterator[Parameter]:
    """Self-attention. Our query, key and value kernels are [hidden, heads, head_dim] (Google's
    [hidden, heads * head_dim], PyTorch's [heads * head_dim, hidden]); the output kernel is
    [heads, head_dim, hidden] (Google's [heads * head_dim, hidden], PyTorch's transposed)."""
    hidden, heads, head_dim = config.hidden_size, config.num_heads, config.head_dim
    for name in ("query", "key", "value"):
        hf_name, google_name = f"{hf}.self.{name}", f"{google}/self/{name}"
        yield Parameter(
            (*ours, name, "kernel"),
            Stored(f"{hf_name}.weight", lambda x: x.reshape(hidden, -1).T,
                   lambda x: x.T.reshape(hidden, heads, head_dim)),
            Stored(f"{google_name}/kernel", lambda x: x.reshape(hidden, -1),
                   lambda x: x.reshape(hidden, heads, head_dim)))
        flat, split = (lambda x: x.reshape(-1)), (lambda x: x.reshape(heads, head_dim))
        yield Parameter((*ours, name, "bias"), Stored(f"{hf_name}.bias", flat, split),
                        Stored(f"{google_name}/bias", flat, split))
    yield Parameter(
        (*ours, "output", "kernel"),
        Stored(f"{hf}.output.dense.weight", lambda x: x.reshape(-1, hidden).T,
               lambda x: x.T.reshape(heads, head_dim, hidden)),
        Stored(f"{google}/output/dense/kernel", lambda x: x.reshape(-1, hidden),
               lambda x: x.reshape(heads, head_dim, hidden)))
    yield Parameter((*ours, "output", "bias"), Stored(f"{hf}.output.dense.bias"),
                    Stored(f"{google}/output/dense/bias"))


def encoder(config: BertConfig) -> Iterator[Parameter]:
    """The embeddings and the layers: what every model kind has and every source must hold."""
    for name in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
        yield Parameter(("bert", "embeddings", name, "embedding"),
                        Stored(f"bert.embeddings.{name}.weight"), Stored(f"bert/embeddings/{name}"))
    yield from layer_norm(("bert", "embeddings", "layer_norm"), "bert.embeddings.LayerNorm",
                          "bert/embeddings/LayerNorm")
    for i in range(config.num_layers):
        ours, hf, google = ("bert", f"layer_{i}"), f"bert.encoder.layer.{i}", f"bert/encoder/layer_{i}"
        yield from _attention(config, (*ours, "attention"), f"{hf}.attention", f"{google}/attention")
        yield from layer_norm((*ours, "attention_layer_norm"), f"{hf}.attention.output.LayerNorm",
                              f"{google}/attention/output/LayerNorm")
        yield from dense((*ours, "intermediate"), f"{hf}.intermediate.dense", f"{google}/intermediate/dense")
        yield from dense((*ours, "output"), f"{hf}.output.dense", f"{google}/output/dense")
        yield from layer_norm((*ours, "output_layer_norm"), f"{hf}.output.LayerNorm",
                              f"{google}/output/LayerNorm")


def pooler(config: BertConfig) -> Iterator[Parameter]:
    """The [CLS] pooler (`modeling.py` always has one; `transformers` only with add_pooling_layer)."""
    yield from dense(("bert", "pooler"), "bert.pooler.dense", "bert/pooler/dense")


def masked_lm(config: BertConfig) -> Iterator[Parameter]:
    """The masked-LM head. Its decoder is tied to the word embeddings in both formats (and in
    ours), so only its bias is a tensor of its own."""
    yield from dense(("masked_lm", "transform"), "cls.predictions.transform.dense",
                     "cls/predictions/transform/dense")
    yield from layer_norm(("masked_lm", "transform_layer_norm"), "cls.predictions.transform.LayerNorm",
                          "cls/predictions/transform/LayerNorm")
    yield Parameter(("masked_lm", "output_bias"), Stored("cls.predictions.bias"),
                    Stored("cls/predictions/output_bias"))


def next_sentence(config: BertConfig) -> Iterator[Parameter]:
    """The next-sentence head: `cls/seq_relationship/output_weights` is [2, hidden]."""
    yield from output_layer(("next_sentence",), "cls.seq_relationship", "cls/seq_relationship")


def sequence_classifier(config: BertConfig) -> Iterator[Parameter]:
    """`BertForSequenceClassification`'s `classifier`; `run_classifier.py`'s top-level
    `output_weights` [num_labels, hidden] and `output_bias`."""
    yield from output_layer(("classifier",), "classifier", google_scope="")


def token_classifier(config: BertConfig) -> Iterator[Parameter]:
    """`BertForTokenClassification`'s `classifier` (Google's scripts have no tagging head)."""
    for parameter in dense(("classifier",), "classifier", google=""):
        yield dataclasses.replace(parameter, google=None)


def span_classifier(config: BertConfig) -> Iterator[Parameter]:
    """`BertForQuestionAnswering`'s `qa_outputs`; `run_squad.py`'s `cls/squad/output_weights`
    [2, hidden] and `output_bias`."""
    yield from output_layer(("qa_outputs",), "qa_outputs", google_scope="cls/squad")


# The heads of each kind of model, after the encoder; `model.model_of_kind` builds each kind.
# `transformers` builds its token-level heads without a pooler (`add_pooling_layer=False`), and so
# do we; `run_squad.py`'s checkpoints hold one, which is then listed as not used.
HEADS: dict[str, tuple[Head, ...]] = {
    "pretraining": (pooler, masked_lm, next_sentence),  # BertForPreTraining; run_pretraining.py
    "encoder": (pooler,),  # BertModel, e.g. the BERT of a sentence-transformers model
    "sequence_classification": (pooler, sequence_classifier),  # run_classifier.py
    "token_classification": (token_classifier,),
    "question_answering": (span_classifier,),  # run_squad.py
}


def parameter_table(config: BertConfig, kind: str = "pretraining") -> Iterator[Parameter]:
    """Every parameter of a model of `kind` (a key of `HEADS`) of shape `config`: the encoder's,
    then the heads' (marked `head`)."""
    if kind not in HEADS:
        raise ValueError(f"no parameter table for a model of kind {kind!r}; known: {sorted(HEADS)}")
    yield from encoder(config)
    for head in HEADS[kind]:
        for parameter in head(config):
            yield dataclasses.replace(parameter, head=True)


def to_format(params: Any, config: BertConfig, format: Format,
              kind: str = "pretraining") -> dict[str, np.ndarray]:
    """Our parameters (scanned layers or not) as `format` stores them: float32 numpy arrays by
    name."""
    params = unscan_params(params, config.num_layers)
    tensors = {}
    for parameter in parameter_table(config, kind):
        stored = parameter.stored(format)
        if stored is None:
            raise ValueError(f"{'/'.join(parameter.path)} has no {format} name: a model of kind "
                             f"{kind!r} cannot be written in that format.")
        value = params
        for key in parameter.path:
            value = value[key]
        tensors[stored.name] = np.ascontiguousarray(stored.to_theirs(np.asarray(value, dtype=np.float32)))
    return tensors


def from_format(tensors: Mapping[str, Any], config: BertConfig, format: Format,
                describe_misfit: Callable[[str, tuple[int, ...], tuple[int, ...]], str],
                kind: str = "pretraining", num_labels: int = 2) -> tuple[dict, list[str], list[str], set[str]]:
    """Our unscanned parameters (float32 numpy arrays) from the tensors of a checkpoint in
    `format`, by name (a mapping that may read each when asked for), as a model of `kind` (with
    `num_labels` for a classifier). A missing head parameter is
    listed, to be initialized afresh; any other missing tensor, and every tensor whose shape does
    not fit `config` (`describe_misfit(name, its shape, the shape config implies)`), is an error.

    Returns (params, missing paths, errors, the names used).
    """
    shapes = parameter_shapes(dataclasses.replace(config, scan_layers=False), kind, num_labels)
    params: dict = {}
    missing, errors, used = [], [], set()
    for parameter in parameter_table(config, kind):
        stored, key = parameter.stored(format), "/".join(parameter.path)
        if stored is None:
            continue
        if stored.name not in tensors:
            if parameter.head:
                missing.append(key)
            else:
                errors.append(f"{stored.name} is missing")
            continue
        used.add(stored.name)
        tensor = tensors[stored.name]
        # The shape `config` implies (np.empty allocates nothing it does not need).
        expected = stored.to_theirs(np.empty(shapes[key], np.float32)).shape
        if tuple(tensor.shape) != expected:
            errors.append(describe_misfit(stored.name, tuple(tensor.shape), expected))
            continue
        set_path(params, parameter.path,
                 np.ascontiguousarray(stored.from_theirs(np.asarray(tensor, dtype=np.float32))))
    return params, missing, errors, used
