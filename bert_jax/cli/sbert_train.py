"""`bert-jax sbert-train`: train sentence embeddings (Sentence-BERT) on NLI, STS or pairs in a
work directory, resuming from it (`bert_jax.train_sentence_embeddings`)."""

from __future__ import annotations

import argparse
import os
import warnings

OBJECTIVES = ("nli", "sts", "pairs")  # input_pipeline.tasks.sentence_pairs.OBJECTIVES, not imported for --help


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("sbert-train", help="train sentence embeddings on NLI, STS or pairs",
                              description=__doc__)
    p.add_argument("--objective", choices=OBJECTIVES, help="nli: softmax over (u, v, |u-v|); sts: cosine "
                   "regression on score/5; pairs: in-batch negatives ranking (anchor, positive[, negative])")
    p.add_argument("--init-from", help="start from this model: a sentence-transformers or Hugging Face "
                   "directory, a Google checkpoint or a bert-jax work directory (shape, vocab and, for "
                   "sentence-transformers and work directories, pooling come from it)")
    p.add_argument("--train", help="training data: a .tsv/.csv/.jsonl/.json file or tfds:NAME:SPLIT")
    p.add_argument("--eval", help="evaluation data, read like --train, evaluated every train.eval_every "
                   "steps and at the end; the best parameters are kept in WORKDIR/best")
    p.add_argument("--format", help="a known dataset (snli, multi_nli, glue/mnli, kornli, klue/nli, "
                   "glue/stsb, korsts, klue/sts) or a layout (tsv, csv, jsonl, json); default: by extension")
    p.add_argument("--fields", help="field names by role, e.g. premise=s1,hypothesis=s2,label=gold; "
                   "sentence1=,sentence2=,score=; anchor=,positive=,negative= (negative may repeat)")
    p.add_argument("--workdir", required=True, help="checkpoints, config.json, metrics and best/")
    p.add_argument("--config", help="config name in configs/ or path (default: sbert_OBJECTIVE)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a config field, e.g. --set train.global_batch_size=64")
    p.add_argument("--print-config", action="store_true", help="print the effective config as JSON and exit")
    p.add_argument("--distributed", choices=("none", "auto"), default="none",
                   help="auto: one process per host of a TPU pod or SLURM job (as bert-jax pretrain)")
    return p


def run(args: argparse.Namespace) -> None:
    # Imported here, not above, so that `bert-jax --help` loads none of them (JAX and TensorFlow take seconds).
    import json

    from bert_jax.cli.logging_setup import background_errors_to
    from bert_jax.config.files import to_json
    from bert_jax.parallel import distributed
    from bert_jax.tasks.sentence_embeddings.training_config import sentence_training_config

    if not args.objective and not args.config:
        raise ValueError("give --objective (nli, sts or pairs) or a --config with an sbert section.")
    distributed.initialize(args.distributed)
    config = sentence_training_config(args.config, args.set, objective=args.objective, init_from=args.init_from,
                                      train_file=args.train, eval_file=args.eval, format=args.format,
                                      fields=args.fields)
    if args.print_config:
        print(to_json(config))
        return

    from bert_jax.tasks.sentence_embeddings.training import train_sentence_embeddings

    # As in pretrain: a failed save's unawaited orbax coroutines warn at exit, after the message.
    warnings.filterwarnings("ignore", r"coroutine '\w+CheckpointHandler\.\w+' was never awaited", RuntimeWarning)
    with background_errors_to(os.path.join(args.workdir, "errors.log")):
        results = train_sentence_embeddings(config, args.workdir)
    print(json.dumps(results, indent=2))
