"""The run configuration: defaults, model sizes, loading config files, overrides and validation.

A config is a plain Python file under `configs/` with a `get_config()` that returns an
`ml_collections.ConfigDict` (start from `default_config()` here). It is validated once, at start-up,
before anything is compiled, and every error names the field, its value and the rule.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import json
import math
import os
from pathlib import Path

import ml_collections

from bert_jax.model import BertConfig
from bert_jax.sharding import (DEFAULT_PARAMETER_RULES, MESH_AXES, config_rules, data_parallel_axes_size,
                              mesh_axes_of, mesh_shape)

# Model sizes of the BERT paper and of Turc et al. (2019), "Well-Read Students Learn Better".
MODEL_SIZES = {
    "tiny": dict(num_layers=2, hidden_size=128, num_heads=2),
    "mini": dict(num_layers=4, hidden_size=256, num_heads=4),
    "small": dict(num_layers=4, hidden_size=512, num_heads=8),
    "medium": dict(num_layers=8, hidden_size=512, num_heads=8),
    "base": dict(num_layers=12, hidden_size=768, num_heads=12),
    "large": dict(num_layers=24, hidden_size=1024, num_heads=16),
}

RNG_IMPLS = ("threefry2x32", "rbg", "unsafe_rbg")

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


def model_size(name: str) -> dict[str, int]:
    """Layers, hidden size, heads and the 4x feed-forward width of a named BERT size."""
    if name not in MODEL_SIZES:
        raise ValueError(f"unknown model size {name!r}; choose one of {sorted(MODEL_SIZES)}.")
    size = dict(MODEL_SIZES[name])
    size["intermediate_size"] = 4 * size["hidden_size"]
    return size


def default_config() -> ml_collections.ConfigDict:
    """BERT-Base, phase 1 (sequence length 128), with the paper's optimizer settings."""
    config = ml_collections.ConfigDict()
    # Layers under one nn.scan: BERT-Large compiles as fast as BERT-Tiny.
    config.model = dataclasses.asdict(BertConfig(scan_layers=True))

    config.data = ml_collections.ConfigDict()
    config.data.train_files = ""      # Shard files: a directory, file or glob; several with ",".
    config.data.eval_files = ""       # Optional held-out shards evaluated every `eval_every` steps.
    config.data.vocab_file = ""       # The vocab.txt the shards were made with.
    config.data.do_lower_case = True
    config.data.max_seq_length = 128
    config.data.max_predictions_per_seq = 20
    config.data.shuffle_buffer = 10_000
    # RoBERTa-style masking by the reader, for shards written with `create-data --masking dynamic`.
    config.data.dynamic_masking = False
    config.data.masked_lm_prob = 0.15
    config.data.whole_word_masking = False
    # Phase 2 (BERT's last 10% of steps at sequence length 512), from its own shards; empty: none.
    config.data.phase2_train_files = ""
    config.data.phase2_max_seq_length = 512
    config.data.phase2_max_predictions_per_seq = 80
    config.data.phase2_start_fraction = 0.9
    # Sequence packing (input_pipeline.packing): up to this many examples side by side in one
    # row instead of one padded row each; the model computes the same for each of them. Pays
    # where examples are short (phase 2, short documents). Rows hold
    # max_predictions_per_seq + max_sequences_per_pack masked-LM predictions.
    config.data.packing = False
    config.data.max_sequences_per_pack = 4
    config.data.packing_window = 2048  # Examples packed together (per process).

    config.optimizer = ml_collections.ConfigDict()
    config.optimizer.name = "adamw"
    config.optimizer.learning_rate = 1e-4
    config.optimizer.warmup_steps = 10_000
    config.optimizer.b1 = 0.9
    config.optimizer.b2 = 0.999
    config.optimizer.eps = 1e-6
    config.optimizer.weight_decay = 0.01
    config.optimizer.clip_norm = 1.0

    config.train = ml_collections.ConfigDict()
    config.train.global_batch_size = 256
    # Micro-batches per step whose gradients are summed: the batch in less activation memory.
    config.train.grad_accum_steps = 1
    config.train.num_steps = 1_000_000
    config.train.seed = 0
    # Weights to start from instead of a random initialization: a Hugging Face BERT directory, a
    # Google checkpoint (bert_config.json + bert_model.ckpt) or a bert-jax work directory. Used
    # only when the work dir has no checkpoint yet; the model fields must match its shape.
    config.train.init_from = ""
    # PRNG of the dropout masks: "threefry2x32" gives the same bits on every backend; "rbg" and
    # "unsafe_rbg" use the hardware generator, much cheaper on GPUs and TPUs.
    config.train.rng_impl = "threefry2x32"
    config.train.log_every = 100
    config.train.checkpoint_every = 10_000
    config.train.keep_checkpoints = 3
    # Steps with a non-finite loss or gradient are skipped (and counted); this many in a row stop
    # the run with an error, the last good checkpoint left in place.
    config.train.max_consecutive_nonfinite = 10
    config.train.eval_every = 0       # 0: evaluate only at the end (if eval_files is set).
    config.train.eval_steps = 100     # Batches per evaluation; 0 means the whole eval set.
    # Peak FLOP/s of one device for the MFU column; 0 means look the device up in a known table.
    config.train.peak_flops_per_device = 0.0

    config.mesh = ml_collections.ConfigDict()
    config.mesh.shape = ml_collections.ConfigDict({"data": -1, "fsdp": 1, "tensor": 1})
    # Which mesh axes split each named parameter axis ("fsdp,tensor" for two, "" for none), as in
    # MaxText's logical_axis_rules; e.g. `--set mesh.rules.vocab=` keeps the embedding table
    # whole under tensor parallelism. The batch always splits over data x fsdp.
    config.mesh.rules = ml_collections.ConfigDict(DEFAULT_PARAMETER_RULES)
    return config


def load_config(name_or_path: str, overrides: list[str] | tuple[str, ...] = ()) -> ml_collections.ConfigDict:
    """Loads `configs/<name>.py` (or any path to a config file) and applies `key=value` overrides."""
    path = Path(name_or_path)
    if not path.suffix:
        path = CONFIG_DIR / f"{name_or_path}.py"
    if not path.is_file():
        available = sorted(p.stem for p in CONFIG_DIR.glob("*.py")) if CONFIG_DIR.is_dir() else []
        raise FileNotFoundError(f"config {name_or_path!r} not found (looked for {path}); "
                                f"available in {CONFIG_DIR}: {available}.")
    spec = importlib.util.spec_from_file_location(f"bert_jax_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ValueError(f"{path} must define get_config() returning an ml_collections.ConfigDict.")
    config = module.get_config()
    apply_overrides(config, overrides)
    return config


def apply_overrides(config: ml_collections.ConfigDict, overrides: list[str] | tuple[str, ...]) -> None:
    """Applies `section.field=value` strings; values are Python literals, or strings otherwise."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r} must look like section.field=value.")
        *parents, leaf = key.strip().split(".")
        node = config
        for part in parents:
            if part not in node:
                raise ValueError(f"override {item!r}: the config has no section {part!r}.")
            node = node[part]
        if leaf not in node:
            raise ValueError(f"override {item!r}: the config has no field {key!r}; fields of this "
                           f"section: {sorted(node.keys())}.")
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        old = node[leaf]
        if isinstance(old, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if old is not None and isinstance(old, (bool, int, float, str)) and type(value) is not type(old):
            raise ValueError(f"override {item!r}: {key} is a {type(old).__name__}, got {value!r}.")
        node[leaf] = value


def bert_config(config: ml_collections.ConfigDict) -> BertConfig:
    known = {f.name for f in dataclasses.fields(BertConfig)}
    unknown = set(config.model.keys()) - known
    if unknown:
        raise ValueError(f"model has unknown fields {sorted(unknown)}; known: {sorted(known)}.")
    return BertConfig(**config.model.to_dict())


def validate(config: ml_collections.ConfigDict, num_devices: int, num_processes: int = 1) -> None:
    """Raises a ValueError naming every field that breaks a rule, before anything is compiled."""
    errors: list[str] = []
    try:
        model = bert_config(config)
    except (ValueError, TypeError) as e:
        errors.append(str(e))
        model = None
    data, train, opt = config.data, config.train, config.optimizer
    if model is not None and data.max_seq_length > model.max_position_embeddings:
        errors.append(f"data.max_seq_length={data.max_seq_length} exceeds "
                      f"model.max_position_embeddings={model.max_position_embeddings}.")
    if not 1 <= data.max_predictions_per_seq <= data.max_seq_length:
        errors.append(f"data.max_predictions_per_seq={data.max_predictions_per_seq} must be in "
                      f"[1, data.max_seq_length={data.max_seq_length}].")
    if data.phase2_train_files:
        if model is not None and data.phase2_max_seq_length > model.max_position_embeddings:
            errors.append(f"data.phase2_max_seq_length={data.phase2_max_seq_length} exceeds "
                          f"model.max_position_embeddings={model.max_position_embeddings}.")
        if not 1 <= data.phase2_max_predictions_per_seq <= data.phase2_max_seq_length:
            errors.append(f"data.phase2_max_predictions_per_seq={data.phase2_max_predictions_per_seq} "
                          f"must be in [1, data.phase2_max_seq_length={data.phase2_max_seq_length}].")
        if not 0 < data.phase2_start_fraction < 1:
            errors.append(f"data.phase2_start_fraction={data.phase2_start_fraction} must be in (0, 1).")
    if data.packing:
        if data.max_sequences_per_pack < 1:
            errors.append(f"data.max_sequences_per_pack={data.max_sequences_per_pack} must be at least 1.")
        per_process = train.global_batch_size // max(num_processes, 1)
        if data.packing_window < per_process:
            errors.append(f"data.packing_window={data.packing_window} must be at least the batch of "
                          f"one process (train.global_batch_size / processes = {per_process}).")
    if data.dynamic_masking and not data.vocab_file:
        errors.append("data.dynamic_masking=True needs data.vocab_file (the reader masks with it).")
    if not 0 < data.masked_lm_prob < 1:
        errors.append(f"data.masked_lm_prob={data.masked_lm_prob} must be in (0, 1).")
    if train.num_steps < 1:
        errors.append(f"train.num_steps={train.num_steps} must be at least 1.")
    if not 0 <= opt.warmup_steps <= train.num_steps:
        errors.append(f"optimizer.warmup_steps={opt.warmup_steps} must be in [0, "
                      f"train.num_steps={train.num_steps}].")
    if opt.learning_rate <= 0:
        errors.append(f"optimizer.learning_rate={opt.learning_rate} must be positive.")
    if train.rng_impl not in RNG_IMPLS:
        errors.append(f"train.rng_impl={train.rng_impl!r} must be one of {RNG_IMPLS}.")
    for field in ("log_every", "checkpoint_every", "keep_checkpoints", "grad_accum_steps",
                  "max_consecutive_nonfinite"):
        if train[field] < 1:
            errors.append(f"train.{field}={train[field]} must be at least 1.")
    try:
        shape = mesh_shape(config.mesh.shape, num_devices)
        dp = data_parallel_axes_size(shape)
        if dp % num_processes:
            errors.append(f"mesh.shape={dict(config.mesh.shape)}: the data-parallel size {dp} "
                          f"(data x fsdp) must be a multiple of the number of processes "
                          f"{num_processes}, since each process feeds its own rows of the batch.")
        rules = config_rules(config)
        if model is not None:
            sized = [("num_heads", model.num_heads, "heads"), ("head_dim", model.head_dim, "kv"),
                     ("intermediate_size", model.intermediate_size, "mlp"),
                     ("vocab_size", model.vocab_size, "vocab"),
                     ("hidden_size", model.hidden_size, "embed"),
                     ("hidden_size", model.hidden_size, "embed_out")]
            if model.scan_layers:
                sized.append(("num_layers", model.num_layers, "layers"))
            for field, size, logical in sized:
                axes = mesh_axes_of(rules, logical)
                n = math.prod(shape[MESH_AXES.index(a)] for a in axes)
                if size % n:
                    hint = (" (pad it: a model vocab larger than the vocab file is allowed, e.g. "
                            f"{-(-size // (128 * n)) * 128 * n})" if field == "vocab_size" else "")
                    where = f"{' x '.join(axes)} {'axes' if len(axes) > 1 else 'axis'} ({n})"
                    errors.append(f"model.{field}={size} must be divisible by the mesh's {where}, "
                                  f"which shards its {logical!r} axis (mesh.rules.{logical}){hint}.")
        if train.global_batch_size % (dp * train.grad_accum_steps):
            errors.append(f"train.global_batch_size={train.global_batch_size} must be divisible "
                          f"by the data-parallel size {dp} (mesh data x fsdp) times "
                          f"train.grad_accum_steps={train.grad_accum_steps}.")
    except ValueError as e:
        errors.append(str(e))
    if train.global_batch_size % num_processes:
        errors.append(f"train.global_batch_size={train.global_batch_size} must be divisible by "
                      f"the number of processes {num_processes}.")
    if train.get("init_from"):
        from bert_jax.checkpoint_import import source_exists
        if not source_exists(train.init_from):
            errors.append(f"train.init_from={train.init_from!r} does not exist (a Hugging Face "
                          "directory, a Google checkpoint or a bert-jax work directory).")
    if not data.train_files:
        errors.append("data.train_files is empty: point it at the shards made by "
                      "`bert-jax create-data`.")
    if errors:
        raise ValueError("invalid config:\n  - " + "\n  - ".join(errors))


# What a checkpoint's arrays and a resumed run's data depend on: a work directory whose saved
# config differs in any of these cannot be resumed. Everything else (the learning-rate schedule,
# logging, checkpoint intervals, the mesh, dropout, dtype) may change between restarts.
RESUME_INVARIANT_FIELDS = (
    "model.vocab_size", "model.hidden_size", "model.num_layers", "model.num_heads",
    "model.intermediate_size", "model.max_position_embeddings", "model.type_vocab_size",
    "model.scan_layers", "data.max_seq_length", "data.do_lower_case", "optimizer.name",
)


def check_resumable(saved: dict, config: ml_collections.ConfigDict, workdir: str) -> None:
    """Raises a ValueError naming every field in which `config` differs from the `saved` config
    of the run in `workdir` in a way a resumed run cannot follow (model shape, vocabulary,
    sequence length, optimizer)."""
    new = config.to_dict()
    differences = []
    for field in RESUME_INVARIANT_FIELDS:
        section, name = field.split(".")
        before, after = saved.get(section, {}).get(name), new[section][name]
        if before != after:
            differences.append(f"{field}: saved {before!r}, now {after!r}")
    before_vocab, after_vocab = saved.get("data", {}).get("vocab_file"), config.data.vocab_file
    if before_vocab and after_vocab and before_vocab != after_vocab:
        before_hash, after_hash = (_file_sha256(p) for p in (before_vocab, after_vocab))
        if before_hash and after_hash and before_hash != after_hash:
            differences.append(f"data.vocab_file: saved {before_vocab!r}, now {after_vocab!r}, "
                               "whose contents differ")
    if differences:
        raise ValueError(
            f"the work directory {workdir} holds a run whose saved config cannot be continued "
            "with this one:\n  - " + "\n  - ".join(differences) + "\nUse another --workdir for "
            "a new run, or set these fields back to their saved values.")


def _file_sha256(path: str) -> str | None:
    from input_pipeline import remote_files
    from input_pipeline.manifest import file_sha256
    return file_sha256(path) if remote_files.exists(path) else None


def to_json(config: ml_collections.ConfigDict) -> str:
    return json.dumps(config.to_dict(), indent=2, sort_keys=True)


def save_config(config: ml_collections.ConfigDict, path: str | os.PathLike) -> None:
    """Writes the config as JSON, atomically."""
    from input_pipeline.tfrecord import write_atomically
    write_atomically(path, [(to_json(config) + "\n").encode()])
