"""The run's typed config: the user-facing `ConfigDict` (config files, `--set`, `validate`, the
copy every checkpoint keeps) read once, at start-up, into small frozen dataclasses, so that each
component of the training loop takes only the fields it uses (as the Flax lm1b example builds its
`TransformerConfig` once). A fine-tuning task builds the same `RunConfig` from its own config.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import ml_collections

from bert_jax.config.defaults import report_destinations
from bert_jax.config.validation import RESUME_INVARIANT_FIELDS, bert_config, config_rules
from bert_jax.model import BertConfig


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """What `state.optimizer.make_optimizer` builds: AdamW or LAMB, global-norm clipping, linear
    warm-up then linear decay to 0."""
    name: str = "adamw"           # "adamw" or "lamb"
    learning_rate: float = 1e-4
    warmup_steps: int = 10_000
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-6
    weight_decay: float = 0.01
    clip_norm: float = 1.0

    @classmethod
    def from_config(cls, section: ml_collections.ConfigDict) -> OptimizerConfig:
        """From the `optimizer` section of a run config."""
        return cls(**{field.name: section[field.name] for field in dataclasses.fields(cls)})

    def with_warmup_fraction(self, fraction: float, num_steps: int) -> OptimizerConfig:
        """The same optimizer warming up over `fraction` of `num_steps` (fine-tuning recipes
        state warm-up as a fraction of a length given by epochs)."""
        return dataclasses.replace(self, warmup_steps=round(fraction * num_steps))


@dataclasses.dataclass(frozen=True)
class LoopConfig:
    """How long the loop runs, what it feeds each step, and how often it logs and evaluates."""
    num_steps: int
    global_batch_size: int        # Rows of every step, over all processes.
    grad_accum_steps: int = 1     # Micro-batches per step whose gradients are summed.
    seed: int = 0                 # Initialization, dropout keys and the data order.
    rng_impl: str = "threefry2x32"  # The dropout keys' PRNG (see `training.step.train_step`).
    log_every: int = 100
    eval_every: int = 0           # 0: evaluate only at the end.
    eval_steps: int = 0           # Batches per evaluation; 0: the whole evaluation set.
    max_consecutive_nonfinite: int = 10  # This many skipped steps in a row stop the run.
    peak_flops_per_device: float = 0.0   # For the MFU column; 0: looked up by device kind.
    report_to: tuple[str, ...] = ("tensorboard",)  # Besides metrics.jsonl: "tensorboard", "wandb".

    @classmethod
    def from_config(cls, train: ml_collections.ConfigDict) -> LoopConfig:
        """From the `train` section of a run config (a field added since a config was saved
        takes its default)."""
        fields = {field.name: train[field.name] for field in dataclasses.fields(cls) if field.name in train}
        if "report_to" in fields:
            fields["report_to"] = report_destinations(fields["report_to"])
        return cls(**fields)



@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
    """When the loop saves, how many checkpoints it keeps, and which evaluation is the best."""
    every: int = 10_000
    keep: int = 3
    # An evaluation metric (e.g. "f1") whose best value's parameters are kept apart, under
    # `workdir/best/` (`state.best.BestParams`); "" keeps none. `best_mode`: "max" or "min".
    best_metric: str = ""
    best_mode: str = "max"


@dataclasses.dataclass(frozen=True)
class MeshConfig:
    """The device mesh's axis sizes (one may be -1: the remaining devices) and the rules mapping
    logical axis names onto its axes (`parallel.sharding.logical_rules`)."""
    shape: tuple[tuple[str, int], ...]
    rules: tuple[tuple[str, Any], ...]

    @classmethod
    def from_config(cls, config: ml_collections.ConfigDict) -> MeshConfig:
        """From the `mesh` section of a run config."""
        return cls(shape=tuple(dict(config.mesh.shape).items()), rules=config_rules(config))


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything the training loop (`training.loop.train`) reads, whatever the objective."""
    model: BertConfig
    optimizer: OptimizerConfig
    loop: LoopConfig
    checkpoints: CheckpointConfig
    mesh: MeshConfig
    # Weights to start a fresh run from (`convert.sources.initialize_params`): those the source
    # holds replace the fresh ones, the rest (a new task head) stay fresh. "": none.
    init_from: str = ""
    # The config as the user gave it: written to `config.json` and into every checkpoint, and
    # compared with a resumed run's saved one on `resume_invariants` (`validation.check_resumable`).
    user_config: Mapping[str, Any] = dataclasses.field(default_factory=dict, compare=False, repr=False)
    resume_invariants: tuple[str, ...] = RESUME_INVARIANT_FIELDS

    @classmethod
    def from_config(cls, config: ml_collections.ConfigDict) -> RunConfig:
        """The typed run config of a (validated) pretraining config."""
        train = config.train
        return cls(model=bert_config(config), optimizer=OptimizerConfig.from_config(config.optimizer),
                   loop=LoopConfig.from_config(train),
                   checkpoints=CheckpointConfig(every=train.checkpoint_every, keep=train.keep_checkpoints),
                   mesh=MeshConfig.from_config(config), init_from=train.get("init_from", ""),
                   user_config=config.to_dict())
