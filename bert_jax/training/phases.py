"""Which data a step trains on: the two phases of BERT's recipe (short sequences, then long ones
from their own shards), the reader and packing behind each, and the data position a checkpoint
records so that a resumed run reads what an uninterrupted one would.
"""

from __future__ import annotations

from collections.abc import Iterator

import jax
import ml_collections
import numpy as np

from input_pipeline.instances.masking import MaskingConfig
from input_pipeline.reading.packing import PackedBatches, PackingConfig
from input_pipeline.reading.reader import DataIterator, ReaderConfig
from input_pipeline.tokenizers.loading import load_tokenizer


def phase2_start_step(config: ml_collections.ConfigDict) -> int | None:
    """The first step of phase 2 (long sequences), or None for a one-phase run."""
    if not config.data.phase2_train_files:
        return None
    return round(config.data.phase2_start_fraction * config.train.num_steps)


def phase_at(config: ml_collections.ConfigDict, step: int) -> int:
    """The phase (1 or 2) whose data the step after `step` trains on."""
    start = phase2_start_step(config)
    return 2 if start is not None and step >= start else 1


def phase_shapes(config: ml_collections.ConfigDict, phase: int) -> tuple[str, int, int]:
    """(shard files, sequence length, masked predictions) of `phase`."""
    data = config.data
    if phase == 2:
        return data.phase2_train_files, data.phase2_max_seq_length, data.phase2_max_predictions_per_seq
    return data.train_files, data.max_seq_length, data.max_predictions_per_seq


def predictions_per_row(config: ml_collections.ConfigDict, phase: int) -> int:
    """Masked-LM predictions in one row of `phase`'s batches: a packed row has room for one
    more per sequence, the rounding of each sequence's 15%."""
    _, _, preds = phase_shapes(config, phase)
    return preds + config.data.max_sequences_per_pack if config.data.packing else preds


def _reader_config(config: ml_collections.ConfigDict, files: str, repeat: bool,
                   max_seq_length: int, max_predictions_per_seq: int, batch_size: int | None = None):

    masking = None
    if config.data.dynamic_masking:
        masking = MaskingConfig.from_tokenizer(
            load_tokenizer(config.data.vocab_file, do_lower_case=config.data.do_lower_case),
            masked_lm_prob=config.data.masked_lm_prob, max_predictions_per_seq=max_predictions_per_seq,
            whole_word_masking=config.data.whole_word_masking)
    return ReaderConfig(
        file_patterns=tuple(p for p in files.split(",") if p),
        batch_size=batch_size or config.train.global_batch_size // jax.process_count(),
        max_seq_length=max_seq_length, max_predictions_per_seq=max_predictions_per_seq,
        seed=config.train.seed, shuffle_buffer=config.data.shuffle_buffer, repeat=repeat,
        dynamic_masking=masking, vocab_size=config.model.vocab_size)


def train_batches(config: ml_collections.ConfigDict, phase: int):
    """This process's part of every global batch of `phase`, from the start of its stream
    (`restore` moves it to a checkpoint's position); packed rows with `data.packing`."""

    files, seq, preds = phase_shapes(config, phase)
    if not config.data.packing:
        return DataIterator(_reader_config(config, files, True, seq, preds),
                            jax.process_index(), jax.process_count())
    windows = DataIterator(_reader_config(config, files, True, seq, preds, config.data.packing_window),
                           jax.process_index(), jax.process_count())
    packing = PackingConfig(config.data.max_sequences_per_pack, predictions_per_row(config, phase))
    return PackedBatches(windows, config.train.global_batch_size // jax.process_count(), seq, packing,
                         seed=config.train.seed)


def data_position(config: ml_collections.ConfigDict, phase: int) -> dict:
    """What a saved data position means; a checkpoint's position is used only if it matches."""
    files, seq, preds = phase_shapes(config, phase)
    return {"phase": phase, "files": files, "max_seq_length": seq, "max_predictions_per_seq": preds,
            "global_batch_size": config.train.global_batch_size, "seed": config.train.seed,
            "shuffle_buffer": config.data.shuffle_buffer, "dynamic_masking": config.data.dynamic_masking,
            **({"max_sequences_per_pack": config.data.max_sequences_per_pack,
                "packing_window": config.data.packing_window} if config.data.packing else {})}


def eval_batches(config: ml_collections.ConfigDict) -> Iterator[dict[str, np.ndarray]]:
    """One pass over the held-out shards (phase-1 shapes), the same number of batches on every
    process; padding examples have weight 0 in `example_weights`."""

    return DataIterator(_reader_config(config, config.data.eval_files, False,
                                       config.data.max_seq_length, config.data.max_predictions_per_seq),
                        jax.process_index(), jax.process_count())

