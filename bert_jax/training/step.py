"""The pure training and evaluation steps: `(state, batch) -> (state, metrics)`.

Nothing here touches files, clocks or logs; the loop in `bert_jax.training.loop` does. Dropout keys are
derived from the step number, so a run resumed from a checkpoint draws the same keys as one that
never stopped.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from bert_jax.model import BertForPreTraining
from bert_jax.state.train_state import TrainState

Batch = dict[str, jax.Array]


def masked_lm_loss(logits: jax.Array, labels: jax.Array, weights: jax.Array,
                   input_tokens: jax.Array) -> dict[str, jax.Array]:
    """Sums of the weighted cross-entropy and correct predictions at the masked positions
    (padding predictions carry weight 0), and the sum of weights, so that means over any number of
    batches can be formed exactly.

    `input_tokens` are the model's inputs at those positions. The 10% of predictions left
    unchanged can be copied from the input, so accuracy is also counted over the replaced ones
    ([MASK] or a random token) alone: only context can predict those.
    """
    # Cross-entropy as logsumexp minus the label's logit, and "correct" as the label's logit
    # reaching the maximum: no index reduction (argmax) and no full log-softmax over the vocab.
    label_logits = jnp.take_along_axis(logits, labels[..., None], axis=-1)[..., 0]
    nll = jax.nn.logsumexp(logits, axis=-1) - label_logits
    correct = (label_logits >= jnp.max(logits, axis=-1)).astype(jnp.float32)
    replaced = weights * (input_tokens != labels)
    return {"mlm_nll_sum": jnp.sum(nll * weights), "mlm_correct_sum": jnp.sum(correct * weights),
            "mlm_weight_sum": jnp.sum(weights), "mlm_replaced_correct_sum": jnp.sum(correct * replaced),
            "mlm_replaced_sum": jnp.sum(replaced)}


def next_sentence_loss(logits: jax.Array, labels: jax.Array, weights: jax.Array) -> dict[str, jax.Array]:
    """Sums of the cross-entropy and correct predictions of the next-sentence head; `weights` is
    0 for the padding examples of a partial evaluation batch."""
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    correct = (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)
    return {"nsp_nll_sum": jnp.sum(nll * weights), "nsp_correct_sum": jnp.sum(correct * weights),
            "nsp_count": jnp.sum(weights)}


def next_sentence_weights(batch: Batch) -> jax.Array:
    """The weight of every next-sentence label: 1 per real sequence, 0 for the padding examples
    of a partial evaluation batch and for the empty sequence slots of packed rows."""
    labels = batch["next_sentence_labels"]
    if "next_sentence_weights" in batch:  # packed rows
        return batch["next_sentence_weights"]
    return batch.get("example_weights", jnp.ones(labels.shape, jnp.float32))


def pretraining_sums(model: BertForPreTraining, params: Any, batch: Batch,
                     dropout_key: jax.Array | None) -> dict[str, jax.Array]:
    """Loss and accuracy sums (`masked_lm_loss`, `next_sentence_loss`) of one batch of plain or
    packed rows (`input_pipeline.reading.packing`: with `position_ids` and `cls_positions`)."""
    outputs = model.apply(
        {"params": params}, batch["input_ids"], batch["input_mask"], batch["segment_ids"],
        batch["masked_lm_positions"], deterministic=dropout_key is None,
        position_ids=batch.get("position_ids"), cls_positions=batch.get("cls_positions"),
        rngs=None if dropout_key is None else {"dropout": dropout_key})
    labels = batch["next_sentence_labels"]
    example_weights = next_sentence_weights(batch)
    input_tokens = jnp.take_along_axis(batch["input_ids"], batch["masked_lm_positions"], axis=1)
    return (masked_lm_loss(outputs["mlm_logits"], batch["masked_lm_ids"], batch["masked_lm_weights"],
                           input_tokens)
            | next_sentence_loss(outputs["nsp_logits"], labels, example_weights))


def summarize(sums: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """Means from sums. The MLM loss is normalized by the number of real predictions (+1e-5 as in
    the original, so a batch without any is not a division by zero)."""
    mlm_loss = sums["mlm_nll_sum"] / (sums["mlm_weight_sum"] + 1e-5)
    nsp_loss = sums["nsp_nll_sum"] / sums["nsp_count"]
    return {"loss": mlm_loss + nsp_loss, "mlm_loss": mlm_loss, "nsp_loss": nsp_loss,
            "mlm_accuracy": sums["mlm_correct_sum"] / (sums["mlm_weight_sum"] + 1e-5),
            "mlm_replaced_accuracy": sums["mlm_replaced_correct_sum"] / (sums["mlm_replaced_sum"] + 1e-5),
            "nsp_accuracy": sums["nsp_correct_sum"] / sums["nsp_count"]}


def train_step(state: TrainState, batch: Batch, *, model: BertForPreTraining,
               optimizer: optax.GradientTransformation, schedule: optax.Schedule,
               seed: int, grad_accum_steps: int = 1,
               rng_impl: str = "threefry2x32") -> tuple[TrainState, dict[str, jax.Array]]:
    """One optimizer step on the MLM + NSP loss of `batch`; a step whose loss or gradient is not
    finite leaves the parameters and optimizer state as they were (metrics["skipped"] is 1).

    With `grad_accum_steps` k > 1 the batch is processed as k micro-batches (rows i, i + k, ...,
    so that each stays spread over the data-parallel devices) whose gradients are summed: the
    same update as one pass over the whole batch, in a k-th of the activation memory. The loss is
    normalized by the whole batch's prediction and example counts, known before any forward pass,
    so the sum of the micro-batch gradients is exactly the gradient of the batch's loss.

    `rng_impl` is the dropout keys' PRNG: "threefry2x32" (JAX's default, the same bits on every
    backend) or "rbg"/"unsafe_rbg" (the hardware generator: far cheaper dropout masks on GPUs
    and TPUs, reproducible on the same backend).
    """
    dropout_key = jax.random.fold_in(jax.random.key(seed, impl=rng_impl), state.step)
    mlm_total = jnp.sum(batch["masked_lm_weights"]) + 1e-5
    nsp_total = jnp.sum(next_sentence_weights(batch))

    def sums_and_grads(micro: Batch, key: jax.Array):
        def loss_fn(params):
            sums = pretraining_sums(model, params, micro, key)
            return sums["mlm_nll_sum"] / mlm_total + sums["nsp_nll_sum"] / nsp_total, sums
        grads, sums = jax.grad(loss_fn, has_aux=True)(state.params)
        return sums, grads

    if grad_accum_steps == 1:
        sums, grads = sums_and_grads(batch, dropout_key)
    else:
        micro_batches = jax.tree.map(lambda x: x.reshape(-1, grad_accum_steps, *x.shape[1:]).swapaxes(0, 1),
                                     batch)

        def accumulate(totals, micro_and_index):
            micro, index = micro_and_index
            sums, grads = sums_and_grads(micro, jax.random.fold_in(dropout_key, index))
            return jax.tree.map(jnp.add, totals, (sums, grads)), None

        zeros = jax.tree.map(jnp.zeros_like, jax.eval_shape(
            sums_and_grads, jax.tree.map(lambda x: x[0], micro_batches), dropout_key))
        (sums, grads), _ = jax.lax.scan(accumulate, zeros,
                                        (micro_batches, jnp.arange(grad_accum_steps)))
    metrics = summarize(sums) | {"grad_norm": optax.global_norm(grads), "learning_rate": schedule(state.step),
                                 # Real sequences and tokens (not padding): packed rows hold several.
                                 "sequences": nsp_total, "tokens": jnp.sum(batch["input_mask"] > 0, dtype=jnp.float32)}
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    # A non-finite loss or gradient (a bad batch, an overflow) would poison every parameter and
    # moment for good: such a step changes nothing but the step counter, and says so.
    finite = jnp.isfinite(metrics["loss"]) & jnp.isfinite(metrics["grad_norm"])
    params, opt_state = jax.tree.map(lambda new, old: jnp.where(finite, new, old),
                                     (params, opt_state), (state.params, state.opt_state))
    metrics["skipped"] = 1.0 - finite.astype(jnp.float32)
    return TrainState(step=state.step + 1, params=params, opt_state=opt_state), metrics


def eval_step(params: Any, batch: Batch, *, model: BertForPreTraining) -> dict[str, jax.Array]:
    """Loss and accuracy sums on one batch, without dropout; add them up over batches and pass
    the totals to `summarize`."""
    return pretraining_sums(model, params, batch, dropout_key=None)
