"""Training: the schedule and weight-decay mask, the losses against plain numpy, and a few hundred
real steps on real text that drive the masked-LM loss clearly down."""

from __future__ import annotations

import dataclasses
import math

import jax.numpy as jnp
import numpy as np
import pytest

from bert_jax.config.defaults import default_config
from bert_jax.config.files import config_names, load_config
from bert_jax.config.finetuning import is_finetuning_config
from bert_jax.config.run import OptimizerConfig
from bert_jax.config.validation import bert_config, validate
from bert_jax.state.optimizer import decay_mask, learning_rate_schedule
from bert_jax.training.loop import train_and_evaluate
from bert_jax.training.pretraining import masked_lm_loss, next_sentence_loss, summarize
from tests.support.model_inputs import random_pretraining_batch


def test_learning_rate_warms_up_then_decays_linearly():
    schedule = learning_rate_schedule(OptimizerConfig(learning_rate=1e-4, warmup_steps=100), num_train_steps=1100)
    expected = {0: 0.0, 50: 5e-5, 100: 1e-4, 600: 5e-5, 1100: 0.0, 1000: 1e-5}
    for step, value in expected.items():
        assert math.isclose(float(schedule(step)), value, rel_tol=1e-5, abs_tol=1e-12), step


def test_weight_decay_skips_layer_norm_and_biases():
    params = {"bert": {"embeddings": {"word_embeddings": {"embedding": 0},
                                      "layer_norm": {"scale": 0, "bias": 0}},
                       "layer_0": {"intermediate": {"kernel": 0, "bias": 0},
                                   "output_layer_norm": {"scale": 0, "bias": 0}}},
              "masked_lm": {"output_bias": 0, "transform_layer_norm": {"scale": 0}}}
    mask = decay_mask(params)
    assert mask["bert"]["embeddings"]["word_embeddings"]["embedding"] is True
    assert mask["bert"]["layer_0"]["intermediate"]["kernel"] is True
    assert not any([mask["bert"]["embeddings"]["layer_norm"]["scale"],
                    mask["bert"]["embeddings"]["layer_norm"]["bias"],
                    mask["bert"]["layer_0"]["intermediate"]["bias"],
                    mask["bert"]["layer_0"]["output_layer_norm"]["scale"],
                    mask["masked_lm"]["output_bias"],
                    mask["masked_lm"]["transform_layer_norm"]["scale"]])


def _lamb_reference(params, grads, lr, b1, b2, eps, weight_decay, clip_norm, decayed):
    """LAMB as You et al. (2020, Algorithm 2) give it, in float64 numpy, after clipping the
    global gradient norm (as for AdamW): per tensor, the bias-corrected Adam direction plus weight
    decay, scaled by the trust ratio ||w|| / ||direction|| (1 where either norm is 0)."""
    w = {k: v.astype(np.float64) for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in w.items()}
    v2 = {k: np.zeros_like(v) for k, v in w.items()}
    for t, g in enumerate(grads, start=1):
        norm = math.sqrt(sum(float(np.sum(x.astype(np.float64) ** 2)) for x in g.values()))
        scale = clip_norm / norm if norm > clip_norm else 1.0
        for k in w:
            gk = g[k].astype(np.float64) * scale
            m[k] = b1 * m[k] + (1 - b1) * gk
            v2[k] = b2 * v2[k] + (1 - b2) * gk ** 2
            direction = (m[k] / (1 - b1 ** t)) / (np.sqrt(v2[k] / (1 - b2 ** t)) + eps)
            if decayed[k]:
                direction = direction + weight_decay * w[k]
            w_norm, d_norm = np.linalg.norm(w[k]), np.linalg.norm(direction)
            trust = w_norm / d_norm if w_norm > 0 and d_norm > 0 else 1.0
            w[k] = w[k] - lr(t - 1) * trust * direction
    return w


def test_lamb_follows_the_algorithm_of_you_et_al():
    import jax
    import optax

    from bert_jax.state.optimizer import make_optimizer

    config = dataclasses.replace(OptimizerConfig.from_config(default_config().optimizer), name="lamb",
                                 learning_rate=1e-2, warmup_steps=0, weight_decay=0.1)
    optimizer, schedule = make_optimizer(config, num_train_steps=10)
    rng = np.random.default_rng(0)
    params = {"dense": {"kernel": rng.normal(size=(6, 4)).astype(np.float32),
                        "bias": np.zeros(4, np.float32)},  # a zero norm: trust ratio 1
              "layer_norm": {"scale": np.ones(4, np.float32)}}
    # The first gradient is clipped (norm ~13 > 1), the others are not.
    grads = [jax.tree.map(lambda x, s=s: (s * rng.normal(size=x.shape)).astype(np.float32), params)
             for s in (3.0, 0.05, 0.1)]
    state, got = optimizer.init(params), params
    for g in grads:
        updates, state = optimizer.update(g, state, got)
        got = optax.apply_updates(got, updates)

    flat = lambda tree: {"/".join(str(getattr(k, "key", k)) for k in path): np.asarray(v)  # noqa: E731
                         for path, v in jax.tree_util.tree_leaves_with_path(tree)}
    decayed = flat(decay_mask(params))
    assert decayed == {"dense/bias": False, "dense/kernel": True, "layer_norm/scale": False}
    want = _lamb_reference(flat(params), [flat(g) for g in grads], lambda t: float(schedule(t)),
                           config.b1, config.b2, config.eps, config.weight_decay,
                           config.clip_norm, decayed)
    for name, value in flat(got).items():
        np.testing.assert_allclose(value, want[name], rtol=2e-5, atol=1e-7, err_msg=name)
        assert not np.allclose(value, flat(params)[name]), name  # every tensor moved


def test_losses_match_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 5, 11)).astype(np.float32)
    labels = rng.integers(0, 11, (4, 5))
    weights = (rng.random((4, 5)) < 0.7).astype(np.float32)
    nsp_logits = rng.normal(size=(4, 2)).astype(np.float32)
    nsp_labels = np.array([0, 1, 1, 0])

    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    nll = -np.take_along_axis(log_probs, labels[..., None], -1)[..., 0]
    expected_mlm = (nll * weights).sum() / (weights.sum() + 1e-5)
    nsp_log_probs = nsp_logits - np.log(np.exp(nsp_logits).sum(-1, keepdims=True))
    expected_nsp = -nsp_log_probs[np.arange(4), nsp_labels].mean()
    expected_accuracy = ((logits.argmax(-1) == labels) * weights).sum() / (weights.sum() + 1e-5)
    # The model's input at each prediction: the label itself (kept) for about a third of them.
    input_tokens = np.where(rng.random((4, 5)) < 0.3, labels, (labels + 1) % 11)
    replaced = weights * (input_tokens != labels)
    expected_replaced_accuracy = ((logits.argmax(-1) == labels) * replaced).sum() / (replaced.sum() + 1e-5)

    sums = masked_lm_loss(jnp.asarray(logits), jnp.asarray(labels), jnp.asarray(weights),
                          jnp.asarray(input_tokens)) \
        | next_sentence_loss(jnp.asarray(nsp_logits), jnp.asarray(nsp_labels), jnp.ones(4))
    metrics = summarize(sums)
    np.testing.assert_allclose(metrics["mlm_loss"], expected_mlm, rtol=1e-5)
    np.testing.assert_allclose(metrics["nsp_loss"], expected_nsp, rtol=1e-5)
    np.testing.assert_allclose(metrics["loss"], expected_mlm + expected_nsp, rtol=1e-5)
    np.testing.assert_allclose(metrics["mlm_accuracy"], expected_accuracy, rtol=1e-5)
    np.testing.assert_allclose(metrics["mlm_replaced_accuracy"], expected_replaced_accuracy, rtol=1e-5)
    assert 0 < replaced.sum() < weights.sum()


def test_padding_examples_do_not_count_in_evaluation_sums():
    logits = jnp.array([[2.0, 0.0], [0.0, 2.0], [5.0, 0.0]])
    sums = next_sentence_loss(logits, jnp.array([0, 0, 1]), jnp.array([1.0, 1.0, 0.0]))
    assert float(sums["nsp_count"]) == 2.0
    assert float(sums["nsp_correct_sum"]) == 1.0


def test_config_validation_names_the_fields():
    config = load_config("cpu_demo")
    config.data.max_seq_length = 1024
    config.train.global_batch_size = 30
    config.mesh.shape.data = 4
    config.train.report_to = "tensorboard,wandb,neptune"
    with pytest.raises(ValueError) as error:
        validate(config, num_devices=8)
    message = str(error.value)
    assert ("train.report_to='tensorboard,wandb,neptune': neptune unknown; name some of tensorboard, "
            "wandb") in message
    assert "data.max_seq_length=1024 exceeds model.max_position_embeddings=512" in message
    assert "train.global_batch_size=30 must be divisible by the data-parallel size 8" not in message
    assert "mesh.shape" in message and "4 devices but 8 are available" in message
    assert "data.train_files is empty" in message


@pytest.mark.parametrize("name", [n for n in config_names() if not is_finetuning_config(load_config(n))])
def test_every_config_loads_and_validates(name):
    # (The fine-tuning configs have their own test: tests/unit/test_finetuning_config.py.)
    config = load_config(name, ["data.train_files=shards/"])
    if "sbert" in config:  # a Sentence-BERT run (bert-jax sbert-train), with its own rules
        from bert_jax.tasks.sentence_embeddings.training_config import validate as validate_sentence_training

        config.sbert.train_file = config.data.vocab_file = __file__  # files that exist
        validate_sentence_training(config, num_devices=1)
    else:
        validate(config, num_devices=1)
    bert_config(config)


def test_overrides_are_typed_and_checked():
    config = load_config("cpu_demo", ["train.num_steps=7", "optimizer.learning_rate=3",
                                                        "data.train_files=a,b"])
    assert config.train.num_steps == 7 and config.optimizer.learning_rate == 3.0
    assert config.data.train_files == "a,b"
    with pytest.raises(ValueError, match="no field 'train.num_stepz'"):
        load_config("cpu_demo", ["train.num_stepz=7"])
    with pytest.raises(ValueError, match="is a int"):
        load_config("cpu_demo", ["train.num_steps=many"])


def _masked_label_counts(shard_dir, config) -> np.ndarray:
    from input_pipeline.reading.reader import ReaderConfig, numpy_batches

    counts = np.zeros(config.model.vocab_size)
    reader = ReaderConfig((str(shard_dir),), 512, config.data.max_seq_length,
                          config.data.max_predictions_per_seq, repeat=False)
    for batch in numpy_batches(reader):
        np.add.at(counts, batch["masked_lm_ids"][batch["masked_lm_weights"] > 0], 1)
    return counts


def test_a_few_hundred_steps_drive_the_masked_lm_loss_down(tiny_run_config, tiny_corpus, tmp_path):
    """The masked-LM loss falls from ln(vocab) (a uniform guess) to below the entropy of the
    masked tokens' own frequencies, and tokens replaced by [MASK] or a random token (which only
    the context can predict) are predicted better than by always guessing the most frequent one.
    On a corpus this small, much of what the model learns in 800 steps is the training text
    itself, so the context test uses the training batches; the held-out test uses all predictions."""
    config = tiny_run_config(num_steps=800, log_every=100)
    config.model.hidden_dropout_rate = config.model.attention_dropout_rate = 0.0
    config.optimizer.learning_rate = 3e-3
    logged = []
    results = train_and_evaluate(config, tmp_path, on_report=logged.append)

    train_counts = _masked_label_counts(tiny_corpus["train"], config)
    p = train_counts[train_counts > 0] / train_counts.sum()
    unigram_entropy = float(-(p * np.log(p)).sum())
    most_frequent_rate = train_counts.max() / train_counts.sum()
    held_out_counts = _masked_label_counts(tiny_corpus["held_out"], config)
    held_out_most_frequent = held_out_counts[train_counts.argmax()] / held_out_counts.sum()

    assert logged[0]["mlm_loss"] > unigram_entropy  # The first 100 steps start near ln(2000) = 7.6.
    assert logged[-1]["mlm_loss"] < unigram_entropy - 0.3, (logged[-1], unigram_entropy)
    assert logged[-1]["mlm_replaced_accuracy"] > most_frequent_rate + 0.015, (logged[-1], most_frequent_rate)
    assert results["eval_mlm_accuracy"] > held_out_most_frequent + 0.02, (results, held_out_most_frequent)
    assert np.isfinite(results["eval_loss"])


def test_shards_that_do_not_match_the_config_are_refused(tiny_run_config, tiny_corpus, tmp_path):
    config = tiny_run_config()
    config.data.max_seq_length = 128
    config.model.vocab_size = 1000
    with pytest.raises(ValueError) as error:
        train_and_evaluate(config, tmp_path)
    message = str(error.value)
    assert "max_seq_length is 64 in" in message and "but 128 in the config" in message
    assert "vocab has 2000 tokens but model.vocab_size=1000" in message
    assert not (tmp_path / "checkpoints").exists()

    config = tiny_run_config()
    other_vocab = tmp_path / "other_vocab.txt"
    other_vocab.write_text(tiny_corpus["vocab"].read_text(encoding="utf-8") + "extra\n", encoding="utf-8")
    config.data.vocab_file = str(other_vocab)
    with pytest.raises(ValueError, match="made with another vocab"):
        train_and_evaluate(config, tmp_path)


def test_gradient_accumulation_is_the_same_update(tiny_run_config):
    """Two and four micro-batches give the update of one pass over the whole batch (dropout
    off: the micro-batches draw their own dropout masks)."""
    import functools

    import jax

    from bert_jax.parallel.sharding import make_mesh
    from bert_jax.training.step import train_step
    from tests.support.model_inputs import random_pretraining_batch
    from tests.support.pretraining_parts import pretraining_parts

    config = tiny_run_config(num_steps=10)
    config.model.hidden_dropout_rate = config.model.attention_dropout_rate = 0.0
    parts = pretraining_parts(config, make_mesh({"data": 1, "fsdp": 1, "tensor": 1}))
    state = parts.fresh_state()
    batch = random_pretraining_batch(16)
    results = {}
    for k in (1, 2, 4):
        step = jax.jit(functools.partial(train_step, objective=parts.objective, optimizer=parts.optimizer,
                                         schedule=parts.schedule, seed=0, grad_accum_steps=k))
        results[k] = step(state, batch)
    for k in (2, 4):
        for name in ("loss", "mlm_loss", "nsp_loss", "mlm_accuracy", "grad_norm"):
            np.testing.assert_allclose(results[k][1][name], results[1][1][name], rtol=2e-5)
        for a, b in zip(jax.tree.leaves(results[k][0].params), jax.tree.leaves(results[1][0].params)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_mesh_rules_are_validated_before_anything_runs():
    config = load_config("bert_base", ["data.train_files=shards/"])
    config.mesh.shape = {"data": 1, "fsdp": 1, "tensor": 8}
    with pytest.raises(ValueError) as error:
        validate(config, num_devices=8, num_processes=2)
    message = str(error.value)
    assert "model.num_heads=12 must be divisible by the mesh's tensor axis (8)" in message
    assert "model.vocab_size=30522 must be divisible" in message and "e.g. 30720" in message
    assert "data-parallel size 1 (data x fsdp) must be a multiple of the number of processes 2" in message
    config.mesh.shape = {"data": 2, "fsdp": 4, "tensor": 1}
    validate(config, num_devices=8, num_processes=2)


def test_dropout_rng_implementation_is_a_config_choice(tiny_run_config):
    """train.rng_impl picks the dropout keys' generator: each is deterministic (a resumed run
    draws the same masks), they draw different masks, and an unknown name is refused up front."""
    import functools

    import jax

    from bert_jax.parallel.sharding import make_mesh
    from bert_jax.training.step import train_step
    from tests.support.pretraining_parts import pretraining_parts

    config = tiny_run_config(num_steps=10)
    config.model.hidden_dropout_rate = config.model.attention_dropout_rate = 0.1
    parts = pretraining_parts(config, make_mesh({"data": 1, "fsdp": 1, "tensor": 1}))
    batch = random_pretraining_batch(4)
    losses = {}
    for impl in ("threefry2x32", "rbg", "rbg"):
        step = jax.jit(functools.partial(train_step, objective=parts.objective, optimizer=parts.optimizer,
                                         schedule=parts.schedule, seed=0, rng_impl=impl))
        _, metrics = step(parts.fresh_state(), batch)
        losses.setdefault(impl, []).append(float(metrics["loss"]))
    assert losses["rbg"][0] == losses["rbg"][1]
    assert losses["rbg"][0] != losses["threefry2x32"][0]
    config.train.rng_impl = "philox"
    with pytest.raises(ValueError, match="train.rng_impl='philox' must be one of"):
        validate(config, num_devices=1)


def test_an_invalid_config_is_refused_before_anything_is_compiled(tiny_run_config, tmp_path, monkeypatch):
    """`train_and_evaluate` validates the whole config first: an invalid one (here a rule that
    nothing else would trip over before the first compile) raises the ValueError naming the
    field before any function is jitted and before the work directory is created."""
    import jax

    import bert_jax.training.loop as train_module

    def reached(what: str):
        def fail(*args, **kwargs):
            raise AssertionError(f"{what} was reached although the config is invalid")
        return fail
    monkeypatch.setattr(train_module, "jit_train_step", reached("jit_train_step"))
    monkeypatch.setattr(jax, "jit", reached("jax.jit"))
    config = tiny_run_config(num_steps=10)
    config.optimizer.warmup_steps = 20
    with pytest.raises(ValueError, match=r"optimizer.warmup_steps=20 must be in \[0, train.num_steps=10\]"):
        train_and_evaluate(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()
