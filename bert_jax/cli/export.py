"""`bert-jax export`: a work directory's checkpoint to a Hugging Face BERT directory
(`bert_jax.export_to_huggingface`)."""

from __future__ import annotations

import argparse
from pathlib import Path


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
    p.add_argument("--sentence-transformers", action=argparse.BooleanOptionalAction,
                   help="write a sentence-transformers model (a BertModel and the run config's "
                   "sentence pooling, normalization and prompts); --no-sentence-transformers: a "
                   "BertForPreTraining (default: sentence-transformers when the run config's sentence "
                   "head is not the default one, as for an imported sentence-transformers model)")
    p.add_argument("--push-to-hub", metavar="REPO",
                   help="then upload the finished export to this Hugging Face model repo (e.g. "
                   "me/my-bert; created if missing; the token of `hf auth login` or HF_TOKEN)")
    p.add_argument("--private", action="store_true", help="with --push-to-hub: create the repo private")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier export in --output: only the files it wrote (listed in "
                   "its .bert-jax-export.json); anything added there since is left as it is")
    return p


def run(args: argparse.Namespace) -> None:
    # Imported here, not above, so that `bert-jax --help` loads none of them (JAX and Flax take seconds).
    from bert_jax.config.validation import bert_config, looks_like_hub_repo_id, sentence_config
    from bert_jax.convert.export_directory import check_export_directory
    from bert_jax.convert.hf_export import export_to_huggingface
    from bert_jax.convert.hub import push_to_hub
    from bert_jax.convert.model_card import read_training_record
    from bert_jax.convert.sentence_transformers import export_sentence_transformers
    from bert_jax.model import SentenceConfig, task_head_of
    from bert_jax.state.trained_params import load_saved_params
    from input_pipeline.progress import Progress

    check_export_directory(args.output, overwrite=args.overwrite)  # before loading the checkpoint
    if args.push_to_hub and (not looks_like_hub_repo_id(args.push_to_hub) or "@" in args.push_to_hub):
        raise ValueError(f"--push-to-hub {args.push_to_hub!r} is not a Hugging Face repo id (OWNER/NAME: "
                         "letters, digits, '-', '_', '.'); nothing was written.")
    with Progress("export", 2, unit="stages") as progress:
        progress.describe("restoring the checkpoint")
        params, config, step = load_saved_params(args.workdir, args.step)
        head = task_head_of(params)
        if head is not None:  # a fine-tuning run: its head's transformers class, with its labels
            if args.sentence_transformers:
                raise ValueError(f"{args.workdir} holds a {head[0].replace('_', ' ')} head; "
                                 "--sentence-transformers exports sentence encoders only.")
            out, message = _export_fine_tuned(args, head[0], progress)
        else:
            progress.update(1)
            progress.describe(f"writing step {step}")
            sentence = sentence_config(config)
            record = read_training_record(args.workdir, config, step)
            vocab_file = args.vocab or config.data.vocab_file
            as_sentence_transformers = args.sentence_transformers
            if as_sentence_transformers is None:
                # A head of its own (an imported sentence-transformers model's pooling, Normalize,
                # prompts) would be lost in a BertForPreTraining directory: SentenceTransformer
                # reads it as plain mean pooling.
                as_sentence_transformers = sentence != SentenceConfig()
            if as_sentence_transformers:
                out = export_sentence_transformers(params, bert_config(config), vocab_file,
                                                   config.data.do_lower_case, sentence, args.output,
                                                   overwrite=args.overwrite, record=record)
                why = ("" if args.sentence_transformers else
                       " (its run config's sentence head; --no-sentence-transformers: a BertForPreTraining)")
                message = f"exported step {step} of {args.workdir} as a sentence-transformers model to {out}{why}"
            else:
                out = export_to_huggingface(params, bert_config(config), vocab_file, config.data.do_lower_case,
                                            args.output, overwrite=args.overwrite, record=record)
                message = f"exported step {step} of {args.workdir} to {out}"
        progress.update(1)
        progress.close(_written(out))
    print(message)
    if args.push_to_hub:  # only a complete export: the exporters return once it is in place
        url = push_to_hub(out, args.push_to_hub, private=args.private or None)
        print(f"pushed {out} to the Hugging Face Hub: {url}")


def _export_fine_tuned(args: argparse.Namespace, kind: str, progress) -> tuple[Path, str]:
    """A fine-tuning run's model with its task head and labels (its best evaluation's parameters
    where it kept them, else `--step` or the newest), as `transformers`' BertFor{Sequence
    Classification, TokenClassification, QuestionAnswering}; returns the export and what to say."""
    from bert_jax.convert.hf_export import Labels, export_to_huggingface
    from bert_jax.inference.task_model import load_task_model

    task = load_task_model(args.workdir, kind, args.step)
    progress.update(1)
    progress.describe(f"writing {task.source}")
    labels = None
    if kind != "question_answering":
        problem_type = task.problem_type or "single_label_classification" * (kind == "sequence_classification")
        labels = Labels(task.labels, problem_type)
    out = export_to_huggingface(task.params, task.config, args.vocab or task.vocab_file,
                                task.do_lower_case, args.output, kind, labels, overwrite=args.overwrite)
    return out, f"exported {task.source} as {kind.replace('_', ' ')} to {out}"


def _written(directory) -> str:
    """`directory` and the size of what it holds, for the summary."""
    size = sum(path.stat().st_size for path in Path(directory).rglob("*") if path.is_file())
    return f"{directory} ({size / 1e6:.1f} MB)"
