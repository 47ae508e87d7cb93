"""Export to the Hugging Face BERT format: a directory that `transformers`
(`BertForPreTraining.from_pretrained`, `BertModel`, `pipeline("fill-mask")`) loads as is.

Our parameter layout mirrors BERT's, so the conversion is one table: each Hugging Face name, the
path of our parameter, and the reshaping between Flax's `[in, out]` kernels (with attention heads
as separate axes) and PyTorch's `[out, in]` weights.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from bert_jax.model import BertConfig, unscan_params

Transform = Callable[[np.ndarray], np.ndarray]


def _same(x: np.ndarray) -> np.ndarray:
    return x


def _dense_kernel(x: np.ndarray) -> np.ndarray:
    """A Flax kernel [in..., out...] as a PyTorch Linear weight [out, in]."""
    return x.T


def _qkv_kernel(x: np.ndarray) -> np.ndarray:
    """[hidden, heads, head_dim] to [heads * head_dim, hidden]."""
    return x.reshape(x.shape[0], -1).T


def _attention_output_kernel(x: np.ndarray) -> np.ndarray:
    """[heads, head_dim, hidden] to [hidden, heads * head_dim]."""
    return x.reshape(-1, x.shape[-1]).T


def _flatten(x: np.ndarray) -> np.ndarray:
    return x.reshape(-1)


def parameter_table(config: BertConfig) -> Iterator[tuple[str, tuple[str, ...], Transform]]:
    """(Hugging Face name, our parameter path, our array -> theirs) for every exported tensor."""
    def dense(hf: str, ours: tuple[str, ...], kernel: Transform = _dense_kernel, bias: Transform = _same):
        yield f"{hf}.weight", (*ours, "kernel"), kernel
        yield f"{hf}.bias", (*ours, "bias"), bias

    def layer_norm(hf: str, ours: tuple[str, ...]):
        yield f"{hf}.weight", (*ours, "scale"), _same
        yield f"{hf}.bias", (*ours, "bias"), _same

    emb = ("bert", "embeddings")
    for name in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
        yield f"bert.embeddings.{name}.weight", (*emb, name, "embedding"), _same
    yield from layer_norm("bert.embeddings.LayerNorm", (*emb, "layer_norm"))
    for i in range(config.num_layers):
        hf, ours = f"bert.encoder.layer.{i}", ("bert", f"layer_{i}")
        for name in ("query", "key", "value"):
            yield from dense(f"{hf}.attention.self.{name}", (*ours, "attention", name), _qkv_kernel, _flatten)
        yield from dense(f"{hf}.attention.output.dense", (*ours, "attention", "output"),
                         _attention_output_kernel)
        yield from layer_norm(f"{hf}.attention.output.LayerNorm", (*ours, "attention_layer_norm"))
        yield from dense(f"{hf}.intermediate.dense", (*ours, "intermediate"))
        yield from dense(f"{hf}.output.dense", (*ours, "output"))
        yield from layer_norm(f"{hf}.output.LayerNorm", (*ours, "output_layer_norm"))
    yield from dense("bert.pooler.dense", ("bert", "pooler"))
    yield from dense("cls.predictions.transform.dense", ("masked_lm", "transform"))
    yield from layer_norm("cls.predictions.transform.LayerNorm", ("masked_lm", "transform_layer_norm"))
    # The decoder weight is tied to the word embeddings and its bias to this one; `transformers`
    # re-ties both on load, so neither is written twice.
    yield "cls.predictions.bias", ("masked_lm", "output_bias"), _same
    yield from dense("cls.seq_relationship", ("next_sentence",))


def to_huggingface_state_dict(params: Any, config: BertConfig) -> dict[str, np.ndarray]:
    """Our parameters (scanned layers or not) as a Hugging Face `BertForPreTraining` state dict of
    float32 numpy arrays."""
    params = unscan_params(params, config.num_layers)
    tensors = {}
    for hf_name, path, transform in parameter_table(config):
        value = params
        for key in path:
            value = value[key]
        tensors[hf_name] = np.ascontiguousarray(transform(np.asarray(value, dtype=np.float32)))
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
        "hidden_dropout_prob": config.hidden_dropout_rate,
        "attention_probs_dropout_prob": config.attention_dropout_rate,
        "max_position_embeddings": config.max_position_embeddings,
        "type_vocab_size": config.type_vocab_size,
        "initializer_range": config.initializer_range,
        "layer_norm_eps": config.layer_norm_eps,
        "pad_token_id": 0,
        "torch_dtype": "float32",
    }


def tokenizer_files(do_lower_case: bool, max_length: int) -> dict[str, dict]:
    special = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
               "cls_token": "[CLS]", "mask_token": "[MASK]"}
    return {
        "tokenizer_config.json": {"tokenizer_class": "BertTokenizer", "do_lower_case": do_lower_case,
                                  "strip_accents": None, "tokenize_chinese_chars": True,
                                  "model_max_length": max_length, **special},
        "special_tokens_map.json": special,
    }


def export_to_huggingface(params: Any, config: BertConfig, vocab_file: str | os.PathLike,
                          do_lower_case: bool, output_dir: str | os.PathLike) -> Path:
    """Writes config.json, model.safetensors, vocab.txt and the tokenizer config to `output_dir`.

    The directory is assembled under a temporary name and renamed when complete, so a crash never
    leaves a half-written export under the final name.
    """
    from safetensors.numpy import save_file

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
    shutil.copyfile(vocab_file, tmp / "vocab.txt")
    for name, content in tokenizer_files(do_lower_case, config.max_position_embeddings).items():
        (tmp / name).write_text(json.dumps(content, indent=2) + "\n")
    if output_dir.exists():
        shutil.rmtree(output_dir)
    os.replace(tmp, output_dir)
    return output_dir
