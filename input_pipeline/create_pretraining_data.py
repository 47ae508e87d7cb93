"""Raw text in BERT's input format to masked, NSP-paired TFRecord shards.

The input format is the original's: one sentence per line, a blank line between documents.
Randomness is drawn per (seed, dupe pass, document), not from one stream over the whole corpus as
in the original, so a document's instances do not depend on which other documents were read
before it; this is what lets creation be split over workers without changing the output.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
from collections.abc import Iterator, Sequence
from pathlib import Path

from input_pipeline.features import serialize_example
from input_pipeline.instances import PairingConfig, create_sentence_pairs
from input_pipeline.masking import MaskingConfig, mask_tokens
from input_pipeline.tokenization import SPECIAL_TOKENS, BertTokenizer

MANIFEST_NAME = "manifest.json"


@dataclasses.dataclass(frozen=True)
class CreationConfig:
    """The knobs of Google's `create_pretraining_data.py`, with its defaults."""
    max_seq_length: int = 128
    max_predictions_per_seq: int = 20
    masked_lm_prob: float = 0.15
    short_seq_prob: float = 0.1
    dupe_factor: int = 10
    whole_word_masking: bool = False
    do_lower_case: bool = True
    # Longer words become [UNK]: 100 as in `transformers`, 200 in Google's original.
    max_input_chars_per_word: int = 100
    seed: int = 12345
    num_shards: int = 4

    def __post_init__(self):
        if self.max_seq_length < 5:
            raise ValueError(f"max_seq_length={self.max_seq_length} must be at least 5 "
                             "([CLS] A [SEP] B [SEP] with one token in each segment).")
        if not 0 < self.masked_lm_prob < 1:
            raise ValueError(f"masked_lm_prob={self.masked_lm_prob} must be in (0, 1).")
        if not 1 <= self.max_predictions_per_seq <= self.max_seq_length:
            raise ValueError(f"max_predictions_per_seq={self.max_predictions_per_seq} must be in "
                             f"[1, max_seq_length={self.max_seq_length}].")
        if self.dupe_factor < 1 or self.num_shards < 1:
            raise ValueError(f"dupe_factor={self.dupe_factor} and num_shards={self.num_shards} "
                             "must be at least 1.")


@dataclasses.dataclass(frozen=True)
class TrainingInstance:
    input_ids: list[int]
    segment_ids: list[int]
    masked_lm_positions: list[int]
    masked_lm_ids: list[int]
    is_random_next: bool


def read_documents(paths: Sequence[str | os.PathLike], tokenizer: BertTokenizer) -> list[list[list[int]]]:
    """Documents of tokenized sentences from files in BERT's input format.

    Lines that tokenize to nothing are skipped and empty documents dropped, as in the original.
    """
    documents: list[list[list[int]]] = [[]]
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"input file {path} does not exist; pass text files in BERT's "
                                    "format (one sentence per line, blank line between documents).")
        with open(path, "rb") as f:
            for line_number, raw in enumerate(f, start=1):
                try:
                    line = raw.decode("utf-8").strip()
                except UnicodeDecodeError as e:
                    raise ValueError(f"{path}:{line_number}: invalid UTF-8 ({e.reason} at byte "
                                     f"{e.start}); convert the file to UTF-8.") from None
                if not line:
                    documents.append([])
                    continue
                # A "[SEP]" or "[MASK]" quoted in the corpus is text, not a special token.
                ids = tokenizer.encode(line, split_special_tokens=True)
                if ids:
                    documents[-1].append(ids)
        documents.append([])  # A file boundary is a document boundary.
    return [d for d in documents if d]


def create_instances(documents: Sequence[Sequence[Sequence[int]]], masking: MaskingConfig,
                     config: CreationConfig, cls_id: int, sep_id: int) -> Iterator[TrainingInstance]:
    """Every instance of every dupe pass, document by document (not shuffled)."""
    pairing = PairingConfig(config.max_seq_length, config.short_seq_prob)
    for dupe in range(config.dupe_factor):
        for index in range(len(documents)):
            # A string seed is hashed with SHA-512 by `random`, so it is stable across runs,
            # platforms and PYTHONHASHSEED.
            rng = random.Random(f"{config.seed}:{dupe}:{index}")
            for pair in create_sentence_pairs(documents, index, pairing, rng):
                tokens = [cls_id, *pair.tokens_a, sep_id, *pair.tokens_b, sep_id]
                segment_ids = [0] * (len(pair.tokens_a) + 2) + [1] * (len(pair.tokens_b) + 1)
                masked = mask_tokens(tokens, masking, rng)
                yield TrainingInstance(masked.input_ids, segment_ids, masked.masked_lm_positions,
                                       masked.masked_lm_ids, pair.is_random_next)


def shard_paths(output_dir: str | os.PathLike, num_shards: int, prefix: str = "train") -> list[Path]:
    return [Path(output_dir) / f"{prefix}-{i:05d}-of-{num_shards:05d}.tfrecord" for i in range(num_shards)]


def file_sha256(path: str | os.PathLike) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def write_shards(instances: Sequence[TrainingInstance], output_dir: str | os.PathLike,
                 config: CreationConfig, prefix: str = "train") -> list[dict]:
    """Writes instances round-robin into `config.num_shards` TFRecord files, each under a
    temporary name first and renamed only once complete."""
    import tensorflow as tf  # Imported here: reading text and pairing need no TensorFlow.

    paths = shard_paths(output_dir, config.num_shards, prefix)
    tmp_paths = [p.with_name(p.name + f".tmp-{os.getpid()}") for p in paths]
    counts = [0] * len(paths)
    writers = [tf.io.TFRecordWriter(str(p)) for p in tmp_paths]
    try:
        for i, inst in enumerate(instances):
            writers[i % len(writers)].write(serialize_example(
                inst.input_ids, inst.segment_ids, inst.masked_lm_positions, inst.masked_lm_ids,
                int(inst.is_random_next), config.max_seq_length, config.max_predictions_per_seq))
            counts[i % len(writers)] += 1
    except BaseException:
        for writer, tmp in zip(writers, tmp_paths):
            writer.close()
            tmp.unlink(missing_ok=True)
        raise
    for writer, tmp, path in zip(writers, tmp_paths, paths):
        writer.close()
        os.replace(tmp, path)
    return [{"file": p.name, "num_instances": n} for p, n in zip(paths, counts)]


def create_pretraining_data(input_paths: Sequence[str | os.PathLike], vocab_path: str | os.PathLike,
                            output_dir: str | os.PathLike, config: CreationConfig = CreationConfig(),
                            prefix: str = "train") -> dict:
    """Tokenizes the input files, builds NSP pairs and masks over `dupe_factor` passes, shuffles,
    and writes TFRecord shards plus `manifest.json` (counts, lengths, config, vocab hash) into
    `output_dir`. Returns the manifest."""
    tokenizer = BertTokenizer.from_vocab_file(vocab_path, do_lower_case=config.do_lower_case,
                                              max_input_chars_per_word=config.max_input_chars_per_word)
    masking = MaskingConfig.from_vocab(
        tokenizer.vocab, SPECIAL_TOKENS, masked_lm_prob=config.masked_lm_prob,
        max_predictions_per_seq=config.max_predictions_per_seq,
        whole_word_masking=config.whole_word_masking)
    documents = read_documents(input_paths, tokenizer)
    if len(documents) < 2:
        raise ValueError(f"{[str(p) for p in input_paths]} hold {len(documents)} non-empty "
                         "document(s); next-sentence pairs need at least two (separate documents "
                         "with a blank line).")
    instances = list(create_instances(documents, masking, config, tokenizer.cls_id, tokenizer.sep_id))
    random.Random(config.seed).shuffle(instances)

    os.makedirs(output_dir, exist_ok=True)
    shards = write_shards(instances, output_dir, config, prefix)
    num = len(instances)
    manifest = {
        "format": "bert-pretraining-tfrecord",
        "num_instances": num,
        "num_documents": len(documents),
        "shards": shards,
        "max_seq_length": config.max_seq_length,
        "max_predictions_per_seq": config.max_predictions_per_seq,
        "vocab_size": tokenizer.vocab_size,
        "vocab_sha256": file_sha256(vocab_path),
        "config": dataclasses.asdict(config),
        "inputs": [str(p) for p in input_paths],
        "statistics": {
            "random_next_fraction": sum(i.is_random_next for i in instances) / max(num, 1),
            "mean_tokens": sum(len(i.input_ids) for i in instances) / max(num, 1),
            "mean_predictions": sum(len(i.masked_lm_ids) for i in instances) / max(num, 1),
        },
    }
    tmp = Path(output_dir) / f"{MANIFEST_NAME}.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, Path(output_dir) / MANIFEST_NAME)
    return manifest
