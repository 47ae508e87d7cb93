"""`bert-jax create-data`: text to masked, NSP-paired TFRecord shards
(`bert_jax.create_pretraining_data`, or an Apache Beam pipeline)."""

from __future__ import annotations

import argparse
import os


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "create-data", help="make masked, NSP-paired TFRecord shards from text",
        description="Text files (plain or .gz), globs, directories, JSONL or TFDS "
        "datasets to TFRecord shards with Google's features, in parallel and in "
        "bounded memory. A blank line separates documents.")
    p.add_argument("--input", nargs="+", required=True,
                   help="files, globs or directories (.txt, .gz, .jsonl) or tfds:NAME[:SPLIT]")
    p.add_argument("--format", choices=("lines", "paragraphs"), default="lines",
                   help="lines: one sentence per line (the original); paragraphs: one paragraph "
                   "per line, split into sentences (English and Korean)")
    p.add_argument("--text-field", default="text", help="the text field of JSONL records / TFDS examples")
    p.add_argument("--vocab", required=True, help="WordPiece vocab.txt or SentencePiece .model")
    p.add_argument("--output-dir", required=True,
                   help="a new or empty directory (or an earlier run's output, with --overwrite)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier create-data run's output in --output-dir (only the "
                   "files its manifest.json lists, once the new set is complete)")
    p.add_argument("--max-seq-length", type=int, default=128)
    p.add_argument("--max-predictions-per-seq", type=int, default=20)
    p.add_argument("--masked-lm-prob", type=float, default=0.15)
    p.add_argument("--short-seq-prob", type=float, default=0.1)
    p.add_argument("--dupe-factor", type=int, default=10, help="passes over the corpus")
    p.add_argument("--masking", choices=("static", "dynamic"), default="static",
                   help="static: masked here, once per pass; dynamic: stored unmasked and masked "
                   "afresh every epoch by the trainer (set data.dynamic_masking=True)")
    p.add_argument("--whole-word-masking", action="store_true")
    p.add_argument("--cased", action="store_true", help="the vocab is cased")
    p.add_argument("--max-input-chars-per-word", type=int, default=100,
                   help="longer words become [UNK] (100 as transformers, 200 as Google's original)")
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument("--num-shards", type=int, default=4)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="worker processes")
    p.add_argument("--block-mb", type=float, default=1.0,
                   help="text per block: a worker's memory and the pool random next segments "
                   "are drawn from")
    p.add_argument("--strict", action="store_true",
                   help="stop at the first bad input (missing path, binary or empty file, invalid "
                   "UTF-8, overlong line, control characters, empty or one-sentence document), "
                   "naming file and line; by default it is skipped and counted in "
                   "OUTPUT_DIR/input_report.json")
    p.add_argument("--max-line-chars", type=int, default=1_000_000,
                   help="longer lines are skipped (and counted): never sentences, and a memory hazard")
    p.add_argument("--runner", choices=("local", "beam"), default="local",
                   help="beam: run as an Apache Beam pipeline (pip install 'bert-jax[beam]')")
    p.add_argument("--beam-args", nargs=argparse.REMAINDER, default=[],
                   help="the rest of the line goes to Beam, e.g. --runner=DataflowRunner ...")
    return p


def run(args: argparse.Namespace) -> None:
    # Imported here, not above, so that `bert-jax --help` loads none of them (numpy and SentencePiece take 0.2 s).
    import json

    from input_pipeline.creation.create_pretraining_data import CreationConfig, create_pretraining_data

    config = CreationConfig(
        max_seq_length=args.max_seq_length, max_predictions_per_seq=args.max_predictions_per_seq,
        masked_lm_prob=args.masked_lm_prob, short_seq_prob=args.short_seq_prob,
        dupe_factor=args.dupe_factor, whole_word_masking=args.whole_word_masking,
        do_lower_case=not args.cased, max_input_chars_per_word=args.max_input_chars_per_word,
        seed=args.seed, num_shards=args.num_shards, text_format=args.format,
        text_field=args.text_field, block_chars=int(args.block_mb * 1_000_000), masking=args.masking,
        max_line_chars=args.max_line_chars, strict=args.strict)
    if args.runner == "beam":
        # Apache Beam is an optional dependency, loaded only for --runner beam.
        from input_pipeline.creation.beam_pipeline import run_beam_pipeline
        manifest = run_beam_pipeline(args.input, args.vocab, args.output_dir, config,
                                     pipeline_args=args.beam_args, overwrite=args.overwrite)
    else:
        manifest = create_pretraining_data(args.input, args.vocab, args.output_dir, config,
                                           num_workers=args.workers, overwrite=args.overwrite)
    print(f"wrote {manifest['num_instances']} instances from {manifest['num_documents']} documents "
          f"into {len(manifest['shards'])} shards in {args.output_dir}")
    print(json.dumps(manifest["statistics"], indent=2))
