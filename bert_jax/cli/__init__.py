"""The `bert-jax` command: one subcommand per stage, each a thin wrapper over a Python function.

  bert-jax demo          corpus -> vocab -> shards -> pretraining -> export -> fill-mask, on a CPU
  bert-jax vocab         train a WordPiece or SentencePiece vocab (input_pipeline.vocabulary)
  bert-jax create-data   text -> masked, NSP-paired shards    (input_pipeline.creation.create_pretraining_data)
  bert-jax pretrain      train from a config in a work dir     (bert_jax.train)
  bert-jax export        checkpoint -> Hugging Face directory  (bert_jax.convert.hf_export)
  bert-jax import        Hugging Face / Google BERT -> work dir (bert_jax.checkpoint_import)
  bert-jax fill-mask     top-k predictions for [MASK]s         (bert_jax.inference.fill_mask)
  bert-jax nsp           P(sentence B follows sentence A)      (bert_jax.inference.next_sentence)
  bert-jax encode        sentence and token vectors            (bert_jax.inference.encode)
  bert-jax export-serving  StableHLO / SavedModel for serving  (bert_jax.inference.serving_export)

Heavy libraries are imported inside the subcommands, so `--help` answers at once.
"""

# This docstring is the command's --help. Each subcommand is a module here with `add_parser`
# (its arguments) and `run` (a call of the Python function above); `main` assembles them.

from __future__ import annotations

import argparse

from bert_jax.cli import (
    create_data,
    demo,
    encode,
    export,
    export_serving,
    fill_mask,
    import_checkpoint,
    nsp,
    pretrain,
    vocab,
)
from bert_jax.cli.exit_status import run_subcommand
from bert_jax.cli.logging_setup import configure_logging

# In the order --help lists them.
SUBCOMMANDS = (demo, vocab, create_data, pretrain, export, import_checkpoint, fill_mask, nsp, encode,
               export_serving)


def build_parser() -> argparse.ArgumentParser:
    """The `bert-jax` parser: every subcommand's arguments, and its `run` as the `run` default."""
    parser = argparse.ArgumentParser(prog="bert-jax", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for subcommand in SUBCOMMANDS:
        subcommand.add_parser(subparsers).set_defaults(run=subcommand.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs `bert-jax` with `argv` (default: the command line); returns the exit status."""
    args = build_parser().parse_args(argv)
    configure_logging()
    return run_subcommand(args)
