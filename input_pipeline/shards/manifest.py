"""The manifest written beside a set of shards: what they hold and how they were made.

The trainer checks it against its own config before compiling anything (`reader.check_shards_match`),
and the reader takes per-shard example counts from it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping, Sequence

from input_pipeline import remote_files
from input_pipeline.shards.tfrecord import write_atomically

MANIFEST_NAME = "manifest.json"


def shard_name(prefix: str, shard: int, num_shards: int) -> str:
    return f"{prefix}-{shard:05d}-of-{num_shards:05d}.tfrecord"


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with remote_files.open_file(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def build_manifest(config, vocab_path: str | os.PathLike, vocab_size: int, sources: Sequence[str],
                   shard_counts: Sequence[int], stats: Mapping[str, int], prefix: str) -> dict:
    """The manifest of shards written with `config` (a `CreationConfig`); `stats` are the summed
    block counts (instances, documents, tokens, predictions, ...)."""
    num = stats["instances"]
    return {
        "format": "bert-pretraining-tfrecord",
        "masking": config.masking,
        "num_instances": num,
        "num_documents": stats["documents"],
        "num_sentences": stats["sentences"],
        "num_blocks": stats["blocks"],
        # Longer than half a block: cut into pieces, paired as documents of their own.
        "num_cut_documents": stats["cut_documents"],
        # The only document with tokens in their block: no random next segment, so no pairs.
        "num_unpaired_documents": stats["unpaired_documents"],
        "input_characters": stats["characters"],
        "shards": [{"file": shard_name(prefix, s, len(shard_counts)), "num_instances": n}
                   for s, n in enumerate(shard_counts)],
        "max_seq_length": config.max_seq_length,
        "max_predictions_per_seq": config.max_predictions_per_seq,
        "vocab_size": vocab_size,
        "vocab_file": os.path.basename(vocab_path),
        "vocab_sha256": file_sha256(vocab_path),
        "config": dataclasses.asdict(config),
        "inputs": list(sources),
        "statistics": {
            "random_next_fraction": stats["random_next"] / max(num, 1),
            "mean_tokens": stats["tokens"] / max(num, 1),
            "mean_predictions": stats["predictions"] / max(num, 1),
            "mean_sentence_tokens": stats["sentence_tokens"] / max(stats["sentences"], 1),
            "unk_fraction": stats["unk_tokens"] / max(stats["sentence_tokens"], 1),
        },
    }


def write_manifest(output_dir: str | os.PathLike, manifest: dict) -> None:
    write_atomically(os.path.join(output_dir, MANIFEST_NAME), [(json.dumps(manifest, indent=2) + "\n").encode()])


def read_manifest(shard_dir: str | os.PathLike) -> dict | None:
    """The manifest written beside the shards by `create-data`, if there is one."""
    path = os.path.join(shard_dir, MANIFEST_NAME)
    if not remote_files.exists(path):
        return None
    with remote_files.open_file(path) as f:
        return json.load(f)
