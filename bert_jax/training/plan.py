"""What a pretraining run will do, before it does it (`bert-jax pretrain --dry-run`): the model's
size, the FLOPs and the device memory of each phase's compiled step, and how many steps make an
epoch of its shards. Everything is computed from the config and abstract shapes (nothing is
initialized, nothing is written): the step is lowered and compiled exactly as the run would, so
the memory is XLA's own plan for it.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import ml_collections
import numpy as np

from bert_jax.config.pretraining import Phase, PretrainingData
from bert_jax.config.run import RunConfig
from bert_jax.config.validation import validate
from bert_jax.model import BertForPreTraining, flops
from bert_jax.parallel import sharding
from bert_jax.state.optimizer import make_optimizer
from bert_jax.state.train_state import abstract_state, state_shardings
from bert_jax.training.loop import jit_train_step
from bert_jax.training.phases import PhasedShards, check_shards
from bert_jax.training.pretraining import PretrainingObjective
from input_pipeline import remote_files
from input_pipeline.shards.manifest import read_manifest


@dataclasses.dataclass(frozen=True)
class PhasePlan:
    """One phase's compiled step."""
    phase: str
    steps: int                            # Steps the run spends on this phase.
    flops_per_step: float
    device_bytes: int | None              # XLA's plan per device for one step (None: not reported).
    sequences: int | None                 # In the phase's shards, from their manifests.
    steps_per_epoch: float | None         # `sequences` / global batch size (before packing).
    seconds_per_step_at_peak: float | None  # A lower bound: the FLOPs at 100% of the devices' peak.


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """The run as planned: its size, its mesh and each phase's step."""
    parameters: int
    devices: int
    device_kind: str
    mesh: dict[str, int]
    global_batch_size: int
    phases: tuple[PhasePlan, ...]

    def lines(self) -> list[str]:
        """The plan as a person reads it."""
        out = [f"parameters: {self.parameters:,}",
               f"mesh: {self.mesh} over {self.devices} {self.device_kind} device(s); "
               f"global batch {self.global_batch_size}"]
        for p in self.phases:
            memory = "not reported" if p.device_bytes is None else f"{p.device_bytes / 2**20:,.1f} MiB"
            epoch = ("unknown (no manifest)" if p.steps_per_epoch is None
                     else f"{p.steps_per_epoch:,.1f} steps ({p.sequences:,} sequences)")
            peak = ("peak unknown for this device" if p.seconds_per_step_at_peak is None
                    else f"at least {p.seconds_per_step_at_peak:.3g} s per step at the devices' peak")
            out.append(f"{p.phase}: {p.steps:,} steps; {p.flops_per_step / 1e12:,.3f} TFLOP per step "
                       f"({peak}); device memory planned per device: {memory}; an epoch: {epoch}")
        return out


def plan_pretraining(config: ml_collections.ConfigDict) -> RunPlan:
    """Validates `config` and plans its run on this process's devices (see the module docstring)."""
    validate(config, jax.device_count(), jax.process_count())
    run, data = RunConfig.from_config(config), PretrainingData.from_config(config)
    check_shards(data)
    objective = PretrainingObjective.for_data(BertForPreTraining(run.model), data)
    mesh = sharding.make_mesh(dict(run.mesh.shape))
    optimizer, schedule = make_optimizer(run.optimizer, run.loop.num_steps)
    shardings = state_shardings(objective.init_params, optimizer, mesh, run.mesh.rules)
    state = abstract_state(objective.init_params, optimizer, shardings)
    step = jit_train_step(objective, optimizer, schedule, run.loop, mesh, run.mesh.rules, shardings)
    kind = jax.devices()[0].device_kind
    peak = run.loop.peak_flops_per_device or flops.peak_flops(kind)
    ends = [phase.start_step for phase in data.phases[1:]] + [run.loop.num_steps]
    phases = []
    for phase, end in zip(data.phases, ends):
        batch = _abstract_batch(PhasedShards(data), phase, mesh)
        compiled = step.lower(state, batch).compile()
        train_flops = objective.train_flops(phase, run.loop.global_batch_size)
        sequences = _sequences(phase)
        phases.append(PhasePlan(
            phase=str(phase), steps=end - phase.start_step, flops_per_step=train_flops,
            device_bytes=planned_bytes(compiled), sequences=sequences,
            steps_per_epoch=None if sequences is None else sequences / run.loop.global_batch_size,
            seconds_per_step_at_peak=train_flops / (peak * jax.device_count()) if peak else None))
    return RunPlan(parameters=sum(math.prod(x.shape) for x in jax.tree.leaves(state.params)),
                   devices=jax.device_count(), device_kind=kind, mesh=dict(mesh.shape),
                   global_batch_size=run.loop.global_batch_size, phases=tuple(phases))


def planned_bytes(compiled) -> int | None:
    """Device memory XLA plans for one call of a compiled step: arguments, outputs not aliased
    to (donated) arguments, and temporaries."""
    analysis = compiled.memory_analysis()
    if analysis is None:
        return None
    return (analysis.argument_size_in_bytes + analysis.output_size_in_bytes
            - analysis.alias_size_in_bytes + analysis.temp_size_in_bytes)


def _abstract_batch(shards: PhasedShards, phase: Phase, mesh: jax.sharding.Mesh) -> dict:
    """The global batch's shapes, from one batch of this process's rows (the reader decides the
    features: packed or not, masked by the reader or in the shards)."""
    local = next(shards.batches(phase))
    target = sharding.batch_sharding(mesh)
    return {k: jax.ShapeDtypeStruct((len(v) * jax.process_count(), *v.shape[1:]), np.asarray(v).dtype,
                                    sharding=target) for k, v in local.items()}


def _sequences(phase: Phase) -> int | None:
    """Sequences in the phase's shards by their manifests; None when a pattern is not a
    directory with a manifest."""
    total = 0
    for pattern in phase.file_patterns:
        manifest = read_manifest(pattern) if remote_files.isdir(pattern) else None
        if manifest is None:
            return None
        total += int(manifest["num_instances"])
    return total

