"""Pretraining's data, by phase (`config.pretraining.PretrainingData`): the shards' manifests
checked against the config, the reader (and packing) behind each phase, and the data position a
checkpoint records so that a resumed run reads what an uninterrupted one would.
"""

from __future__ import annotations

from collections.abc import Iterator

import jax
import numpy as np

from bert_jax.config.pretraining import Phase, PretrainingData
from input_pipeline.instances.masking import MaskingConfig
from input_pipeline.reading.packing import PackedBatches, PackingConfig
from input_pipeline.reading.reader import DataIterator, ReaderConfig, check_shards_match
from input_pipeline.tokenizers.loading import load_tokenizer


class PhasedShards:
    """The training data of pretraining: each phase's shards, from the phase's first step
    (`training.objective.TrainData`)."""

    def __init__(self, data: PretrainingData):
        self.data = data

    def stage_at(self, step: int) -> Phase:
        return self.data.phase_at(step)

    def batches(self, phase: Phase) -> DataIterator | PackedBatches:
        """This process's part of every global batch of `phase`, from the start of its stream
        (`restore` moves it to a checkpoint's position); packed rows with `data.packing`."""
        data = self.data
        per_process = data.global_batch_size // jax.process_count()
        if not data.packing:
            return DataIterator(_reader_config(data, phase, True, per_process),
                                jax.process_index(), jax.process_count())
        windows = DataIterator(_reader_config(data, phase, True, data.packing_window),
                               jax.process_index(), jax.process_count())
        packing = PackingConfig(data.max_sequences_per_pack, phase.predictions_per_row)
        return PackedBatches(windows, per_process, phase.max_seq_length, packing, seed=data.seed)

    def position(self, phase: Phase) -> dict:
        return self.data.position(phase)


def check_shards(data: PretrainingData) -> None:
    """Refuses shards (of either phase, or held out) whose manifest disagrees with the config,
    before anything is compiled (`reading.reader.check_shards_match`)."""
    for phase in (*data.phases, data.eval_phase):
        check_shards_match(list(phase.file_patterns), max_seq_length=phase.max_seq_length,
                           max_predictions_per_seq=phase.max_predictions_per_seq,
                           vocab_size=data.vocab_size, vocab_file=data.vocab_file,
                           dynamic_masking=data.dynamic_masking, do_lower_case=data.do_lower_case,
                           config_prefix=phase.config_prefix)


def eval_batches(data: PretrainingData) -> Iterator[dict[str, np.ndarray]]:
    """One pass over the held-out shards (phase-1 shapes), the same number of batches on every
    process; padding examples have weight 0 in `example_weights`."""
    return DataIterator(_reader_config(data, data.eval_phase, False, data.global_batch_size // jax.process_count()),
                        jax.process_index(), jax.process_count())


def _reader_config(data: PretrainingData, phase: Phase, repeat: bool, batch_size: int) -> ReaderConfig:
    """The reader of `phase`'s shards, `batch_size` examples a batch (this process's); masking
    them itself for shards written unmasked (`dynamic_masking`)."""
    masking = None
    if data.dynamic_masking:
        masking = MaskingConfig.from_tokenizer(
            load_tokenizer(data.vocab_file, do_lower_case=data.do_lower_case),
            masked_lm_prob=data.masked_lm_prob, max_predictions_per_seq=phase.max_predictions_per_seq,
            whole_word_masking=data.whole_word_masking)
    return ReaderConfig(
        file_patterns=phase.file_patterns, batch_size=batch_size, max_seq_length=phase.max_seq_length,
        max_predictions_per_seq=phase.max_predictions_per_seq, seed=data.seed,
        shuffle_buffer=data.shuffle_buffer, repeat=repeat, dynamic_masking=masking,
        vocab_size=data.vocab_size)
