"""`bert-jax finetune`: fine-tune a pretrained BERT on a task's files, evaluating every epoch and
keeping the best checkpoint, over one seed or several (`bert_jax.finetune`)."""

from __future__ import annotations

import argparse

TASKS = ("classification", "regression", "tagging", "qa")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("finetune", help="fine-tune on a classification, regression, tagging "
                              "or QA task, keeping the best checkpoint")
    p.add_argument("--task", required=True, choices=TASKS,
                   help="classification (single texts or pairs), regression (a score per pair, "
                   "STS-B), tagging (a tag per word, NER) or qa (extractive, SQuAD)")
    p.add_argument("--init-from", required=True, metavar="SRC",
                   help="the pretrained model: a bert-jax work directory, a Hugging Face BERT "
                   "directory or a Google checkpoint; its shape and tokenizer are used")
    p.add_argument("--train", required=True, metavar="FILE", help="training set (or tfds:NAME:SPLIT)")
    p.add_argument("--eval", metavar="FILE", help="evaluation set, scored every epoch")
    p.add_argument("--format", help="glue/mrpc, klue/nli, conll2003, ... or tsv, csv, jsonl, json, "
                   "conll (default: by the file's extension; QA reads SQuAD's JSON)")
    p.add_argument("--text-fields", metavar="A[,B]", help="the field(s) holding the text (a pair: two)")
    p.add_argument("--label-field", metavar="NAME", help="the field holding the label (with --text-fields)")
    p.add_argument("--labels", metavar="FILE", help="the label list (labels.json, or one label per "
                   "line; default: read from the training set)")
    p.add_argument("--workdir", required=True, help="checkpoints, the best parameters, labels.json, "
                   "results.json; a finished run there is not trained again")
    p.add_argument("--config", default="finetune_glue",
                   help="config name in configs/ or path (default: finetune_glue, BERT's recipe)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a config field, e.g. --set optimizer.learning_rate=3e-5")
    p.add_argument("--seeds", type=int, default=1, metavar="N",
                   help="train N seeds (train.seed, +1, ...) in WORKDIR/seed-K and report the "
                   "median, min and max of their best evaluations")
    return p


def config_from_args(args: argparse.Namespace):
    """The config of `args`: the file, the flags, then the --set overrides."""
    # Imported here, not above, so that `bert-jax --help` loads none of them.
    from bert_jax.config.files import apply_overrides, load_config

    config = load_config(args.config)
    if "task" not in config:
        raise ValueError(f"--config {args.config} is not a fine-tuning config (it has no task "
                         f"section); use finetune_glue, finetune_klue, finetune_large or a copy.")
    flags = {"task.type": args.task, "train.init_from": args.init_from, "data.train_file": args.train,
             "data.eval_file": args.eval, "task.format": args.format, "task.text_fields": args.text_fields,
             "task.label_field": args.label_field, "task.labels_file": args.labels}
    for key, value in flags.items():
        if value is not None:  # strings, set as they are (a file name is not a Python literal)
            section, field = key.split(".")
            config[section][field] = value
    apply_overrides(config, args.set)
    return config


def run(args: argparse.Namespace) -> None:
    # Imported here, not above, so that `bert-jax --help` loads none of them (JAX and TensorFlow take seconds).
    from bert_jax.cli.logging_setup import background_errors_to
    from bert_jax.cli.pretrain import details_file
    from bert_jax.tasks.finetuning import finetune

    config = config_from_args(args)
    with background_errors_to(details_file(args.workdir)):
        finetune(config, args.workdir, seeds=args.seeds)
