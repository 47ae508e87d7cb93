"""Export to the Hugging Face BERT format: a directory that `transformers`
(`BertForPreTraining.from_pretrained`, `BertModel`, `pipeline("fill-mask")`) loads as is.

The tensors' names and conversions are those of `bert_jax.convert.parameter_table`, which
`bert_jax.convert.hf_import` reads the other way; they are transposes and reshapes only, so export
followed by import gives back bit-identical parameters. The tokenizer files come from
`bert_jax.convert.hf_tokenizer` (WordPiece `vocab.txt`, or a SentencePiece model ALBERT style).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import save_file

from bert_jax.convert.export_directory import staged_export
from bert_jax.convert.hf_tokenizer import write_tokenizer_files
from bert_jax.convert.parameter_table import to_format
from bert_jax.model import BertConfig


def to_huggingface_state_dict(params: Any, config: BertConfig) -> dict[str, np.ndarray]:
    """Our parameters (scanned layers or not) as a Hugging Face `BertForPreTraining` state dict of
    float32 numpy arrays. The masked-LM decoder's weight and bias are tied (to the word embeddings
    and `cls.predictions.bias`) and `transformers` re-ties both on load, so neither is written
    twice."""
    return to_format(params, config, "huggingface")


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
                          do_lower_case: bool, output_dir: str | os.PathLike, *,
                          overwrite: bool = False) -> Path:
    """Writes config.json, model.safetensors (float32, all of `BertForPreTraining`: encoder,
    pooler, masked-LM and next-sentence heads) and the tokenizer to `output_dir`: vocab.txt for a
    WordPiece `vocab_file`, spiece.model and tokenizer.json for a SentencePiece one, with
    tokenizer_config.json and special_tokens_map.json.

    `output_dir` must be new or empty, or hold an earlier export and `overwrite` be set: then only
    the files that export wrote are replaced (`bert_jax.convert.export_directory`, which also
    keeps a crash from leaving a half-written file under a final name).
    """
    if not Path(vocab_file).is_file():
        raise FileNotFoundError(f"vocab file {vocab_file} (data.vocab_file of the run) does not exist.")
    with staged_export(output_dir, overwrite=overwrite, writer="bert-jax export") as staging:
        save_file(to_huggingface_state_dict(params, config), str(staging / "model.safetensors"),
                  metadata={"format": "pt"})
        (staging / "config.json").write_text(json.dumps(huggingface_config(config), indent=2) + "\n")
        write_tokenizer_files(vocab_file, do_lower_case, config.max_position_embeddings, staging)
    return Path(output_dir)
