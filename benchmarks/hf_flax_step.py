"""The peer's side of `benchmarks/hf_flax_comparison.py`: Hugging Face's `FlaxBertForPreTraining`
trained the way bert-jax trains, timed on this machine. Prints one JSON line.

Runs in the peer's own environment (transformers 4.x, the last line with Flax models), which
`hf_flax_comparison.py` creates; by hand:

  ~/.cache/bert-jax/hf-flax-venv/bin/python benchmarks/hf_flax_step.py --size mini --steps 20

The model is built from a `BertConfig` of the named size (vocab 30,522, 512 positions), randomly
initialized, float32, dropout on. The jitted, state-donating train step computes the loss bert-jax
computes: masked-LM cross-entropy at `masked_lm_positions` only, weighted by `masked_lm_weights` and
divided by their sum (+1e-5), plus the next-sentence cross-entropy; with the same metrics (accuracies,
gradient norm, learning rate). The difference under test is the model's: Hugging Face's head projects
every position onto the vocabulary, and the loss then picks the masked ones. The optimizer is
bert-jax's: global-norm clipping at 1.0, then AdamW (1e-4 after a linear warm-up of 10,000 steps,
linear decay to 0 at 1,000,000; b1 0.9, b2 0.999, eps 1e-6, weight decay 0.01 except on biases and
LayerNorm parameters). Each step is timed to completion; `step_ms` is the median, with the mean
and minimum beside it.

Only the standard library is imported at module level, so bert-jax's environment can import its
constants; the batch and the timing come from `step_timing.py`, shared with our side.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys

from step_timing import synthetic_batch, time_step

# Hidden size, layers, heads, intermediate size (Turc et al., 2019, and the BERT paper).
SIZES = {
    "tiny": (128, 2, 2, 512),
    "mini": (256, 4, 4, 1024),
    "small": (512, 4, 8, 2048),
    "medium": (512, 8, 8, 2048),
    "base": (768, 12, 12, 3072),
    "large": (1024, 24, 16, 4096),
}
VOCAB_SIZE = 30522
MAX_POSITIONS = 512

# bert-jax's default optimizer settings (`bert_jax.config.defaults.default_config`).
LEARNING_RATE = 1e-4
WARMUP_STEPS = 10_000
NUM_TRAIN_STEPS = 1_000_000
B1, B2, EPS = 0.9, 0.999, 1e-6
WEIGHT_DECAY = 0.01
CLIP_NORM = 1.0


def versions() -> dict:
    from importlib.metadata import version
    return {"python": platform.python_version(),
            **{name: version(name) for name in ("jax", "jaxlib", "flax", "optax", "transformers", "numpy")}}


def measure(size: str, batch: int, seq: int, predictions: int, steps: int, seed: int = 0) -> dict:
    import jax
    import jax.numpy as jnp
    import optax
    from transformers import BertConfig, FlaxBertForPreTraining

    hidden, layers, heads, intermediate = SIZES[size]
    config = BertConfig(vocab_size=VOCAB_SIZE, hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=heads, intermediate_size=intermediate,
                        max_position_embeddings=MAX_POSITIONS, type_vocab_size=2, hidden_act="gelu",
                        hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
                        layer_norm_eps=1e-12, initializer_range=0.02)
    model = FlaxBertForPreTraining(config, input_shape=(1, seq), seed=seed, dtype=jnp.float32)

    warmup = optax.linear_schedule(0.0, LEARNING_RATE, WARMUP_STEPS)
    decay = optax.linear_schedule(LEARNING_RATE, 0.0, NUM_TRAIN_STEPS - WARMUP_STEPS)
    schedule = optax.join_schedules([warmup, decay], [WARMUP_STEPS])

    def decay_mask(params):
        def applies(path, _):
            names = [getattr(k, "key", str(k)) for k in path]
            return not (names[-1] == "bias" or "LayerNorm" in names[-2])
        return jax.tree_util.tree_map_with_path(applies, params)

    optimizer = optax.chain(
        optax.clip_by_global_norm(CLIP_NORM),
        optax.adamw(schedule, b1=B1, b2=B2, eps=EPS, weight_decay=WEIGHT_DECAY, mask=decay_mask))

    params = jax.tree.map(jnp.asarray, model.params)
    state = {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": optimizer.init(params)}
    num_params = sum(x.size for x in jax.tree.leaves(params))

    def train_step(state, batch):
        dropout_key = jax.random.fold_in(jax.random.key(seed), state["step"])

        def loss_fn(params):
            outputs = model(batch["input_ids"], attention_mask=batch["input_mask"],
                            token_type_ids=batch["segment_ids"], params=params,
                            dropout_rng=dropout_key, train=True)
            # [batch, seq, vocab]: Hugging Face's head projects every position.
            logits = jnp.take_along_axis(outputs.prediction_logits,
                                         batch["masked_lm_positions"][..., None], axis=1)
            labels, weights = batch["masked_lm_ids"], batch["masked_lm_weights"]
            log_probs = jax.nn.log_softmax(logits, axis=-1)
            nll = -jnp.take_along_axis(log_probs, labels[..., None], axis=-1)[..., 0]
            mlm_correct = (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)
            mlm_loss = jnp.sum(nll * weights) / (jnp.sum(weights) + 1e-5)
            nsp_logits = outputs.seq_relationship_logits
            nsp_labels = batch["next_sentence_labels"]
            nsp_loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(nsp_logits, nsp_labels))
            metrics = {"loss": mlm_loss + nsp_loss, "mlm_loss": mlm_loss, "nsp_loss": nsp_loss,
                       "mlm_accuracy": jnp.sum(mlm_correct * weights) / (jnp.sum(weights) + 1e-5),
                       "nsp_accuracy": jnp.mean((jnp.argmax(nsp_logits, -1) == nsp_labels)
                                                .astype(jnp.float32))}
            return metrics["loss"], metrics

        grads, metrics = jax.grad(loss_fn, has_aux=True)(state["params"])
        updates, opt_state = optimizer.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        metrics = metrics | {"grad_norm": optax.global_norm(grads), "learning_rate": schedule(state["step"])}
        return {"step": state["step"] + 1, "params": params, "opt_state": opt_state}, metrics

    batch_arrays = jax.device_put(synthetic_batch(batch, seq, predictions, VOCAB_SIZE, seed))
    timing = time_step(jax.jit(train_step, donate_argnums=0), state, batch_arrays, steps)
    return {"side": "hf", "size": size, "batch": batch, "seq": seq, "predictions": predictions,
            "steps": steps, "num_params": int(num_params), **timing,
            "versions": versions()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="mini")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--predictions", type=int, default=20)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    result = measure(args.size, args.batch, args.seq, args.predictions, args.steps, args.seed)
    sys.stdout.flush()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
