"""The `bert-jax` command: one subcommand per stage, each a thin wrapper over a Python function.

  bert-jax demo          corpus -> vocab -> shards -> pretraining -> export -> fill-mask, on a CPU
  bert-jax vocab         train a WordPiece or SentencePiece vocab (input_pipeline.vocabulary)
  bert-jax create-data   text -> masked, NSP-paired shards    (input_pipeline.create_pretraining_data)
  bert-jax pretrain      train from a config in a work dir     (bert_jax.train)
  bert-jax export        checkpoint -> Hugging Face directory  (bert_jax.hf_export)
  bert-jax fill-mask     top-k predictions for [MASK]s         (bert_jax.fill_mask)

Heavy libraries are imported inside the subcommands, so `--help` answers at once.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from bert_jax.errors import RunStopped


def _configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    # Orbax and JAX log every checkpoint detail and backend probe at INFO through absl.
    for name in ("absl", "jax._src.xla_bridge", "orbax"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _demo(args: argparse.Namespace) -> None:
    from bert_jax.demo import DemoOptions, run_demo

    overrides = list(args.set)
    if args.steps is not None:
        overrides.append(f"train.num_steps={args.steps}")
    run_demo(DemoOptions(workdir=args.workdir, vocab_file=args.vocab, vocab_size=args.vocab_size,
                         dupe_factor=args.dupe_factor, config=args.config, overrides=tuple(overrides)))


def _vocab(args: argparse.Namespace) -> None:
    from input_pipeline.text_sources import expand_inputs, iter_lines
    from input_pipeline.tokenization import load_tokenizer
    from input_pipeline.vocabulary import held_out_statistics, named_initial_alphabet, train_vocab_from_files

    if args.tokenizer == "wordpiece":
        tokens = train_vocab_from_files(args.input, args.output, args.vocab_size,
                                        do_lower_case=not args.cased, min_frequency=args.min_frequency,
                                        initial_alphabet=named_initial_alphabet(args.initial_alphabet),
                                        text_field=args.text_field)
        print(f"wrote {len(tokens)} tokens to {args.output}")
    else:
        from input_pipeline.sentencepiece_tokenizer import train_sentencepiece_from_files

        tokenizer = train_sentencepiece_from_files(
            args.input, args.output, args.vocab_size, text_field=args.text_field,
            model_type=args.tokenizer, lowercase=not args.cased,
            character_coverage=args.character_coverage, byte_fallback=args.byte_fallback)
        print(f"wrote a {args.tokenizer} SentencePiece model of {tokenizer.vocab_size} pieces to {args.output}")
    if args.held_out:
        tokenizer = load_tokenizer(args.output, do_lower_case=not args.cased)
        lines = (line for source in expand_inputs(args.held_out)
                 for line in iter_lines(source, text_field=args.text_field))
        print(json.dumps(held_out_statistics(tokenizer, lines), indent=2))


def _create_data(args: argparse.Namespace) -> None:
    from input_pipeline.create_pretraining_data import CreationConfig, create_pretraining_data

    config = CreationConfig(
        max_seq_length=args.max_seq_length, max_predictions_per_seq=args.max_predictions_per_seq,
        masked_lm_prob=args.masked_lm_prob, short_seq_prob=args.short_seq_prob,
        dupe_factor=args.dupe_factor, whole_word_masking=args.whole_word_masking,
        do_lower_case=not args.cased, max_input_chars_per_word=args.max_input_chars_per_word,
        seed=args.seed, num_shards=args.num_shards, text_format=args.format,
        text_field=args.text_field, block_chars=int(args.block_mb * 1_000_000), masking=args.masking,
        max_line_chars=args.max_line_chars, strict=args.strict)
    if args.runner == "beam":
        from input_pipeline.beam_pipeline import run_beam_pipeline
        manifest = run_beam_pipeline(args.input, args.vocab, args.output_dir, config,
                                     pipeline_args=args.beam_args)
    else:
        manifest = create_pretraining_data(args.input, args.vocab, args.output_dir, config,
                                           num_workers=args.workers)
    print(f"wrote {manifest['num_instances']} instances from {manifest['num_documents']} documents "
          f"into {len(manifest['shards'])} shards in {args.output_dir}")
    print(json.dumps(manifest["statistics"], indent=2))


def _pretrain(args: argparse.Namespace) -> None:
    from bert_jax import distributed
    from bert_jax.experiment_config import load_config
    from bert_jax.train import train_and_evaluate

    distributed.initialize(args.distributed, args.coordinator_address, args.num_processes,
                           args.process_id, heartbeat_timeout=args.heartbeat_timeout)

    results = train_and_evaluate(load_config(args.config, args.set), args.workdir)
    print(json.dumps(results, indent=2))


def _export(args: argparse.Namespace) -> None:
    from bert_jax.experiment_config import bert_config
    from bert_jax.hf_export import export_to_huggingface
    from bert_jax.train import load_trained_params

    params, config, step = load_trained_params(args.workdir, args.step)
    out = export_to_huggingface(params, bert_config(config), args.vocab or config.data.vocab_file,
                                config.data.do_lower_case, args.output)
    print(f"exported step {step} of {args.workdir} to {out}")


def _fill_mask(args: argparse.Namespace) -> None:
    from bert_jax.fill_mask import FillMask, format_predictions

    fill_mask = FillMask.from_workdir(args.workdir, args.step)
    for text, per_mask in zip(args.text, fill_mask(args.text, top_k=args.top_k)):
        print(format_predictions(text, per_mask))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bert-jax", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="run every stage end to end on this machine's CPU",
                       description="Builds a corpus from the Python standard library's docstrings, "
                       "trains a vocab, makes shards, pretrains a tiny BERT, exports it to the "
                       "Hugging Face format and shows fill-mask predictions. Run it again to resume.")
    p.add_argument("--workdir", default="workdir/demo", help="where everything is written")
    p.add_argument("--vocab", help="use this vocab.txt instead of training one")
    p.add_argument("--vocab-size", type=int, default=8000, help="size of the trained vocab")
    p.add_argument("--dupe-factor", type=int, default=5, help="masking passes over the corpus")
    p.add_argument("--steps", type=int, help="training steps (default: the config's)")
    p.add_argument("--config", default="cpu_demo", help="config name in configs/ or path")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a config field, e.g. --set train.global_batch_size=16")
    p.set_defaults(run=_demo)

    p = sub.add_parser("vocab", help="train a WordPiece vocab.txt or a SentencePiece model",
                       description="Streams the text (files, globs, directories, .gz, .jsonl, "
                       "tfds:NAME[:SPLIT]); special tokens come first: [PAD] [UNK] [CLS] [SEP] [MASK]. "
                       "Korean must be --cased (lower-casing strips accents through NFD, which "
                       "splits every Hangul syllable into jamo); add --initial-alphabet "
                       "ksx1001-hangul so that rare syllables are never [UNK].")
    p.add_argument("--input", nargs="+", required=True, help="text inputs, as for create-data")
    p.add_argument("--output", required=True, help="vocab.txt (wordpiece) or NAME.model (unigram/bpe)")
    p.add_argument("--tokenizer", choices=("wordpiece", "unigram", "bpe"), default="wordpiece")
    p.add_argument("--vocab-size", type=int, default=30522)
    p.add_argument("--min-frequency", type=int, default=2, help="minimum count of a merged pair")
    p.add_argument("--cased", action="store_true", help="keep case and accents (required for Korean)")
    p.add_argument("--initial-alphabet", default="",
                   help="characters always in the vocab, e.g. ksx1001-hangul,ascii (wordpiece)")
    p.add_argument("--character-coverage", type=float, default=0.9995, help="(unigram/bpe)")
    p.add_argument("--byte-fallback", action="store_true", help="unknown characters as bytes (unigram/bpe)")
    p.add_argument("--text-field", default="text", help="the text field of JSONL records / TFDS examples")
    p.add_argument("--held-out", nargs="+", help="text to report [UNK] rate and tokens per word on")
    p.set_defaults(run=_vocab)

    p = sub.add_parser("create-data", help="make masked, NSP-paired TFRecord shards from text",
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
    p.add_argument("--output-dir", required=True)
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
    p.set_defaults(run=_create_data)

    p = sub.add_parser("pretrain", help="pretrain from a config, resuming from the work dir")
    p.add_argument("--config", required=True, help="config name in configs/ (e.g. bert_base) or path")
    p.add_argument("--workdir", required=True, help="checkpoints, config.json and TensorBoard logs")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a config field, e.g. --set data.train_files=shards/")
    p.add_argument("--distributed", choices=("none", "auto", "explicit"), default="none",
                   help="multi-process run: auto detects a TPU pod or SLURM job; explicit takes "
                   "the three flags below (or BERT_JAX_* variables)")
    p.add_argument("--coordinator-address", help="host:port of process 0 (explicit)")
    p.add_argument("--num-processes", type=int, help="number of processes (explicit)")
    p.add_argument("--process-id", type=int, help="this process's index (explicit)")
    p.add_argument("--heartbeat-timeout", type=int, default=100,
                   help="seconds without a heartbeat after which a process counts as dead and the "
                        "others stop with an error, instead of waiting for it forever")
    p.set_defaults(run=_pretrain)

    p = sub.add_parser("export", help="export a checkpoint to the Hugging Face BERT format")
    p.add_argument("--workdir", required=True, help="work directory of a pretraining run")
    p.add_argument("--output", required=True, help="directory to write")
    p.add_argument("--step", type=int, help="checkpoint step (default: latest)")
    p.add_argument("--vocab", help="vocab.txt (default: the run's data.vocab_file)")
    p.set_defaults(run=_export)

    p = sub.add_parser("fill-mask", help="predict the tokens behind [MASK]")
    p.add_argument("text", nargs="+", help="texts containing [MASK]")
    p.add_argument("--workdir", required=True, help="work directory of a pretraining run")
    p.add_argument("--step", type=int, help="checkpoint step (default: latest)")
    p.add_argument("--top-k", type=int, default=5)
    p.set_defaults(run=_fill_mask)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging()
    try:
        args.run(args)
    except (ValueError, OSError) as e:
        # Configuration, input and disk errors (a missing file, a full disk) are the user's to
        # fix: a message, not a stack trace.
        if os.environ.get("BERT_JAX_TRACEBACK"):
            raise
        print(f"bert-jax {args.command}: error: {e}", file=sys.stderr)
        return 2
    except RunStopped as e:
        # The run stopped on purpose, with its last good checkpoint in place.
        if os.environ.get("BERT_JAX_TRACEBACK"):
            raise
        print(f"bert-jax {args.command}: stopped: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
