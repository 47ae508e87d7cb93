"""Weights read from another format, as our parameters: `ImportedModel` (our `BertConfig`, our
unscanned parameter tree, and the head parameters the source did not hold), and what every
importer shares: the shapes our parameters must have, and completing the missing heads with fresh
values (the tensors themselves are read through `parameter_table`).

Only heads may be missing (the pooler, the masked-LM and next-sentence heads: a `BertModel` has no
pretraining heads; a task head that a pretrained source lacks); those are freshly initialized, and
every place that does so says which. The importer is told which kind of model to read
(`parameter_table.HEADS`), as `transformers`' `from_pretrained` is by the class it is called on.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from typing import Any

import flax.linen as nn
import jax
import numpy as np

from bert_jax.model import BertConfig, model_of_kind, scan_params

logger = logging.getLogger(__name__)


# The fields that fix the parameters' shapes, and those that change the function they compute:
# importing into a model that differs in any of them is refused.
SHAPE_FIELDS = ("vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size",
                "max_position_embeddings", "type_vocab_size")


FUNCTION_FIELDS = ("hidden_act", "layer_norm_eps")


@dataclasses.dataclass
class ImportedModel:
    """Weights read from a checkpoint of another format (or another work directory)."""
    config: BertConfig  # the model the weights belong to (scan_layers=False)
    params: dict        # our unscanned parameter tree, float32 numpy arrays; missing heads absent
    missing: list[str]  # paths ("masked_lm/transform/kernel") of the head parameters not found
    ignored: list[str]  # names of source tensors that are not part of our model (task heads)
    vocab_file: str | None
    do_lower_case: bool
    source: str
    kind: str           # "Hugging Face", "Google TensorFlow" or "bert-jax"
    model_kind: str = "pretraining"  # the key of `parameter_table.HEADS` the params are read as
    num_labels: int = 2              # of a classification head (as read, or as asked for)
    labels: tuple[str, ...] = ()     # the source's label names by id (`id2label`), if it has them
    problem_type: str = ""           # the source's `problem_type` ("regression", ...), if any

    def describe(self) -> str:
        """One line for logs: where from, and what was freshly initialized."""
        fresh = (f"freshly initialized (not in the source): {', '.join(_group(self.missing))}"
                 if self.missing else "nothing freshly initialized")
        ignored = f"; source tensors not used: {', '.join(self.ignored)}" if self.ignored else ""
        return f"{self.kind} checkpoint {self.source}: {fresh}{ignored}"


def _group(paths: list[str]) -> list[str]:
    """Parameter paths shortened to their modules ("masked_lm/transform/kernel" and ".../bias"
    as "masked_lm/transform"), in order."""
    def module(path: str) -> str:
        parent, _, leaf = path.rpartition("/")
        return parent if leaf in ("kernel", "bias", "scale", "embedding") else path
    return list(dict.fromkeys(map(module, paths)))


def set_path(tree: dict, path: tuple[str, ...], value: Any) -> None:
    """tree[path[0]][path[1]]... = value, creating the dicts on the way."""
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


def flatten(tree: Any) -> dict[str, Any]:
    """{"bert/embeddings/word_embeddings/embedding": leaf, ...}."""
    flat = {}
    for keys, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        flat["/".join(str(getattr(k, "key", k)) for k in keys)] = leaf
    return flat


@functools.cache
def parameter_shapes(config: BertConfig, kind: str = "pretraining",
                     num_labels: int = 2) -> dict[str, tuple[int, ...]]:
    """The shape of every parameter of an unscanned model of `kind` (`model.model_of_kind`) of
    `config`, by path."""

    config = dataclasses.replace(config, scan_layers=False)
    ids = jax.ShapeDtypeStruct((1, 2), np.int32)
    model = model_of_kind(config, kind, num_labels)
    boxed = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, x, x), ids)
    return {path: tuple(leaf.shape) for path, leaf in flatten(nn.unbox(boxed["params"])).items()}


def in_layout(params: dict, config: BertConfig) -> dict:
    """Unscanned parameters in the layout of a model of `config` (scanned or not)."""
    return scan_params(params, config.num_layers) if config.scan_layers else params


def initial_params(config: BertConfig, seed: int = 0, kind: str = "pretraining", num_labels: int = 2) -> dict:
    """Freshly initialized unscanned parameters of a model of `kind` of `config`, as numpy
    arrays."""

    config = dataclasses.replace(config, scan_layers=False)
    ids = np.zeros((1, 2), np.int32)
    model = model_of_kind(config, kind, num_labels)
    init = jax.jit(lambda key: nn.unbox(model.init(key, ids, ids, ids)["params"]))
    return jax.device_get(init(jax.random.key(seed)))


def complete_params(imported: ImportedModel, seed: int = 0) -> dict:
    """All parameters of `imported.config` (unscanned): the imported ones, and the missing heads
    freshly initialized (with `seed`)."""
    if not imported.missing:
        return imported.params
    fresh = flatten(initial_params(imported.config, seed, imported.model_kind, imported.num_labels))
    params = jax.tree.map(lambda x: x, imported.params)  # a copy of the dicts, not the arrays
    for path in imported.missing:
        set_path(params, tuple(path.split("/")), fresh[path])
    return params


def check_compatible(imported: BertConfig, model: BertConfig, source: str, where: str = "model") -> None:
    """Raises ValueError naming every field in which `model` differs from the model the imported
    weights belong to, for the fields that fix their shapes or the function they compute."""
    differences = [f"{where}.{field}: {getattr(model, field)!r}, the checkpoint's is "
                   f"{getattr(imported, field)!r}" for field in SHAPE_FIELDS + FUNCTION_FIELDS
                   if getattr(model, field) != getattr(imported, field)]
    if differences:
        raise ValueError(f"the model of the config differs from the one in {source}:\n  - "
                         + "\n  - ".join(differences) + "\nSet these fields to the checkpoint's values.")

