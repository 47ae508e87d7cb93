"""What the training loop (`training.loop.train`) trains, in three parts it takes separately:

* an `Objective`: the model, its loss over a batch and the metrics it reports;
* its `TrainData`: checkpointable batches, by stage (pretraining's two phases; one for a task);
* optionally an `Evaluator`: one pass over held-out data, turned into metrics on the host.

Pretraining (masked LM + next sentence over phased shards) is one objective
(`training.pretraining`, `training.phases`); a fine-tuning head or a Sentence-BERT objective is
another, and gets from the same loop the mesh and sharding rules, bf16, gradient accumulation,
checkpoints, exact resume, preemption, multi-host and the best checkpoint by a metric.

Losses are sums. An objective returns the sums of its batch's rows (losses, correct predictions,
counts) and normalizes its loss by `totals` of the whole global batch, known before any forward
pass: the micro-batches of gradient accumulation then add up exactly to the batch, and
`summarize` turns sums over one batch or many into means. A loss that does not decompose over
rows (in-batch negatives, where every row is scored against every other) overrides `gradients`
instead, e.g. with a gradient cache (Gao et al., 2021): embeddings of all micro-batches first,
the loss and its gradient with respect to them, then each micro-batch's backward pass.
"""

from __future__ import annotations

import abc
from collections.abc import Hashable, Iterable, Iterator
from typing import Any, Protocol

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Batch = dict[str, jax.Array]        # Feature name -> [rows, ...]; a global batch under `jit`.
Sums = dict[str, jax.Array]         # Scalars that add up over rows and batches.
Metrics = dict[str, jax.Array]


class Objective(abc.ABC):
    """A model and the loss it trains on. Subclasses set `model` and implement `init_params`,
    `totals`, `loss` and `summarize`; `gradients` accumulates over micro-batches unless
    overridden."""

    model: nn.Module

    @abc.abstractmethod
    def init_params(self, rng: jax.Array) -> Any:
        """The model's parameters with their logical-axis annotations (`nn.Partitioned` boxes),
        as `model.init(rng, <one row of inputs>)["params"]` returns them. Traced only: under
        `jax.eval_shape` for the shardings, or jitted into the sharded layout."""

    @abc.abstractmethod
    def totals(self, batch: Batch) -> Sums:
        """What the loss of the whole global `batch` is normalized by (real predictions, real
        examples: `example_weights` is 0 for the padding rows of a partial batch)."""

    @abc.abstractmethod
    def loss(self, params: Any, batch: Batch, totals: Sums,
             dropout_key: jax.Array | None) -> tuple[jax.Array, Sums]:
        """(the part of the global batch's loss that `batch`'s rows contribute, normalized by
        `totals`; their sums for `summarize`). `batch` is the global batch or one of its
        micro-batches; `dropout_key` None means deterministic."""

    @abc.abstractmethod
    def summarize(self, sums: Sums) -> Metrics:
        """Means (the loss first among them, as "loss") from sums over any number of rows."""

    def step_metrics(self, batch: Batch, totals: Sums) -> Metrics:
        """Per-step counts for the throughput columns: "sequences" and "tokens" (real ones, not
        padding); without them a step counts `global_batch_size` sequences and no tokens."""
        return {}

    def train_flops(self, stage: Hashable, global_batch_size: int) -> float:
        """FLOPs of one training step on `stage`'s batches, for TFLOP/s and MFU; 0: not reported."""
        return 0.0

    def gradients(self, params: Any, batch: Batch, dropout_key: jax.Array,
                  grad_accum_steps: int = 1) -> tuple[Any, Metrics]:
        """(the gradient of the global batch's loss, `summarize` of its sums and
        `step_metrics`). With `grad_accum_steps` k > 1 the batch is processed as k micro-batches
        (rows i, i + k, ..., so that each stays spread over the data-parallel devices) whose
        gradients are summed: the same update as one pass, in a k-th of the activation memory.
        Micro-batch i draws dropout from `fold_in(dropout_key, i)`."""
        totals = self.totals(batch)

        def sums_and_grads(micro: Batch, key: jax.Array):
            grads, sums = jax.grad(lambda p: self.loss(p, micro, totals, key), has_aux=True)(params)
            return sums, grads

        if grad_accum_steps == 1:
            sums, grads = sums_and_grads(batch, dropout_key)
        else:
            micro_batches = jax.tree.map(
                lambda x: x.reshape(-1, grad_accum_steps, *x.shape[1:]).swapaxes(0, 1), batch)

            def accumulate(running, micro_and_index):
                micro, index = micro_and_index
                sums, grads = sums_and_grads(micro, jax.random.fold_in(dropout_key, index))
                return jax.tree.map(jnp.add, running, (sums, grads)), None

            zeros = jax.tree.map(jnp.zeros_like, jax.eval_shape(
                sums_and_grads, jax.tree.map(lambda x: x[0], micro_batches), dropout_key))
            (sums, grads), _ = jax.lax.scan(accumulate, zeros,
                                            (micro_batches, jnp.arange(grad_accum_steps)))
        return grads, self.summarize(sums) | self.step_metrics(batch, totals)


class Batches(Protocol):
    """An iterator of this process's rows of every global batch whose position can be saved into
    a checkpoint and restored (`state.checkpointer.Checkpointer`): `reading.reader.DataIterator`,
    `reading.packing.PackedBatches`, `training.array_batches.ArrayBatches`."""

    def __next__(self) -> dict[str, np.ndarray]: ...

    def save(self, prefix: str) -> None: ...

    def restore(self, prefix: str) -> None: ...


class TrainData(Protocol):
    """The training batches of a run, by stage: pretraining's phases, or the one stage of a
    task. Stages are compared (a change recompiles the step) and printed in logs."""

    def stage_at(self, step: int) -> Hashable:
        """The stage whose batches the step after `step` trains on."""

    def batches(self, stage: Hashable) -> Batches:
        """`stage`'s batches from its start (`restore` moves them to a checkpoint's position)."""

    def position(self, stage: Hashable) -> dict:
        """What a saved position of `stage`'s batches means (files, batch size, seed): a
        checkpoint's position is restored only where it equals this."""


class Evaluator(Protocol):
    """An evaluation: run every `LoopConfig.eval_every` steps and at the end, and the metric
    that `CheckpointConfig.best_metric` names among its results keeps the best parameters."""

    def batches(self) -> Iterable[dict[str, np.ndarray]]:
        """One pass over the evaluation set: this process's rows of each global batch, as many
        batches on every process, padding rows weighted 0 in `example_weights`."""

    def outputs(self, params: Any, batch: Batch) -> Any:
        """Pure: what `metrics` needs of one global batch (loss sums, or every row's prediction
        with its example weight); jitted by the loop, and replicated to every process."""

    def metrics(self, outputs: Iterator[Any]) -> dict[str, float]:
        """Metrics from the outputs of every batch, on the host as numpy: sums added up, or F1,
        Matthews or Spearman correlation, exact match over all the predictions."""
