"""Writes a BERT checkpoint in Google's original TensorFlow layout, with Google's own code, and
that code's outputs on a few inputs: the reference for importing Google checkpoints.

    python tests/support/google_bert_reference.py OUT_DIR CONFIG_JSON VOCAB_FILE [SEED] [--optimizer-slots]
        [--head=classifier | --head=squad]

The model is `bert.modeling.BertModel` and the pretraining heads are
`bert.run_pretraining.get_masked_lm_output` / `get_next_sentence_output`, from the bert-tensorflow
package (Google's repository as published on PyPI), run in TF1 graph mode. Every variable is
moved off its initial value (LayerNorm gammas off 1, biases off 0) before the checkpoint is
saved, so a variable imported into the wrong place cannot go unnoticed. OUT_DIR receives
bert_config.json, bert_model.ckpt.*, vocab.txt and reference.npz (inputs and outputs).

With --optimizer-slots the checkpoint is laid out as one from a pretraining run: the training op
of `run_pretraining.py` (`bert.optimization.create_optimizer` on the masked-LM plus NSP loss)
creates Adam's `<variable>/adam_m` and `/adam_v` slots and `global_step`, and the saver saves
every global variable, as the Estimator's does. The slots get trained-looking values (adam_v
positive) and global_step a count, all drawn after the model's variables, so that the model,
and reference.npz, are the same as without the flag for the same seed.

Two shims stand in for what TensorFlow 2 removed; neither touches the model's arithmetic
beyond what the removed functions did:
* `tf.contrib.layers.layer_norm` (gone with tf.contrib): the same variables (`LayerNorm/beta`,
  `LayerNorm/gamma`) and formula (moments over the last axis, epsilon 1e-12);
* `tf.compat.v1.layers.dense` (gone with Keras 2): the same variables (`dense/kernel`
  [in, out], `dense/bias`) and `x @ kernel + bias`, then the activation.
With --head the checkpoint is a fine-tuned one instead: the model is the `create_model` of
`bert/run_classifier.py` (3 labels: top-level `output_weights` [3, hidden] and `output_bias` on the
pooled output) or of `bert/run_squad.py` (`cls/squad/output_weights` [2, hidden] over every token),
taken from the installed scripts by name (their imports need TensorFlow 1's flags) and run as
published; reference.npz then holds `logits`, or `start_logits` and `end_logits`.

A separate process, because graph mode is process-wide and TensorFlow's flags are global.
"""

from __future__ import annotations

import json
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import tensorflow.compat.v1 as tf


def _layer_norm(inputs, begin_norm_axis=-1, begin_params_axis=-1, scope=None):
    """tf.contrib.layers.layer_norm over the last axis, as modeling.layer_norm calls it."""
    assert begin_norm_axis == begin_params_axis == -1
    with tf.variable_scope(scope, default_name="LayerNorm"):
        shape = inputs.shape[-1:]
        beta = tf.get_variable("beta", shape=shape, initializer=tf.zeros_initializer())
        gamma = tf.get_variable("gamma", shape=shape, initializer=tf.ones_initializer())
        mean, variance = tf.nn.moments(inputs, [-1], keep_dims=True)
        return tf.nn.batch_normalization(inputs, mean, variance, offset=beta, scale=gamma,
                                         variance_epsilon=1e-12)


def _dense(inputs, units, activation=None, name=None, kernel_initializer=None):
    """tf.layers.dense for the 2-D inputs modeling.py and run_pretraining.py give it."""
    with tf.variable_scope(name, default_name="dense"):
        kernel = tf.get_variable("kernel", shape=[inputs.shape[-1], units], initializer=kernel_initializer)
        bias = tf.get_variable("bias", shape=[units], initializer=tf.zeros_initializer())
        outputs = tf.matmul(inputs, kernel) + bias
        return activation(outputs) if activation is not None else outputs


def _install_shims() -> None:
    contrib = types.ModuleType("tensorflow.contrib")
    contrib.layers = types.SimpleNamespace(layer_norm=_layer_norm)
    sys.modules["tensorflow.contrib"] = contrib
    tf.layers = types.SimpleNamespace(dense=_dense)


CLASSIFIER_LABELS = 3


def _create_model(script: str):
    """`create_model` of Google's `bert/<script>`, its globals `modeling` and `tf`."""
    import ast
    import importlib.util

    from bert import modeling

    path = Path(importlib.util.find_spec("bert").origin).parent / script
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    nodes = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "create_model"]
    namespace = {"modeling": modeling, "tf": tf}
    exec(compile(ast.Module(body=nodes, type_ignores=[]), str(path), "exec"), namespace)  # noqa: S102 (the reference)
    return namespace["create_model"]


def main(out_dir: str, config_json: str, vocab_file: str, seed: int = 0,
         optimizer_slots: bool = False, head: str | None = None) -> None:
    _install_shims()
    tf.disable_eager_execution()
    tf.disable_v2_tensorshape()  # run_classifier.py reads `shape[-1].value`
    # Seeds the initializers too: the optimizer's ops, created after the model's, leave the
    # model's initial values as they are.
    tf.set_random_seed(seed)
    from bert import modeling, optimization, run_pretraining

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(config_json, out / "bert_config.json")
    shutil.copyfile(vocab_file, out / "vocab.txt")
    config = modeling.BertConfig.from_json_file(str(out / "bert_config.json"))

    rng = np.random.default_rng(seed)
    batch, length, predictions = 4, 24, 5
    ids = rng.integers(5, config.vocab_size, (batch, length)).astype(np.int32)
    mask = np.ones_like(ids)
    for row, real in enumerate((24, 17, 9, 3)):  # padding, BERT style: ones, then zeros
        mask[row, real:] = 0
    segments = np.zeros_like(ids)
    segments[:, 6:] = 1
    ids, segments = ids * mask, segments * mask
    positions = np.stack([rng.choice(max(m.sum(), predictions), predictions, replace=False)
                          for m in mask]).astype(np.int32)

    input_ids = tf.placeholder(tf.int32, [batch, length])
    input_mask = tf.placeholder(tf.int32, [batch, length])
    segment_ids = tf.placeholder(tf.int32, [batch, length])
    if head is not None:
        _fine_tuned(out, config, head, rng, input_ids, input_mask, segment_ids,
                    {"input_ids": ids, "input_mask": mask, "segment_ids": segments})
        return
    lm_positions = tf.placeholder(tf.int32, [batch, predictions])
    model = modeling.BertModel(config=config, is_training=False, input_ids=input_ids,
                               input_mask=input_mask, token_type_ids=segment_ids,
                               use_one_hot_embeddings=False)
    mlm_loss, _, mlm_log_probs = run_pretraining.get_masked_lm_output(
        config, model.get_sequence_output(), model.get_embedding_table(), lm_positions,
        tf.zeros([batch, predictions], tf.int32), tf.ones([batch, predictions]))
    nsp_loss, _, nsp_log_probs = run_pretraining.get_next_sentence_output(
        config, model.get_pooled_output(), tf.zeros([batch], tf.int32))

    variables = tf.global_variables()  # the model's
    if optimizer_slots:  # run_pretraining.py's model_fn, training mode
        optimization.create_optimizer(mlm_loss + nsp_loss, 1e-4, 1000, 10, use_tpu=False)
    saved = tf.global_variables()
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        for variable in variables:
            shape = variable.shape.as_list()
            noise = 0.05 * rng.standard_normal(shape).astype(np.float32)
            session.run(variable.assign(variable + noise))
        for variable in saved[len(variables):]:
            if variable.op.name == "global_step":
                session.run(variable.assign(1000))
            else:
                value = 1e-3 * rng.standard_normal(variable.shape.as_list()).astype(np.float32)
                session.run(variable.assign(value ** 2 if variable.op.name.endswith("/adam_v") else value))
        tf.train.Saver(saved).save(session, str(out / "bert_model.ckpt"), write_meta_graph=False)
        feed = {input_ids: ids, input_mask: mask, segment_ids: segments, lm_positions: positions}
        sequence, pooled, mlm, nsp = session.run(
            [model.get_sequence_output(), model.get_pooled_output(), mlm_log_probs, nsp_log_probs], feed)
    np.savez(out / "reference.npz", input_ids=ids, input_mask=mask, segment_ids=segments,
             masked_lm_positions=positions, sequence_output=sequence, pooled_output=pooled,
             mlm_log_probs=mlm.reshape(batch, predictions, -1), nsp_log_probs=nsp,
             variables=np.array(json.dumps({v.op.name: v.shape.as_list() for v in saved})))


def _fine_tuned(out: Path, config, head: str, rng, input_ids, input_mask, segment_ids, inputs: dict) -> None:
    """A checkpoint of run_classifier.py's or run_squad.py's model, and its logits on `inputs`."""
    if head == "classifier":
        _, _, logits, _ = _create_model("run_classifier.py")(
            config, False, input_ids, input_mask, segment_ids, tf.zeros([input_ids.shape[0]], tf.int32),
            CLASSIFIER_LABELS, False)
        outputs = {"logits": logits}
    else:
        start, end = _create_model("run_squad.py")(config, False, input_ids, input_mask, segment_ids, False)
        outputs = {"start_logits": start, "end_logits": end}
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        for variable in tf.global_variables():
            noise = 0.05 * rng.standard_normal(variable.shape.as_list()).astype(np.float32)
            session.run(variable.assign(variable + noise))
        tf.train.Saver(tf.global_variables()).save(session, str(out / "bert_model.ckpt"), write_meta_graph=False)
        values = session.run(outputs, {input_ids: inputs["input_ids"], input_mask: inputs["input_mask"],
                                       segment_ids: inputs["segment_ids"]})
    np.savez(out / "reference.npz", **inputs, **values,
             variables=np.array(json.dumps({v.op.name: v.shape.as_list() for v in tf.global_variables()})))


if __name__ == "__main__":
    flags = [a for a in sys.argv[1:] if a.startswith("--")]
    positional = [a for a in sys.argv[1:] if not a.startswith("--")]
    heads = {f"--head={h}": h for h in ("classifier", "squad")}
    if set(flags) - {"--optimizer-slots", *heads} or not 3 <= len(positional) <= 4:
        sys.exit(__doc__)
    main(*positional[:3], *(int(a) for a in positional[3:]), optimizer_slots="--optimizer-slots" in flags,
         head=next((heads[f] for f in flags if f in heads), None))
