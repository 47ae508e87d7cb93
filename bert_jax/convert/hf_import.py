"""Import of a Hugging Face BERT directory: `config.json`, weights (`model.safetensors`, a sharded
`model.safetensors.index.json`, or PyTorch's `pytorch_model.bin`) and the tokenizer files.

Any BERT saved by `transformers` is read: `BertModel` (names without the `bert.` prefix, no heads),
`BertForMaskedLM` (no pooler, no next-sentence head), `BertForPreTraining`, or a fine-tuned model
(`BertForSequenceClassification`, `BertForTokenClassification`, `BertForQuestionAnswering`). It is
read as the kind of model asked for (`parameter_table.HEADS`), as `transformers`' `from_pretrained`
reads it as the class it is called on: tensors of other heads are left out and listed, and heads
the directory does not hold are reported as missing, to be freshly initialized
(`imported.complete_params`). A classifier's labels (`id2label`) and `problem_type` come along. The tensors are mapped through
`parameter_table`, which export reads the other way, so export and import cannot drift apart.

What our model cannot represent is refused, naming the field: another architecture
(`model_type` other than "bert"), relative position embeddings, a decoder with cross-attention,
an activation other than the GELUs, an untied masked-LM decoder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from bert_jax.convert.imported import ImportedModel
from bert_jax.convert.parameter_table import from_format
from bert_jax.convert.weight_files import check_finite, read_pytorch_state_dict, read_safetensors
from bert_jax.errors import DamagedWeights
from bert_jax.model import BertConfig
from input_pipeline.tokenizers.sentencepiece_tokenizer import SentencePieceTokenizer

# Hugging Face activation names -> ours. "gelu" is the exact erf form; the others are the tanh
# approximation (written three ways in `transformers`, all the same function).
ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
               "gelu_fast": "gelu_tanh"}

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


def is_huggingface_directory(path: str | os.PathLike) -> bool:
    path = Path(path)
    return (path / "config.json").is_file() and any((path / name).is_file() for name in WEIGHT_FILES)


def bert_config_from_huggingface(hf: dict[str, Any], source: str = "config.json") -> BertConfig:
    """Our `BertConfig` for a Hugging Face BERT `config.json` (as a dict); raises ValueError
    naming every field whose value our model cannot represent."""
    problems = []
    if hf.get("model_type", "bert") != "bert":
        problems.append(f"model_type={hf.get('model_type')!r}: only 'bert' is supported (other "
                        "architectures name and shape their weights differently)")
    if hf.get("position_embedding_type", "absolute") != "absolute":
        problems.append(f"position_embedding_type={hf['position_embedding_type']!r}: only "
                        "'absolute' position embeddings are supported")
    if hf.get("is_decoder") or hf.get("add_cross_attention"):
        problems.append("is_decoder/add_cross_attention: only the bidirectional encoder is supported")
    if hf.get("tie_word_embeddings", True) is False:
        problems.append("tie_word_embeddings=False: our masked-LM decoder is always the word "
                        "embeddings")
    activation = hf.get("hidden_act", "gelu")
    if activation not in ACTIVATIONS:
        problems.append(f"hidden_act={activation!r}: supported are {sorted(ACTIVATIONS)}")
    hidden, heads = hf.get("hidden_size", 768), hf.get("num_attention_heads", 12)
    if hidden % heads:
        problems.append(f"hidden_size={hidden} is not divisible by num_attention_heads={heads}")
    if problems:
        raise ValueError(f"{source}: this BERT cannot be imported:\n  - " + "\n  - ".join(problems))
    # Defaults are `transformers.BertConfig`'s, for fields an old config.json leaves out.
    return BertConfig(
        vocab_size=hf.get("vocab_size", 30522), hidden_size=hidden,
        num_layers=hf.get("num_hidden_layers", 12), num_heads=heads,
        intermediate_size=hf.get("intermediate_size", 3072),
        max_position_embeddings=hf.get("max_position_embeddings", 512),
        type_vocab_size=hf.get("type_vocab_size", 2),
        hidden_dropout_rate=hf.get("hidden_dropout_prob", 0.1),
        attention_dropout_rate=hf.get("attention_probs_dropout_prob", 0.1),
        layer_norm_eps=hf.get("layer_norm_eps", 1e-12),
        initializer_range=hf.get("initializer_range", 0.02),
        hidden_act=ACTIVATIONS[activation], scan_layers=False)


def read_weights(directory: str | os.PathLike) -> dict[str, np.ndarray]:
    """All tensors of the directory's weights file(s), by name, as numpy arrays.

    Raises DamagedWeights naming the file (and the tensor) when a file is unreadable (empty,
    truncated, not its format) or a tensor holds NaN or infinity (`weight_files`).
    """
    directory = Path(directory)
    if (directory / "model.safetensors").is_file():
        files = [directory / "model.safetensors"]
    elif (directory / "model.safetensors.index.json").is_file():
        index_path = directory / "model.safetensors.index.json"
        try:
            weight_map = json.loads(index_path.read_text())["weight_map"]
            files = [directory / name for name in sorted(set(weight_map.values()))]
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
            raise DamagedWeights(f"{index_path}: not a safetensors index, a JSON object with a "
                                 f"weight_map ({type(e).__name__}: {e}).") from None
    elif (directory / "pytorch_model.bin").is_file():
        tensors = read_pytorch_state_dict(directory / "pytorch_model.bin")
        check_finite(tensors, directory / "pytorch_model.bin")
        return tensors
    else:
        raise FileNotFoundError(f"{directory} holds no Hugging Face weights (looked for "
                                f"{', '.join(WEIGHT_FILES)}).")
    tensors: dict[str, np.ndarray] = {}
    for path in files:
        if not path.is_file():
            raise FileNotFoundError(f"{path}, a shard the safetensors index lists, is missing.")
        shard = read_safetensors(path)
        check_finite(shard, path)
        tensors.update(shard)
    return tensors


def _canonical_name(name: str) -> str:
    """The `BertForPreTraining` name of a tensor saved by any BERT class or version: bare
    `BertModel` names gain the `bert.` prefix, and the LayerNorm `gamma`/`beta` of old
    checkpoints become `weight`/`bias` (as `transformers` renames them on load)."""
    if name.startswith(("embeddings.", "encoder.", "pooler.")):
        name = "bert." + name
    if ".LayerNorm." in name:
        name = name.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
    return name


def from_huggingface_state_dict(tensors: dict[str, np.ndarray], config: BertConfig,
                                source: str = "the checkpoint", kind: str = "pretraining",
                                num_labels: int = 2) -> tuple[dict, list[str], list[str]]:
    """(our unscanned parameters as float32 numpy arrays, the paths of missing head parameters,
    the names of tensors not used) for a Hugging Face BERT state dict, read as a model of `kind`
    (`parameter_table.HEADS`; `num_labels` for a classifier).

    Raises ValueError if a tensor of the embeddings or the encoder is missing or has the wrong
    shape (naming it).
    """
    named = {_canonical_name(name): value for name, value in tensors.items()}
    # The decoder weight is the word embeddings (tied) and its bias `cls.predictions.bias`;
    # older checkpoints store the bias only under the decoder's name.
    if "cls.predictions.bias" not in named and "cls.predictions.decoder.bias" in named:
        named["cls.predictions.bias"] = named["cls.predictions.decoder.bias"]
    used = {"cls.predictions.decoder.weight", "cls.predictions.decoder.bias",
            "bert.embeddings.position_ids"}  # tied, tied, and a constant buffer

    params, missing, errors, found = from_format(
        named, config, "huggingface",
        lambda name, shape, expected: f"{name} has shape {shape}; config.json implies {expected}",
        kind, num_labels)
    used |= found
    if errors:
        raise ValueError(f"{source}: not a complete BERT of its config.json:\n  - " + "\n  - ".join(errors))
    ignored = sorted(name for name in named if name not in used)
    return params, missing, ignored


def tokenizer_files(directory: Path) -> tuple[str | None, bool]:
    """(vocab file, do_lower_case) of the directory's tokenizer: vocab.txt (WordPiece) or
    spiece.model (SentencePiece), or (None, True) when it has neither."""
    if (directory / "vocab.txt").is_file():
        settings = {}
        if (directory / "tokenizer_config.json").is_file():
            settings = json.loads((directory / "tokenizer_config.json").read_text(encoding="utf-8"))
        # BertTokenizer lower-cases unless its config says otherwise.
        return str(directory / "vocab.txt"), bool(settings.get("do_lower_case", True))
    if (directory / "spiece.model").is_file():
        # Lower-casing is part of a SentencePiece model's normalization.
        return str(directory / "spiece.model"), SentencePieceTokenizer(directory / "spiece.model").do_lower_case
    return None, True


def labels_from_huggingface(hf: dict[str, Any]) -> tuple[str, ...]:
    """The label names by id of a `config.json`'s `id2label` (its keys are strings in JSON)."""
    id2label = hf.get("id2label") or {}
    return tuple(id2label[key] for key in sorted(id2label, key=int))


def load_huggingface(directory: str | os.PathLike, model_kind: str = "pretraining",
                     num_labels: int | None = None) -> ImportedModel:
    """Reads a Hugging Face BERT directory into our parameters as a model of `model_kind` (see
    the module docstring). A classifier has `num_labels` outputs, by default as many as
    config.json's labels (`num_labels` as `transformers.PretrainedConfig` counts them)."""
    directory = Path(directory)
    config_path = directory / "config.json"
    hf = json.loads(config_path.read_text(encoding="utf-8"))
    config = bert_config_from_huggingface(hf, str(config_path))
    labels = labels_from_huggingface(hf)
    if num_labels is None:
        num_labels = len(labels) or hf.get("num_labels", 2)
    params, missing, ignored = from_huggingface_state_dict(read_weights(directory), config, str(directory),
                                                           model_kind, num_labels)
    vocab_file, do_lower_case = tokenizer_files(directory)
    return ImportedModel(config=config, params=params, missing=missing, ignored=ignored,
                         vocab_file=vocab_file, do_lower_case=do_lower_case,
                         source=str(directory), kind="Hugging Face", model_kind=model_kind,
                         num_labels=num_labels, labels=labels, problem_type=hf.get("problem_type") or "")
