"""`bert-jax nsp`: P(sentence B follows sentence A) from the next-sentence head
(`bert_jax.NextSentencePredictor`)."""

from __future__ import annotations

import argparse

from bert_jax.cli.model_arguments import add_model_arguments


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "nsp", help="P(sentence B follows sentence A), from the NSP head",
        description="The probability that sentence B is the sentence after A "
        "(the pretraining next-sentence head; index 0 of its logits is 'is next').")
    add_model_arguments(p)
    p.add_argument("--pair", nargs=2, action="append", default=[], metavar=("A", "B"),
                   help="a sentence pair (repeatable)")
    p.add_argument("--file", help="pairs from a TSV file: 'sentence A<TAB>sentence B' per line")
    p.add_argument("--format", choices=("jsonl", "table"), default="jsonl",
                   help="jsonl: {sentence_a, sentence_b, is_next} per line; table: aligned columns")
    p.add_argument("--truncate", action="store_true",
                   help="cut pairs longer than the model takes (longest sentence first) "
                   "instead of stopping with an error")
    return p


def run(args: argparse.Namespace) -> None:
    # Imported here, not above, so that `bert-jax --help` loads none of them (JAX and Flax take seconds).
    from bert_jax.inference.next_sentence import NextSentencePredictor, format_results, read_pairs

    pairs = [tuple(pair) for pair in args.pair] + (read_pairs(args.file) if args.file else [])
    if not pairs:
        raise ValueError("no sentence pairs: pass --pair A B (repeatable) or --file pairs.tsv.")
    predictor = NextSentencePredictor.load(args.model, args.step, args.dtype, max_batch_size=args.batch_size)
    print(format_results(pairs, predictor(pairs, truncate=args.truncate), args.format))
