"""The pure training step: `(state, batch) -> (state, metrics)`, for any objective.

Nothing here touches files, clocks or logs; the loop in `bert_jax.training.loop` does. Dropout keys
are derived from the step number, so a run resumed from a checkpoint draws the same keys as one
that never stopped.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from bert_jax.state.train_state import TrainState
from bert_jax.training.objective import Batch, Objective


def train_step(state: TrainState, batch: Batch, *, objective: Objective,
               optimizer: optax.GradientTransformation, schedule: optax.Schedule,
               seed: int, grad_accum_steps: int = 1,
               rng_impl: str = "threefry2x32") -> tuple[TrainState, dict[str, jax.Array]]:
    """One optimizer step on the objective's loss of `batch` (in `grad_accum_steps`
    micro-batches: `Objective.gradients`); a step whose loss or gradient is not finite leaves the
    parameters and optimizer state as they were (metrics["skipped"] is 1).

    `rng_impl` is the dropout keys' PRNG: "threefry2x32" (JAX's default, the same bits on every
    backend) or "rbg"/"unsafe_rbg" (the hardware generator: far cheaper dropout masks on GPUs
    and TPUs, reproducible on the same backend).
    """
    dropout_key = jax.random.fold_in(jax.random.key(seed, impl=rng_impl), state.step)
    grads, metrics = objective.gradients(state.params, batch, dropout_key, grad_accum_steps)
    metrics = metrics | {"grad_norm": optax.global_norm(grads), "learning_rate": schedule(state.step)}
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    # A non-finite loss or gradient (a bad batch, an overflow) would poison every parameter and
    # moment for good: such a step changes nothing but the step counter, and says so.
    finite = jnp.isfinite(metrics["loss"]) & jnp.isfinite(metrics["grad_norm"])
    params, opt_state = jax.tree.map(lambda new, old: jnp.where(finite, new, old),
                                     (params, opt_state), (state.params, state.opt_state))
    metrics["skipped"] = 1.0 - finite.astype(jnp.float32)
    return TrainState(step=state.step + 1, params=params, opt_state=opt_state), metrics
