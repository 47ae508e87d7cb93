"""Export to the Hugging Face BERT format: a directory that `transformers`
(`BertForPreTraining.from_pretrained`, `BertModel`, `pipeline("fill-mask")`) loads as is.

Our parameter layout mirrors BERT's, so the conversion is one table (`parameter_table`): each
Hugging Face name, the path of our parameter, and the reshaping between Flax's `[in, out]` kernels
(with attention heads as separate axes) and PyTorch's `[out, in]` weights, in both directions;
`bert_jax.convert.hf_import` reads it backwards. Conversions are transposes and reshapes only, so export
followed by import gives back bit-identical parameters. The tokenizer files come from
`bert_jax.convert.hf_tokenizer` (WordPiece `vocab.txt`, or a SentencePiece model ALBERT style).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import save_file

from bert_jax.convert.hf_tokenizer import write_tokenizer_files
from bert_jax.model import BertConfig, unscan_params

Transform = Callable[[np.ndarray], np.ndarray]


@dataclasses.dataclass(frozen=True)
class TensorMapping:
    """One exported tensor: its Hugging Face name, the path of our parameter, and the exact
    (lossless: transposes and reshapes only) conversions between our array and theirs."""
    hf_name: str
    path: tuple[str, ...]
    to_hf: Transform
    from_hf: Transform


def _same(x: np.ndarray) -> np.ndarray:
    return x


def _transpose(x: np.ndarray) -> np.ndarray:
    """A Flax kernel [in, out] as a PyTorch Linear weight [out, in], and back."""
    return x.T


def parameter_table(config: BertConfig) -> Iterator[TensorMapping]:
    """Every tensor of a Hugging Face `BertForPreTraining` and where it lives among our
    (unscanned) parameters. Import (`bert_jax.convert.hf_import`) reads the same table backwards."""
    hidden, heads, head_dim = config.hidden_size, config.num_heads, config.head_dim

    def dense(hf: str, ours: tuple[str, ...]) -> Iterator[TensorMapping]:
        yield TensorMapping(f"{hf}.weight", (*ours, "kernel"), _transpose, _transpose)
        yield TensorMapping(f"{hf}.bias", (*ours, "bias"), _same, _same)

    def layer_norm(hf: str, ours: tuple[str, ...]) -> Iterator[TensorMapping]:
        yield TensorMapping(f"{hf}.weight", (*ours, "scale"), _same, _same)
        yield TensorMapping(f"{hf}.bias", (*ours, "bias"), _same, _same)

    def projection(hf: str, ours: tuple[str, ...]) -> Iterator[TensorMapping]:
        """Query, key or value: ours [hidden, heads, head_dim] (heads as an axis of their own, for
        sharding) is theirs [heads * head_dim, hidden]."""
        yield TensorMapping(f"{hf}.weight", (*ours, "kernel"),
                            lambda x: x.reshape(hidden, -1).T,
                            lambda x: x.T.reshape(hidden, heads, head_dim))
        yield TensorMapping(f"{hf}.bias", (*ours, "bias"),
                            lambda x: x.reshape(-1), lambda x: x.reshape(heads, head_dim))

    def attention_output(hf: str, ours: tuple[str, ...]) -> Iterator[TensorMapping]:
        """Ours [heads, head_dim, hidden] is theirs [hidden, heads * head_dim]."""
        yield TensorMapping(f"{hf}.weight", (*ours, "kernel"),
                            lambda x: x.reshape(-1, hidden).T,
                            lambda x: x.T.reshape(heads, head_dim, hidden))
        yield TensorMapping(f"{hf}.bias", (*ours, "bias"), _same, _same)

    emb = ("bert", "embeddings")
    for name in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
        yield TensorMapping(f"bert.embeddings.{name}.weight", (*emb, name, "embedding"), _same, _same)
    yield from layer_norm("bert.embeddings.LayerNorm", (*emb, "layer_norm"))
    for i in range(config.num_layers):
        hf, ours = f"bert.encoder.layer.{i}", ("bert", f"layer_{i}")
        for name in ("query", "key", "value"):
            yield from projection(f"{hf}.attention.self.{name}", (*ours, "attention", name))
        yield from attention_output(f"{hf}.attention.output.dense", (*ours, "attention", "output"))
        yield from layer_norm(f"{hf}.attention.output.LayerNorm", (*ours, "attention_layer_norm"))
        yield from dense(f"{hf}.intermediate.dense", (*ours, "intermediate"))
        yield from dense(f"{hf}.output.dense", (*ours, "output"))
        yield from layer_norm(f"{hf}.output.LayerNorm", (*ours, "output_layer_norm"))
    yield from dense("bert.pooler.dense", ("bert", "pooler"))
    yield from dense("cls.predictions.transform.dense", ("masked_lm", "transform"))
    yield from layer_norm("cls.predictions.transform.LayerNorm", ("masked_lm", "transform_layer_norm"))
    # The decoder weight is tied to the word embeddings and its bias to this one; `transformers`
    # re-ties both on load, so neither is written twice.
    yield TensorMapping("cls.predictions.bias", ("masked_lm", "output_bias"), _same, _same)
    yield from dense("cls.seq_relationship", ("next_sentence",))


def to_huggingface_state_dict(params: Any, config: BertConfig) -> dict[str, np.ndarray]:
    """Our parameters (scanned layers or not) as a Hugging Face `BertForPreTraining` state dict of
    float32 numpy arrays."""
    params = unscan_params(params, config.num_layers)
    tensors = {}
    for mapping in parameter_table(config):
        value = params
        for key in mapping.path:
            value = value[key]
        tensors[mapping.hf_name] = np.ascontiguousarray(mapping.to_hf(np.asarray(value, dtype=np.float32)))
    return tensors


def huggingface_config(config: BertConfig) -> dict:
    """`config.json` of a Hugging Face BERT with our model's shape."""
    return {
        "architectures": ["BertForPreTraining"],
        "model_type": "bert",
        "vocab_size": config.vocab_size,
        "hidden_size": config.hidden_size,
        "num_hidden_layers": config.num_layers,
        "num_attention_heads": config.num_heads,
        "intermediate_size": config.intermediate_size,
        "hidden_act": "gelu" if config.hidden_act == "gelu" else "gelu_new",
        "position_embedding_type": "absolute",
        "hidden_dropout_prob": config.hidden_dropout_rate,
        "attention_probs_dropout_prob": config.attention_dropout_rate,
        "max_position_embeddings": config.max_position_embeddings,
        "type_vocab_size": config.type_vocab_size,
        "initializer_range": config.initializer_range,
        "layer_norm_eps": config.layer_norm_eps,
        "pad_token_id": 0,
        "torch_dtype": "float32",
    }


def export_to_huggingface(params: Any, config: BertConfig, vocab_file: str | os.PathLike,
                          do_lower_case: bool, output_dir: str | os.PathLike) -> Path:
    """Writes config.json, model.safetensors (float32, all of `BertForPreTraining`: encoder,
    pooler, masked-LM and next-sentence heads) and the tokenizer to `output_dir`: vocab.txt for a
    WordPiece `vocab_file`, spiece.model and tokenizer.json for a SentencePiece one, with
    tokenizer_config.json and special_tokens_map.json.

    The directory is assembled under a temporary name and renamed when complete, so a crash never
    leaves a half-written export under the final name.
    """

    output_dir = Path(output_dir)
    if output_dir.exists() and not (output_dir / "model.safetensors").is_file():
        raise FileExistsError(f"{output_dir} exists and is not an earlier export (it has no "
                              "model.safetensors); choose a new directory, nothing was written.")
    if not Path(vocab_file).is_file():
        raise FileNotFoundError(f"vocab file {vocab_file} (data.vocab_file of the run) does not exist.")
    tmp = output_dir.with_name(output_dir.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(to_huggingface_state_dict(params, config), str(tmp / "model.safetensors"),
              metadata={"format": "pt"})
    (tmp / "config.json").write_text(json.dumps(huggingface_config(config), indent=2) + "\n")
    write_tokenizer_files(vocab_file, do_lower_case, config.max_position_embeddings, tmp)
    if output_dir.exists():
        shutil.rmtree(output_dir)
    os.replace(tmp, output_dir)
    return output_dir
