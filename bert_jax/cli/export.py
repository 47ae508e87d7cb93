"""`bert-jax export`: a work directory's checkpoint to a Hugging Face BERT directory
(`bert_jax.export_to_huggingface`)."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("export", help="export a checkpoint to the Hugging Face BERT format")
    p.add_argument("--workdir", required=True,
                   help="work directory of a pretraining run, or of a fine-tuning run (exported as "
                   "BertForSequenceClassification, BertForTokenClassification or "
                   "BertForQuestionAnswering with the run's labels.json)")
    p.add_argument("--output", required=True,
                   help="a new or empty directory, or an earlier export's (with --overwrite); a "
                   "directory holding files bert-jax did not write is refused")
    p.add_argument("--step", type=int, help="checkpoint step (default: latest)")
    p.add_argument("--vocab", help="vocab.txt (default: the run's data.vocab_file)")
    p.add_argument("--sentence-transformers", action="store_true",
                   help="write a sentence-transformers model (a BertModel and the run config's "
                   "sentence pooling, normalization and prompts)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier export in --output: only the files it wrote (listed in "
                   "its .bert-jax-export.json); anything added there since is left as it is")
    return p


def run(args: argparse.Namespace) -> None:
    # Imported here, not above, so that `bert-jax --help` loads none of them (JAX and Flax take seconds).
    from bert_jax.config.validation import bert_config
    from bert_jax.convert.export_directory import check_export_directory
    from bert_jax.convert.hf_export import Labels, export_to_huggingface
    from bert_jax.convert.sentence_transformers import export_workdir
    from bert_jax.inference.task_model import default_labels, labels_beside
    from bert_jax.model import task_head_of
    from bert_jax.state.trained_params import load_saved_params

    check_export_directory(args.output, overwrite=args.overwrite)  # before loading the checkpoint
    if args.sentence_transformers:
        out, step = export_workdir(args.workdir, args.output, args.step, args.vocab,
                                   overwrite=args.overwrite)
        print(f"exported step {step} of {args.workdir} as a sentence-transformers model to {out}")
        return
    params, config, step = load_saved_params(args.workdir, args.step)
    # A fine-tuned run exports as its head's transformers class, with the labels.json of the run.
    head = task_head_of(params)
    kind, labels = "pretraining", None
    if head is not None:
        kind, outputs = head
        if kind != "question_answering":
            names = labels_beside(args.workdir) or default_labels(outputs)
            problem = ("" if kind == "token_classification" else
                       "regression" if outputs == 1 else "single_label_classification")
            labels = Labels(names, problem)
    out = export_to_huggingface(params, bert_config(config), args.vocab or config.data.vocab_file,
                                config.data.do_lower_case, args.output, kind, labels, overwrite=args.overwrite)
    print(f"exported step {step} of {args.workdir}{f' ({kind})' if head else ''} to {out}")
