"""How much sequence packing saves on real shards: rows, padding and packing speed. Prints a table.

  python benchmarks/packing.py /tmp/shards_128 /tmp/shards_512 --max-sequences 2 3 4 8

For each shard directory (made by `bert-jax create-data`) it reads up to `--examples` examples in
the reader's order, packs them a window at a time (`input_pipeline.reading.packing`, first-fit
decreasing) with room for K sequences per row and max_predictions_per_seq + K predictions, and
reports the rows per 1,000 examples, the share of row positions that are padding before and after,
and the host time packing takes per example. Rows are what a train step pays for, so
1000 / (rows per 1,000 examples) is the factor by which packing multiplies the sequences a step
of the same shape trains on.

`--save-batch ROWS --out-dir DIR` also writes, per shard directory, one batch of ROWS rows packed
with the last K as the trainer serves them, and one of ROWS unpacked examples, as
DIR/<shards>-packed-<K>-<ROWS>.npz and DIR/<shards>-unpacked-<ROWS>.npz, for
`benchmarks/train_step.py --batch-file` on a machine without TensorFlow.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shards", nargs="+", help="shard directories")
    parser.add_argument("--max-sequences", type=int, nargs="+", default=[2, 3, 4, 8])
    parser.add_argument("--window", type=int, default=2048)
    parser.add_argument("--examples", type=int, default=32768)
    parser.add_argument("--save-batch", type=int, default=0, metavar="ROWS")
    parser.add_argument("--out-dir", default=".")
    args = parser.parse_args()

    from input_pipeline.reading.packing import PackedBatches, PackingConfig, pack_examples
    from input_pipeline.reading.reader import ReaderConfig, numpy_batches

    print(f"window {args.window} examples; {os.cpu_count()} cores")
    print("| shards | seq | examples | mean tokens | padding unpacked | K | rows per 1,000 | "
          "sequences per row | padding packed | packing us/example |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for directory in args.shards:
        with open(os.path.join(directory, "manifest.json"), encoding="utf-8") as f:
            manifest = json.load(f)
        seq, preds = manifest["max_seq_length"], manifest["max_predictions_per_seq"]
        reader = numpy_batches(ReaderConfig((directory,), args.window, seq, preds, repeat=False))
        windows = []
        for batch in reader:
            real = batch.pop("example_weights") > 0
            windows.append({k: v[real] for k, v in batch.items()})
            if sum(len(w["input_ids"]) for w in windows) >= args.examples:
                break
        n = sum(len(w["input_ids"]) for w in windows)
        tokens = sum(int(np.count_nonzero(w["input_mask"])) for w in windows)
        for k in args.max_sequences:
            config = PackingConfig(k, preds + k)
            start = time.perf_counter()
            rows = sum(len(pack_examples(w, seq, config)["input_ids"]) for w in windows)
            seconds = time.perf_counter() - start
            print(f"| {os.path.basename(os.path.normpath(directory))} | {seq} | {n:,} | {tokens / n:.1f} | "
                  f"{1 - tokens / (n * seq):.1%} | {k} | {1000 * rows / n:.0f} | {n / rows:.2f} | "
                  f"{1 - tokens / (rows * seq):.1%} | {1e6 * seconds / n:.1f} |")
        if args.save_batch:
            name = os.path.basename(os.path.normpath(directory))
            packed = next(PackedBatches(iter(windows), args.save_batch, seq, config))
            np.savez(os.path.join(args.out_dir, f"{name}-packed-{k}-{args.save_batch}.npz"), **packed)
            plain = {key: value[:args.save_batch] for key, value in windows[0].items()}
            np.savez(os.path.join(args.out_dir, f"{name}-unpacked-{args.save_batch}.npz"), **plain)


if __name__ == "__main__":
    main()
