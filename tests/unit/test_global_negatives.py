"""In-batch negatives come from the global batch, not from each device's slice.

Eight data-parallel instances, each holding a contiguous eighth of the batch, compute the ranking
loss with `axis_name`: every instance's result, and the gradient, equal the single-device loss of
the whole batch, and differ clearly from the mean of per-slice losses (8 times fewer negatives),
which is what a loss without the all-gather would give. `jax.vmap` with an axis name runs the
collectives on one device; on a real mesh of 8 devices, `global_multiple_negatives_ranking_loss`
under `jax.jit` with the batch sharded over ("data", "fsdp") is checked too, in a session that has
8 (fake CPU) devices: JAX must be asked for them before it starts
(`XLA_FLAGS=--xla_force_host_platform_device_count=8`), and unit tests start no subprocesses:
tests/integration/test_eight_device_unit_tests.py runs them so, and fails if any skips.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bert_jax.parallel import sharding
from bert_jax.tasks.sentence_embeddings.global_negatives import batch_axes, global_multiple_negatives_ranking_loss
from bert_jax.tasks.sentence_embeddings.losses import multiple_negatives_ranking_loss

DEVICES, BATCH, HIDDEN = 8, 32, 16
RTOL, ATOL = 1e-5, 1e-7


def _columns(num_negatives: int) -> list[jax.Array]:
    rng = np.random.default_rng(num_negatives)
    anchors = rng.normal(size=(BATCH, HIDDEN))
    columns = [anchors, anchors + 2.0 * rng.normal(size=(BATCH, HIDDEN))]
    columns += [rng.normal(size=(BATCH, HIDDEN)) for _ in range(num_negatives)]
    return [jnp.asarray(c, jnp.float32) for c in columns]


def _whole_batch(*columns):
    return multiple_negatives_ranking_loss(columns[0], columns[1], columns[2:])


def _assert_same_loss_and_grads(loss, columns) -> None:
    argnums = tuple(range(len(columns)))
    value, grads = jax.jit(jax.value_and_grad(loss, argnums))(*columns)
    expected, expected_grads = jax.jit(jax.value_and_grad(_whole_batch, argnums))(*columns)
    np.testing.assert_allclose(value, expected, rtol=RTOL)
    for i, (ours, theirs) in enumerate(zip(grads, expected_grads)):
        np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL, err_msg=f"gradient of column {i}")


@pytest.mark.parametrize("num_negatives", [0, 1, 2])
def test_every_instance_ranks_against_the_global_batch(num_negatives):
    columns = _columns(num_negatives)

    def per_instance(*columns):
        sliced = [c.reshape(DEVICES, BATCH // DEVICES, HIDDEN) for c in columns]
        loss = functools.partial(multiple_negatives_ranking_loss, axis_name="devices")
        return jax.vmap(lambda a, p, *n: loss(a, p, n), axis_name="devices")(*sliced)

    losses = jax.jit(per_instance)(*columns)
    np.testing.assert_allclose(losses, np.full(DEVICES, _whole_batch(*columns)), rtol=RTOL)
    # Any one instance's loss (they are all the same number) differentiates to the global gradient.
    _assert_same_loss_and_grads(lambda *c: per_instance(*c)[3], columns)

    sliced = [c.reshape(DEVICES, BATCH // DEVICES, HIDDEN) for c in columns]
    per_slice = jnp.mean(jax.jit(jax.vmap(lambda a, p, *n: multiple_negatives_ranking_loss(a, p, n)))(*sliced))
    assert float(losses[0]) > float(per_slice) + 1.0, "the global batch's negatives make a harder ranking"


MESHES = ({"data": 2, "fsdp": 4, "tensor": 1}, {"data": 8, "fsdp": 1, "tensor": 1},
          {"data": 1, "fsdp": 4, "tensor": 2})


@pytest.mark.skipif(jax.device_count() < DEVICES,
                    reason="needs 8 devices: XLA_FLAGS=--xla_force_host_platform_device_count=8")
@pytest.mark.parametrize("shape", MESHES, ids=lambda s: ",".join(map(str, s.values())))
@pytest.mark.parametrize("num_negatives", [0, 1])
def test_sharded_batch_on_a_mesh_gives_the_whole_batch_loss(shape, num_negatives):
    mesh = sharding.make_mesh(shape, jax.devices()[:DEVICES])
    assert batch_axes(mesh) == ("data", "fsdp")
    columns = [jax.device_put(c, sharding.batch_sharding(mesh)) for c in _columns(num_negatives)]

    def loss(*columns):
        return global_multiple_negatives_ranking_loss(columns[0], columns[1], columns[2:], mesh=mesh)

    _assert_same_loss_and_grads(loss, columns)
