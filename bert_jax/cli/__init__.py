"""The `bert-jax` command: one subcommand per stage, each a thin wrapper over a Python function
(in parentheses) that `import bert_jax` gives.

  bert-jax demo          corpus -> vocab -> shards -> pretraining -> export -> fill-mask, on a CPU
  bert-jax vocab         train a WordPiece or SentencePiece vocab (bert_jax.train_vocab_from_files)
  bert-jax create-data   text -> masked, NSP-paired shards    (bert_jax.create_pretraining_data)
  bert-jax pretrain      train from a config in a work dir     (bert_jax.train_and_evaluate)
  bert-jax finetune      fine-tune on a task, best checkpoint  (bert_jax.finetune)
  bert-jax glue          the GLUE tasks of a directory, table  (bert_jax.run_glue)
  bert-jax sbert-train   sentence embeddings on NLI, STS, pairs (bert_jax.train_sentence_embeddings)
  bert-jax export        checkpoint -> Hugging Face directory  (bert_jax.export_to_huggingface)
  bert-jax import        Hugging Face / Google BERT -> work dir (bert_jax.import_to_workdir)
  bert-jax fill-mask     top-k predictions for [MASK]s         (bert_jax.FillMask)
  bert-jax nsp           P(sentence B follows sentence A)      (bert_jax.NextSentencePredictor)
  bert-jax encode        sentence and token vectors            (bert_jax.SentenceEncoder)
  bert-jax predict       a fine-tuned model's predictions for a file (bert_jax.TextClassifier, ...)
  bert-jax export-serving  StableHLO / SavedModel for serving  (bert_jax.export_serving)
  bert-jax plot          a run's curves as a PNG               (bert_jax.plot_metrics)

Heavy libraries are imported inside the subcommands, so `--help` answers at once.
"""

# This docstring is the command's --help. Each subcommand is a module here with `add_parser`
# (its arguments) and `run` (a call of the Python function above); `main` assembles them.

from __future__ import annotations

import argparse

from bert_jax.cli import (
    arguments_help,
    create_data,
    demo,
    encode,
    export,
    export_serving,
    fill_mask,
    finetune,
    glue,
    import_checkpoint,
    nsp,
    plot,
    predict,
    pretrain,
    sbert_train,
    vocab,
)
from bert_jax.cli.exit_status import run_subcommand
from bert_jax.cli.logging_setup import configure_logging

# In the order --help lists them.
SUBCOMMANDS = (demo, vocab, create_data, pretrain, finetune, glue, sbert_train, export, import_checkpoint, fill_mask,
               nsp, encode, predict, export_serving, plot)


def build_parser() -> argparse.ArgumentParser:
    """The `bert-jax` parser: every subcommand's arguments, and its `run` as the `run` default."""
    parser = argparse.ArgumentParser(prog="bert-jax", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for subcommand in SUBCOMMANDS:
        subcommand.add_parser(subparsers).set_defaults(run=subcommand.run)
    arguments_help.show_defaults(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs `bert-jax` with `argv` (default: the command line); returns the exit status."""
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:  # as parse_args, with the --set a config-looking argument meant
        subparser = parser._subparsers._group_actions[0].choices[args.command]
        subparser.error(arguments_help.unrecognized(subparser, extras))
    configure_logging()
    return run_subcommand(args)
