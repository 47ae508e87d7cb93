"""`bert-jax vocab`: train a WordPiece vocab.txt (`bert_jax.train_vocab_from_files`) or a
SentencePiece model (`bert_jax.train_sentencepiece_from_files`)."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "vocab", help="train a WordPiece vocab.txt or a SentencePiece model",
        description="Streams the text (files, globs, directories, .gz, .jsonl, "
        "tfds:NAME[:SPLIT]); special tokens come first: [PAD] [UNK] [CLS] [SEP] [MASK]. "
        "Korean must be --cased (lower-casing strips accents through NFD, which "
        "splits every Hangul syllable into jamo); add --initial-alphabet "
        "ksx1001-hangul so that rare syllables are never [UNK].")
    p.add_argument("--input", nargs="+", required=True, help="text inputs, as for create-data")
    p.add_argument("--output", required=True, help="vocab.txt (wordpiece) or NAME.model (unigram/bpe)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace --output if it exists (by default it is refused, before any reading)")
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
    p.add_argument("--strict", action="store_true",
                   help="stop at the first bad input (missing path, binary or empty file, invalid "
                   "UTF-8, bad JSON Lines record, overlong line, ...), naming file and line; by "
                   "default it is skipped and counted in the input report (logged)")
    p.add_argument("--max-line-chars", type=int, default=1_000_000,
                   help="longer lines are skipped (and counted)")
    return p


def run(args: argparse.Namespace) -> None:
    # Imported here, not above, so that `bert-jax --help` loads none of them (numpy and SentencePiece take 0.2 s).
    import json
    import logging

    from input_pipeline.text.report import InputReport
    from input_pipeline.text.sources import expand_inputs, iter_lines
    from input_pipeline.tokenizers.loading import load_tokenizer
    from input_pipeline.vocabulary.sentencepiece import train_sentencepiece_from_files
    from input_pipeline.vocabulary.wordpiece import held_out_statistics, named_initial_alphabet, train_vocab_from_files

    logger = logging.getLogger("bert_jax.cli")
    # Bad input is skipped and counted (or, with --strict, an error), as in create-data.
    report = InputReport(strict=args.strict, max_line_chars=args.max_line_chars)
    if args.tokenizer == "wordpiece":
        tokens = train_vocab_from_files(args.input, args.output, args.vocab_size,
                                        do_lower_case=not args.cased, min_frequency=args.min_frequency,
                                        initial_alphabet=named_initial_alphabet(args.initial_alphabet),
                                        text_field=args.text_field, report=report,
                                        overwrite=args.overwrite)
        report.log(logger)
        print(f"wrote {len(tokens)} tokens to {args.output}")
        if len(tokens) < args.vocab_size:
            logger.warning(
                "the vocab holds %d tokens, not the %d of --vocab-size: this text has no more pairs "
                "of pieces seen at least --min-frequency=%d times. Give more text for a larger "
                "vocab.", len(tokens), args.vocab_size, args.min_frequency)
    else:
        tokenizer = train_sentencepiece_from_files(
            args.input, args.output, args.vocab_size, text_field=args.text_field,
            model_type=args.tokenizer, lowercase=not args.cased,
            character_coverage=args.character_coverage, byte_fallback=args.byte_fallback,
            report=report, overwrite=args.overwrite)
        report.log(logger)
        print(f"wrote a {args.tokenizer} SentencePiece model of {tokenizer.vocab_size} pieces to {args.output}")
    if args.held_out:
        tokenizer = load_tokenizer(args.output, do_lower_case=not args.cased)
        held_out = InputReport(strict=args.strict, max_line_chars=args.max_line_chars)
        lines = (line for source in expand_inputs(args.held_out, held_out)
                 for line in iter_lines(source, text_field=args.text_field, report=held_out))
        print(json.dumps(held_out_statistics(tokenizer, lines), indent=2))
        held_out.log(logger)
