"""`bert-jax glue`: fine-tune on every GLUE task of a directory with BERT's recipe and print the
table papers print, each task's dev metrics and the GLUE average (`bert_jax.run_glue`)."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("glue", help="fine-tune on the GLUE tasks of a directory and print "
                              "the GLUE table")
    p.add_argument("--data-dir", required=True, help="GLUE as its download script lays it out: "
                   "CoLA/, SST-2/, MRPC/, STS-B/, QQP/, MNLI/, QNLI/, RTE/, WNLI/ with train.tsv "
                   "and dev.tsv (MNLI: dev_matched.tsv, dev_mismatched.tsv)")
    p.add_argument("--init-from", required=True, metavar="MODEL",
                   help="the pretrained model: a bert-jax work directory, a Hugging Face BERT "
                   "directory or a Google checkpoint")
    p.add_argument("--workdir", required=True, help="one work directory per task inside it, and "
                   "glue_results.json")
    p.add_argument("--tasks", nargs="+", metavar="TASK",
                   help="only these tasks (e.g. RTE MRPC STS-B; default: every one found)")
    p.add_argument("--config", default="finetune_glue", help="fine-tuning config (default: "
                   "finetune_glue, BERT's recipe)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a config field for every task, e.g. --set optimizer.learning_rate=3e-5")
    p.add_argument("--seeds", type=int, default=1, metavar="N",
                   help="N seeds per task; the table shows their medians")
    return p


def run(args: argparse.Namespace) -> None:
    # Imported here, not above, so that `bert-jax --help` loads none of them (JAX and TensorFlow take seconds).
    from bert_jax.cli.logging_setup import background_errors_to
    from bert_jax.cli.pretrain import details_file
    from bert_jax.config.files import apply_overrides, load_config
    from bert_jax.tasks.glue import run_glue

    config = load_config(args.config)
    if "task" not in config:
        raise ValueError(f"--config {args.config} is not a fine-tuning config (it has no task section).")
    config.train.init_from = args.init_from
    apply_overrides(config, args.set)
    with background_errors_to(details_file(args.workdir)):
        run_glue(config, args.data_dir, args.workdir, args.tasks, seeds=args.seeds)
