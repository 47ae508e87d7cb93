"""What the logs and TensorBoard say about speed: the FLOP count behind TFLOP/s and MFU, checked
against the matrix multiplications of the traced program, and the numbers a run writes."""

from __future__ import annotations

import json
import math

import jax
import jax.extend.core
import jax.numpy as jnp
import pytest

from bert_jax.model import BertConfig, BertForPreTraining, flops


def matmul_flops(jaxpr) -> int:
    """2 x multiply-adds of every dot_general in `jaxpr` and the programs nested in it."""
    total = 0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            (contracting, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval.shape
            total += 2 * math.prod(eqn.outvars[0].aval.shape) * math.prod(lhs[d] for d in contracting)
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            total += matmul_flops(sub)
    return total


@pytest.mark.parametrize("num_predictions", [5, 20])
def test_flop_count_equals_the_programs_matmuls(num_predictions):
    """`flops.py` counts from the config; JAX's traced forward pass and gradient hold exactly that
    many matmul FLOPs (attention scores and values included; the backward pass is twice the
    forward: a gradient for each operand of each matmul)."""
    config = BertConfig(vocab_size=1000, hidden_size=64, num_layers=2, num_heads=4,
                        intermediate_size=128, max_position_embeddings=64, attention="plain")
    batch, length = 3, 32
    ids = jnp.zeros((batch, length), jnp.int32)
    positions = jnp.zeros((batch, num_predictions), jnp.int32)
    model = BertForPreTraining(config)
    params = model.init(jax.random.key(0), ids, ids, ids, positions)["params"]

    def outputs(p):
        return model.apply({"params": p}, ids, jnp.ones_like(ids), ids, positions)

    def loss(p):
        out = outputs(p)
        return jnp.sum(out["mlm_logits"]) + jnp.sum(out["nsp_logits"])

    forward = matmul_flops(jax.make_jaxpr(outputs)(params).jaxpr)
    assert forward == batch * flops.forward_flops_per_sequence(config, length, num_predictions)
    # The gradient's program runs the forward pass, then the backward pass.
    assert matmul_flops(jax.make_jaxpr(jax.grad(loss))(params).jaxpr) \
        == flops.train_flops_per_step(config, batch, length, num_predictions) == 3 * forward


def _scalars(event_dir) -> dict[str, list[tuple[int, float]]]:
    import tensorflow as tf

    values: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(event_dir.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.HasField("tensor") and value.metadata.plugin_data.plugin_name != "scalars":
                    continue  # the config's text and hyperparameters
                number = float(tf.make_ndarray(value.tensor)) if value.HasField("tensor") else value.simple_value
                values.setdefault(value.tag, []).append((event.step, number))
    return values


def test_a_run_logs_throughput_mfu_and_compile_time(tiny_run_config, tmp_path):
    """TensorBoard and metrics.jsonl carry step time, sequences/s, tokens/s, TFLOP/s, MFU over
    the configured peak, and the compile time; TFLOP/s is the config's FLOP count per second."""
    from bert_jax.config.pretraining import PretrainingData
    from bert_jax.config.validation import bert_config
    from bert_jax.training.loop import train_and_evaluate

    config = tiny_run_config(num_steps=4, log_every=2)
    config.data.eval_files = ""
    config.train.peak_flops_per_device = 1e12
    config.optimizer.warmup_steps = 1
    train_and_evaluate(config, tmp_path)

    scalars = _scalars(tmp_path / "tensorboard")
    for name in ("step_seconds", "steps_per_second", "sequences_per_second", "tokens_per_second",
                 "tflops_per_second", "mfu", "compile_seconds", "loss"):
        assert f"train/{name}" in scalars, (name, sorted(scalars))
    assert scalars["train/compile_seconds"][0][1] > 0

    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    logged = [r for r in lines if r["prefix"] == "train" and "mfu" in r]
    assert [r["step"] for r in logged] == [2, 4]
    per_step = flops.train_flops_per_step(bert_config(config),
                                          config.train.global_batch_size,
                                          config.data.max_seq_length,
                                          PretrainingData.from_config(config).phases[0].predictions_per_row)
    for record in logged:
        assert record["tflops_per_second"] == pytest.approx(
            record["steps_per_second"] * per_step / 1e12, rel=1e-9)
        assert record["mfu"] == pytest.approx(
            record["tflops_per_second"] * 1e12 / (1e12 * jax.device_count()), rel=1e-9)
        assert record["sequences_per_second"] == pytest.approx(
            record["steps_per_second"] * config.train.global_batch_size, rel=1e-9)
        assert 0 < record["tokens_per_second"] <= record["sequences_per_second"] * config.data.max_seq_length
        tensorboard = dict(scalars["train/mfu"])
        assert tensorboard[record["step"]] == pytest.approx(record["mfu"], rel=1e-6)
