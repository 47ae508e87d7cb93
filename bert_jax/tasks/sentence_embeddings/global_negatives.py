"""In-batch negatives from the GLOBAL batch on a device mesh.

The ranking loss is only as good as its negatives: with the batch split over n data-parallel
devices, a loss computed on each device's slice would rank every anchor against B/n candidates,
not B, and silently train a weaker model the more devices there are. Here each device ranks its
own anchors against the candidates of all devices, gathered over the mesh axes that split the
batch ("data" and "fsdp": every process feeds its own rows, `parallel.sharding.batch_sharding`),
across hosts as well.

Why `shard_map` with an explicit all-gather rather than the same loss on the global arrays (which
GSPMD would also compute correctly): the communication is spelled out (one all-gather of the
candidates, [B, hidden] per column, small next to the encoder's activations) and so is the work,
a [B/n, k * B] block of logits per device, where GSPMD is free to gather the anchors too and
compute all B x k * B logits on every device. The function inside is the single-device loss
(`losses.multiple_negatives_ranking_loss`) with its `axis_name`, so there is one definition to
check against sentence-transformers.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax.sharding import AbstractMesh, Mesh, PartitionSpec

from bert_jax.parallel.sharding import ACTIVATION_RULES, mesh_axes_of
from bert_jax.tasks.sentence_embeddings.losses import RANKING_SCALE, multiple_negatives_ranking_loss


def batch_axes(mesh: Mesh) -> tuple[str, ...]:
    """The axes of `mesh` that split the batch (those of the "batch" activation rule it has)."""
    return tuple(a for a in mesh_axes_of(ACTIVATION_RULES, "batch") if a in mesh.axis_names)


def global_multiple_negatives_ranking_loss(anchors: jax.Array, positives: jax.Array,
                                           negatives: Sequence[jax.Array] = (), *, mesh: Mesh | AbstractMesh,
                                           scale: float = RANKING_SCALE,
                                           example_weights: jax.Array | None = None) -> jax.Array:
    """`multiple_negatives_ranking_loss` of the global batch, for use under `jax.jit` with the
    embeddings [global batch, hidden] (and `example_weights` [global batch]) split over the batch
    axes of `mesh` (any other layout is resharded to that first). Equal to the loss of the whole
    batch on one device; a scalar, replicated. The gradient flows back through the all-gather (a
    reduce-scatter) to the candidates' own devices. `mesh` may be the abstract mesh in scope
    while a step is traced (`parallel.sharding.with_logical_rules`)."""
    axes = batch_axes(mesh)
    rows = PartitionSpec(axes)
    if example_weights is None:
        example_weights = jnp.ones(anchors.shape[:1], jnp.float32)

    def loss(anchors, positives, negatives, weights):
        return multiple_negatives_ranking_loss(anchors, positives, negatives, scale=scale,
                                               example_weights=weights, axis_name=axes)

    return jax.shard_map(loss, mesh=mesh, in_specs=(rows, rows, rows, rows), out_specs=PartitionSpec())(
        anchors, positives, tuple(negatives), example_weights)
