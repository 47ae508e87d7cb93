"""The run configuration's defaults: every field a config file can set, with BERT-Base's
values and the paper's optimizer settings, and the named model sizes.

A config is a plain Python file under `configs/` with a `get_config()` that starts from
`default_config()` and returns an `ml_collections.ConfigDict`; `bert_jax.config.files` loads it and
`bert_jax.config.validation` checks it once, at start-up.
"""

from __future__ import annotations

import dataclasses

import ml_collections

from bert_jax.model import BertConfig, SentenceConfig
from bert_jax.parallel.sharding import (
    DEFAULT_PARAMETER_RULES,
)

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
# Where `train.report_to` may send the metrics (`training.metric_writers`).
REPORT_TO = ("tensorboard", "wandb")


def report_destinations(report_to: str) -> tuple[str, ...]:
    """`train.report_to` ("tensorboard,wandb", "" for neither) as a tuple of names."""
    return tuple(name.strip() for name in report_to.split(",") if name.strip())


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
    # Sequence packing (input_pipeline.reading.packing): up to this many examples side by side in one
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
    # Besides metrics.jsonl, comma-separated: "tensorboard", "wandb" (pip install 'bert-jax[wandb]').
    config.train.report_to = "tensorboard"

    config.mesh = ml_collections.ConfigDict()
    config.mesh.shape = ml_collections.ConfigDict({"data": -1, "fsdp": 1, "tensor": 1})
    # Which mesh axes split each named parameter axis ("fsdp,tensor" for two, "" for none), as in
    # MaxText's logical_axis_rules; e.g. `--set mesh.rules.vocab=` keeps the embedding table
    # whole under tensor parallelism. The batch always splits over data x fsdp.
    config.mesh.rules = ml_collections.ConfigDict(DEFAULT_PARAMETER_RULES)

    # The sentence-embedding head (`bert_jax.model.sentence.SentenceConfig`): pooling, unit
    # length, prompts. `bert-jax encode` pools this way unless told otherwise, a sentence-transformers
    # export writes it as that library's modules, and `bert-jax import` of a sentence-transformers
    # directory sets it to that model's own.
    config.sentence = ml_collections.ConfigDict(dataclasses.asdict(SentenceConfig()))
    return config

