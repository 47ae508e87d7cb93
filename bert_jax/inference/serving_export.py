"""Serving export: the encoder as a self-contained StableHLO artifact (`jax.export`) that runs
without this project's code (only `jax` is needed to load and call it), optionally also as a
TensorFlow SavedModel (through `jax2tf`).

The artifact's inputs are `input_ids`, `input_mask` and `segment_ids`, int32 of shape
[b, l] with symbolic (polymorphic) b and l: one artifact serves every batch size and every length
up to the model's `max_position_embeddings` (a longer input is refused when called). Its output is
a dict: `sequence_output` [b, l, hidden], `pooled_output` [b, hidden], `nsp_logits` [b, 2]
(index 0: B is the next sentence) and, if asked for, `mlm_logits` [b, l, vocab]; all float32
(`bert-jax export-serving` leaves out those whose heads the source lacks).
The weights are constants inside the artifact, so it is one file (up to the 2 GB a serialized
module may hold: BERT-Large in float32 is 1.3 GB).

The output directory holds:
  model.stablehlo   `jax.export.Exported.serialize()` bytes
  serving.json      inputs, outputs (names, dtypes, shapes), the input format, the tokenizer
  vocab.txt         the WordPiece vocab (or tokenizer.model for a SentencePiece one)
  saved_model/      the TensorFlow SavedModel, when asked for (signature "serving_default")
  .bert-jax-export.json   the files above, which a later export may replace (`--overwrite`)

Loading it (nothing else from this project needed):

    import jax, numpy as np
    exported = jax.export.deserialize(bytearray(open("DIR/model.stablehlo", "rb").read()))
    outputs = exported.call(input_ids, input_mask, segment_ids)   # int32 [b, l] numpy arrays
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bert_jax.convert.export_directory import check_export_directory, staged_export
from bert_jax.model import BertConfig, BertForPreTraining
from input_pipeline.tokenizers.wordpiece import save_vocab

ARTIFACT_FILE = "model.stablehlo"
METADATA_FILE = "serving.json"
SAVED_MODEL_DIR = "saved_model"
INPUT_NAMES = ("input_ids", "input_mask", "segment_ids")
OUTPUT_NAMES = ("sequence_output", "pooled_output", "nsp_logits", "mlm_logits")
DEFAULT_OUTPUTS = ("sequence_output", "pooled_output", "nsp_logits")
# CPU and NVIDIA GPUs: one artifact, the platform chosen when it is called.
DEFAULT_PLATFORMS = ("cpu", "cuda")
PLATFORMS = ("cpu", "cuda", "rocm", "tpu")  # jax.export's names (it accepts unknown ones silently).

INPUT_FORMAT = ("[CLS] A [SEP] or [CLS] A [SEP] B [SEP] token ids, padded at the end with 0 "
                "([PAD]); input_mask is 1 on tokens and 0 on padding; segment_ids is 0 up to and "
                "including the first [SEP], 1 after it, 0 on padding. nsp_logits index 0 means "
                "'B follows A', index 1 'B is random'.")


def serving_config(config: BertConfig) -> BertConfig:
    """The model config for export: the portable attention, since the artifact must lower for
    every platform listed, and "auto" would pick cuDNN's kernel (CUDA only) on a GPU host."""
    return dataclasses.replace(config, attention="plain", hidden_dropout_rate=0.0,
                               attention_dropout_rate=0.0)


def serving_function(params: Any, config: BertConfig, outputs: Sequence[str] = DEFAULT_OUTPUTS
                     ) -> Callable[..., dict[str, jax.Array]]:
    """(params, input_ids, input_mask, segment_ids) -> {output name: float32 array}."""
    unknown = set(outputs) - set(OUTPUT_NAMES)
    if unknown or not outputs:
        raise ValueError(f"outputs {sorted(unknown) or '(none)'}: choose from {OUTPUT_NAMES}.")
    model = BertForPreTraining(serving_config(config))

    def heads(module: BertForPreTraining, input_ids, input_mask, segment_ids) -> dict[str, jax.Array]:
        sequence, pooled = module.bert(input_ids, input_mask, segment_ids)
        result = {"sequence_output": sequence, "pooled_output": pooled}
        if "nsp_logits" in outputs:
            result["nsp_logits"] = module.next_sentence(pooled)
        if "mlm_logits" in outputs:
            result["mlm_logits"] = module.masked_lm(sequence, module.bert.embeddings.word_embeddings.embedding)
        return {name: result[name].astype(jnp.float32) for name in outputs}

    def serve(params, input_ids, input_mask, segment_ids):
        return model.apply({"params": params}, input_ids, input_mask, segment_ids, method=heads)
    return serve


def export_stablehlo(params: Any, config: BertConfig, outputs: Sequence[str] = DEFAULT_OUTPUTS,
                     platforms: Sequence[str] = DEFAULT_PLATFORMS) -> jax.export.Exported:
    """The encoder with `params` baked in, exported for symbolic batch `b` and length `l`
    (1 <= l <= max_position_embeddings, checked when the artifact is called)."""
    unknown = [p for p in platforms if p not in PLATFORMS]
    if unknown or not platforms:
        raise ValueError(f"platforms {unknown or '(none)'}: choose from {PLATFORMS}.")
    serve = serving_function(params, config, outputs)
    # Plain numpy arrays: the weights become constants of the module, whatever device or
    # sharding the checkpoint was restored with.
    host_params = jax.device_get(params)
    b, l = jax.export.symbolic_shape(
        "b, l", constraints=(f"l <= {config.max_position_embeddings}",))
    spec = jax.ShapeDtypeStruct((b, l), jnp.int32)
    fn = jax.jit(lambda *inputs: serve(host_params, *inputs))
    return jax.export.export(fn, platforms=tuple(platforms))(spec, spec, spec)


def _shape(aval: Any) -> list[int | str]:
    return [d if isinstance(d, int) else str(d) for d in aval.shape]


def _write_vocab(tokenizer: Any, directory: Path) -> str:
    """The tokenizer's vocab file in `directory`; returns its name."""
    model_path = getattr(tokenizer, "model_path", None)
    if model_path is not None:  # SentencePiece: the model file is the vocab.
        shutil.copyfile(model_path, directory / "tokenizer.model")
        return "tokenizer.model"
    tokens = sorted(tokenizer.vocab, key=tokenizer.vocab.__getitem__)
    save_vocab(tokens, directory / "vocab.txt")
    return "vocab.txt"


def export_serving(params: Any, config: BertConfig, tokenizer: Any, output_dir: str | os.PathLike, *,
                   outputs: Sequence[str] = DEFAULT_OUTPUTS, platforms: Sequence[str] = DEFAULT_PLATFORMS,
                   saved_model: bool = False, overwrite: bool = False) -> Path:
    """Writes the serving artifact computing `outputs` (of OUTPUT_NAMES), its `serving.json` and
    the vocab (and, with `saved_model`, a TensorFlow SavedModel) to `output_dir`. Returns the
    directory.

    `output_dir` must be new or empty, or hold an earlier export and `overwrite` be set: then only
    the files that export wrote are replaced (`bert_jax.convert.export_directory`, which also
    keeps a crash from leaving a half-written file under a final name).

    Raises FileExistsError if `output_dir` holds files no export wrote, or an earlier export and
    not `overwrite` (checked before the model is exported).
    """
    check_export_directory(output_dir, overwrite=overwrite)
    exported = export_stablehlo(params, config, outputs, platforms)
    with staged_export(output_dir, overwrite=overwrite, writer="bert-jax export-serving") as staging:
        _write_files(exported, params, config, tokenizer, outputs, saved_model, staging)
    return Path(output_dir)


def _write_files(exported: jax.export.Exported, params: Any, config: BertConfig, tokenizer: Any,
                 outputs: Sequence[str], saved_model: bool, tmp: Path) -> None:
    """The files of `export_serving`, into `tmp`."""
    (tmp / ARTIFACT_FILE).write_bytes(exported.serialize())
    vocab = _write_vocab(tokenizer, tmp)
    if saved_model:
        save_tf_saved_model(params, config, outputs, tmp / SAVED_MODEL_DIR)
    out_avals = jax.tree.unflatten(exported.out_tree, exported.out_avals)
    metadata = {
        "format": "jax.export (serialized StableHLO)",
        "artifact": ARTIFACT_FILE,
        "jax_version": jax.__version__,
        "calling_convention_version": exported.calling_convention_version,
        "platforms": list(exported.platforms),
        "inputs": [{"name": name, "dtype": str(aval.dtype), "shape": _shape(aval)}
                   for name, aval in zip(INPUT_NAMES, exported.in_avals)],
        "outputs": [{"name": name, "dtype": str(aval.dtype), "shape": _shape(aval)}
                    for name, aval in out_avals.items()],
        "max_length": config.max_position_embeddings,
        "input_format": INPUT_FORMAT,
        "tokenizer": {"vocab": vocab, "do_lower_case": bool(tokenizer.do_lower_case),
                      "special_token_ids": {"[PAD]": tokenizer.pad_id, "[UNK]": tokenizer.unk_id,
                                            "[CLS]": tokenizer.cls_id, "[SEP]": tokenizer.sep_id,
                                            "[MASK]": tokenizer.mask_id}},
        "model": {"hidden_size": config.hidden_size, "num_layers": config.num_layers,
                  "vocab_size": config.vocab_size, "dtype": config.dtype},
        "saved_model": SAVED_MODEL_DIR if saved_model else None,
        "usage": ("exported = jax.export.deserialize(bytearray(open('model.stablehlo', 'rb').read())); "
                  "outputs = exported.call(input_ids, input_mask, segment_ids)"),
    }
    (tmp / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")


def save_tf_saved_model(params: Any, config: BertConfig, outputs: Sequence[str], path: str | os.PathLike) -> None:
    """A TensorFlow SavedModel of the encoder (signature "serving_default", inputs int32
    [None, None]), through `jax.experimental.jax2tf`. The weights are TF variables, not graph
    constants (a GraphDef is limited to 2 GB), so the function takes them as its first argument.

    Raises ValueError if TensorFlow or jax2tf cannot be imported.
    """
    try:  # only the SavedModel needs TensorFlow; the StableHLO export does not
        import tensorflow as tf
        from jax.experimental import jax2tf
    except ImportError as e:
        raise ValueError(f"a TensorFlow SavedModel needs tensorflow and jax2tf ({e}); "
                         f"`pip install tensorflow-cpu`, or export without it.") from None
    serve = serving_function(params, config, outputs)
    tf_serve = jax2tf.convert(
        serve, polymorphic_shapes=[None, "(b, l)", "(b, l)", "(b, l)"],
        polymorphic_constraints=(f"l <= {config.max_position_embeddings}",), with_gradient=False)
    variables = jax.tree.map(lambda x: tf.Variable(np.asarray(x), trainable=False), jax.device_get(params))
    module = tf.Module()
    # Tracked as a flat list, so that the SavedModel saves them; the function reads the tree.
    module.variables_list = jax.tree.leaves(variables)
    spec = [tf.TensorSpec([None, None], tf.int32, name=name) for name in INPUT_NAMES]

    @tf.function(autograph=False, input_signature=spec)
    def serving_default(input_ids, input_mask, segment_ids):
        return tf_serve(variables, input_ids, input_mask, segment_ids)

    module.serving_default = serving_default
    tf.saved_model.save(module, os.fspath(path), signatures={"serving_default": serving_default})
