"""Device mesh and the rules that map logical axis names onto it.

The model names every parameter axis ("vocab", "embed", "heads", "kv", "mlp") and every
activation axis ("batch", "length", ...). Rules map those names onto the mesh axes ("data",
"fsdp", "tensor"): the defaults here, changed per run by `config.mesh.rules`. Data parallelism,
fully sharded parameters and tensor parallelism are then chosen by the mesh shape and the rules
in the config, not by code.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

MESH_AXES = ("data", "fsdp", "tensor")

# Where each named parameter axis goes: a comma-separated list of mesh axes ("" keeps the axis
# whole). The embedding axis is sharded over "fsdp" (fully sharded parameters and optimizer
# state), attention heads, the feed-forward width and the vocabulary over "tensor"
# (Megatron-style). `config.mesh.rules` starts from these and may move any of them.
DEFAULT_PARAMETER_RULES: dict[str, str] = {
    "embed": "fsdp",
    "embed_out": "",
    "heads": "tensor",
    "kv": "",
    "mlp": "tensor",
    "vocab": "tensor",
    "layers": "",  # The stacked-layer axis of `scan_layers` parameters.
}

# Activations are split over the batch on every data-parallel axis, always: each process feeds
# its own rows of the global batch (`batch_sharding`). Their other axes follow the parameter
# rules ("heads" and "mlp" activations over "tensor"); a mesh axis the batch already uses is
# not used twice, so "embed" activations stay whole under fsdp.
ACTIVATION_RULES: tuple[tuple[str, Any], ...] = (
    ("batch", ("data", "fsdp")),
    ("length", None),
)


def logical_rules(parameter_rules: Mapping[str, str] | None = None) -> tuple[tuple[str, Any], ...]:
    """The (logical axis, mesh axes) rules Flax applies: the activation rules, then the
    parameter axes from `parameter_rules` (default `DEFAULT_PARAMETER_RULES`) given as
    comma-separated mesh axis names. Raises ValueError naming an unknown axis."""
    rules = dict(DEFAULT_PARAMETER_RULES if parameter_rules is None else parameter_rules)
    unknown = sorted(set(rules) - set(DEFAULT_PARAMETER_RULES))
    if unknown:
        raise ValueError(f"mesh.rules has unknown logical axes {unknown}; the model names "
                         f"{sorted(DEFAULT_PARAMETER_RULES)} (the batch always splits over "
                         "data x fsdp).")
    resolved = []
    for name, value in rules.items():
        axes = tuple(a.strip() for a in str(value).split(",") if a.strip())
        bad = [a for a in axes if a not in MESH_AXES]
        if bad or len(set(axes)) != len(axes):
            raise ValueError(f"mesh.rules.{name}={value!r} must be comma-separated mesh axes from "
                             f"{MESH_AXES}, each at most once, or '' to keep the axis whole.")
        resolved.append((name, None if not axes else axes[0] if len(axes) == 1 else axes))
    return ACTIVATION_RULES + tuple(resolved)


LOGICAL_RULES = logical_rules()


def mesh_axes_of(rules: Sequence[tuple[str, Any]], logical_axis: str) -> tuple[str, ...]:
    """The mesh axes that `rules` split `logical_axis` over."""
    axes = dict(rules).get(logical_axis)
    return () if axes is None else (axes,) if isinstance(axes, str) else tuple(axes)


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


def with_logical_rules(fn: Callable, mesh: Mesh,
                       rules: Sequence[tuple[str, Any]] = LOGICAL_RULES) -> Callable:
    """`fn` traced with `rules` and `mesh`'s axes in scope, for `jax.jit`: the model's activation
    annotations (`nn.with_logical_constraint`) then become sharding constraints. Outside such a
    scope Flax drops them, and XLA alone decides how activations are split, which under tensor
    parallelism need not be Megatron's layout (heads and feed-forward columns on "tensor")."""
    @functools.wraps(fn)
    def traced(*args, **kwargs):
        with jax.sharding.use_abstract_mesh(mesh.abstract_mesh), nn.logical_axis_rules(rules):
            return fn(*args, **kwargs)
    return traced


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Batches are split over the data-parallel axes ("data" and "fsdp") along dimension 0."""
    return NamedSharding(mesh, PartitionSpec(("data", "fsdp")))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def data_parallel_axes_size(shape: Sequence[int]) -> int:
    """The data-parallel size ("data" x "fsdp") of a mesh shape in `MESH_AXES` order."""
    return shape[MESH_AXES.index("data")] * shape[MESH_AXES.index("fsdp")]
