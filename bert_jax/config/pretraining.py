"""The pretraining data of a run, typed: BERT's two phases (short sequences, then long ones from
their own shards), each with its shards and shapes, and the reading, masking and packing settings
they share; read once from the `data` section of a run config.
"""

from __future__ import annotations

import dataclasses

import ml_collections


@dataclasses.dataclass(frozen=True)
class Phase:
    """One phase of pretraining: its shards, their shapes, and the first step that reads them."""
    number: int                   # 1 or 2; the held-out shards are read with phase 1's shapes.
    files: str                    # As configured: a directory, file or glob; several with ",".
    max_seq_length: int
    max_predictions_per_seq: int
    start_step: int
    # Masked-LM predictions in one row: a packed row has room for one more per sequence, the
    # rounding of each sequence's 15%.
    predictions_per_row: int
    config_prefix: str = "data."  # How the config names this phase's fields ("data.phase2_").

    @property
    def file_patterns(self) -> tuple[str, ...]:
        return tuple(p for p in self.files.split(",") if p)

    def __str__(self) -> str:
        return f"phase {self.number} (sequence length {self.max_seq_length})"


@dataclasses.dataclass(frozen=True)
class PretrainingData:
    """The shards a pretraining run reads and how: the training phases, the held-out shards and
    the reader's settings."""
    phases: tuple[Phase, ...]     # In order of their start steps; the first starts at step 0.
    eval_files: str               # "": no evaluation.
    vocab_file: str
    do_lower_case: bool
    vocab_size: int               # The model's: token ids must lie below it.
    global_batch_size: int
    seed: int
    shuffle_buffer: int
    dynamic_masking: bool         # Masked by the reader (shards written unmasked).
    masked_lm_prob: float
    whole_word_masking: bool
    packing: bool
    max_sequences_per_pack: int
    packing_window: int           # Examples packed together (per process).

    @classmethod
    def from_config(cls, config: ml_collections.ConfigDict) -> PretrainingData:
        """From the `data` section of a (validated) run config and the fields of others it needs."""
        data = config.data
        extra = data.max_sequences_per_pack if data.packing else 0
        phases = [Phase(1, data.train_files, data.max_seq_length, data.max_predictions_per_seq, 0,
                        data.max_predictions_per_seq + extra)]
        if data.phase2_train_files:
            phases.append(Phase(2, data.phase2_train_files, data.phase2_max_seq_length,
                                data.phase2_max_predictions_per_seq,
                                round(data.phase2_start_fraction * config.train.num_steps),
                                data.phase2_max_predictions_per_seq + extra, "data.phase2_"))
        return cls(phases=tuple(phases), eval_files=data.eval_files, vocab_file=data.vocab_file,
                   do_lower_case=data.do_lower_case, vocab_size=config.model.vocab_size,
                   global_batch_size=config.train.global_batch_size, seed=config.train.seed,
                   shuffle_buffer=data.shuffle_buffer, dynamic_masking=data.dynamic_masking,
                   masked_lm_prob=data.masked_lm_prob, whole_word_masking=data.whole_word_masking,
                   packing=data.packing, max_sequences_per_pack=data.max_sequences_per_pack,
                   packing_window=data.packing_window)

    def phase_at(self, step: int) -> Phase:
        """The phase whose data the step after `step` trains on."""
        return [phase for phase in self.phases if step >= phase.start_step][-1]

    @property
    def eval_phase(self) -> Phase:
        """The held-out shards, read with phase 1's shapes."""
        return dataclasses.replace(self.phases[0], files=self.eval_files)

    def position(self, phase: Phase) -> dict:
        """What a saved data position means; a checkpoint's position is used only if it matches
        (the same keys and values as every version before, so that their checkpoints resume)."""
        return {"phase": phase.number, "files": phase.files, "max_seq_length": phase.max_seq_length,
                "max_predictions_per_seq": phase.max_predictions_per_seq,
                "global_batch_size": self.global_batch_size, "seed": self.seed,
                "shuffle_buffer": self.shuffle_buffer, "dynamic_masking": self.dynamic_masking,
                **({"max_sequences_per_pack": self.max_sequences_per_pack,
                    "packing_window": self.packing_window} if self.packing else {})}
