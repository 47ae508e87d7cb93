"""Device mesh and the rules that map logical axis names onto it.

The model names every parameter axis ("vocab", "embed", "heads", "kv", "mlp") and every
activation axis ("batch", "length", ...). `LOGICAL_RULES` maps those names onto the mesh axes
("data", "fsdp", "tensor"), so data parallelism, fully sharded parameters and tensor parallelism
are chosen by the mesh shape in the config, not by code.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

MESH_AXES = ("data", "fsdp", "tensor")

# Parameters are sharded over "fsdp" along their embedding axis and over "tensor" along heads
# and the feed-forward width (Megatron-style); activations are sharded over the batch.
LOGICAL_RULES: tuple[tuple[str, Any], ...] = (
    ("batch", ("data", "fsdp")),
    ("length", None),
    ("embed", "fsdp"),
    ("embed_out", None),
    ("heads", "tensor"),
    ("kv", None),
    ("mlp", "tensor"),
    ("vocab", "tensor"),
    ("layers", None),  # The stacked-layer axis of `scan_layers` parameters.
)


def mesh_shape(requested: Mapping[str, int], num_devices: int) -> tuple[int, ...]:
    """Resolves the configured axis sizes (one of them may be -1: "all remaining devices")."""
    sizes = [int(requested.get(axis, 1)) for axis in MESH_AXES]
    unknown = [i for i, s in enumerate(sizes) if s == -1]
    if len(unknown) > 1:
        raise ValueError(f"mesh.shape={dict(requested)}: at most one axis may be -1.")
    if unknown:
        known = math.prod(s for s in sizes if s != -1)
        if num_devices % known:
            raise ValueError(f"mesh.shape={dict(requested)}: {num_devices} devices are not "
                             f"divisible by the fixed axes' product {known}.")
        sizes[unknown[0]] = num_devices // known
    if math.prod(sizes) != num_devices:
        raise ValueError(f"mesh.shape={dict(requested)} has {math.prod(sizes)} devices but "
                         f"{num_devices} are available; make the product equal the device count "
                         "or set one axis to -1.")
    return tuple(sizes)


def make_mesh(requested: Mapping[str, int], devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A mesh with axes ("data", "fsdp", "tensor") over all (or the given) devices. Axes are
    Auto, so XLA propagates shardings from the annotated inputs, outputs and constraints."""
    devices = list(devices if devices is not None else jax.devices())
    shape = mesh_shape(requested, len(devices))
    return jax.make_mesh(shape, MESH_AXES, axis_types=(AxisType.Auto,) * len(MESH_AXES),
                         devices=devices)


def logical_to_sharding(logical_specs: Any, mesh: Mesh,
                        rules: Sequence[tuple[str, Any]] = LOGICAL_RULES) -> Any:
    """A tree of logical `PartitionSpec`s to `NamedSharding`s on `mesh`."""
    return nn.logical_to_mesh_sharding(logical_specs, mesh, list(rules))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Batches are split over the data-parallel axes ("data" and "fsdp") along dimension 0."""
    return NamedSharding(mesh, PartitionSpec(("data", "fsdp")))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def data_parallel_axes_size(shape: Sequence[int]) -> int:
    """The data-parallel size ("data" x "fsdp") of a mesh shape in `MESH_AXES` order."""
    return shape[MESH_AXES.index("data")] * shape[MESH_AXES.index("fsdp")]
