"""`bert-jax predict`: a fine-tuned model's predictions for a file, in the layout each task's
benchmark takes (`bert_jax.TextClassifier`, `TokenClassifier`, `QuestionAnswerer`;
`bert_jax.inference.prediction_files`)."""

from __future__ import annotations

import argparse
import os

from bert_jax.cli.model_arguments import add_model_arguments

TASKS = ("classification", "regression", "tagging", "qa")

# Input formats by file name ending, when --format is not given.
_FORMATS_BY_SUFFIX = {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".json": "json",
                      ".conll": "conll", ".txt": "conll"}


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "predict", help="a fine-tuned model's predictions for a file (GLUE TSV, SQuAD JSON, CoNLL)",
        description="Predictions of a fine-tuned model for every example of --input. "
        "classification/regression: GLUE's submission TSV (index<TAB>prediction; class names, "
        "or the class index for CoLA, SST-2, MRPC and QQP as GLUE expects). tagging: CoNLL "
        "columns (word, gold tag if given, predicted tag). qa: SQuAD's predictions.json, and "
        "null_odds.json beside it with --version-2. Outputs are written whole under a temporary "
        "name and renamed; existing files are refused unless --overwrite.")
    p.add_argument("--task", required=True, choices=TASKS)
    add_model_arguments(p)
    p.add_argument("--input", required=True,
                   help="examples: a GLUE/KLUE/CSV/JSON Lines file, a CoNLL file (tagging), a SQuAD "
                   "JSON file (qa), or tfds:NAME[:SPLIT]")
    p.add_argument("--output", required=True,
                   help="the predictions file (qa: predictions.json)")
    p.add_argument("--format",
                   help="input format: a known dataset (glue/sst2, glue/mnli, klue/nli, conll2003, "
                   "klue/ner, ...) or a layout (tsv, csv, jsonl, json, conll); default: from the "
                   "file name's ending (.conll and .txt are CoNLL)")
    p.add_argument("--text-fields", nargs="+", metavar="FIELD",
                   help="the field(s) holding the text, or the two of a pair (default: the "
                   "format's, or sentence1/sentence2, sentence or text)")
    p.add_argument("--label-field", help="the field holding gold labels, if any (not used to predict)")
    p.add_argument("--overwrite", action="store_true", help="replace output files that exist")
    p.add_argument("--truncate", action="store_true",
                   help="cut texts longer than the model takes (pairs as BERT's run_classifier.py "
                   "cuts them) instead of stopping with an error")
    qa = p.add_argument_group("qa (run_squad.py's flags and defaults)")
    qa.add_argument("--version-2", action="store_true",
                    help="SQuAD 2.0: questions may have no answer; also writes null_odds.json")
    qa.add_argument("--null-score-diff-threshold", type=float, default=0.0)
    qa.add_argument("--max-seq-length", type=int, default=384)
    qa.add_argument("--doc-stride", type=int, default=128, help="tokens between window starts")
    qa.add_argument("--max-query-length", type=int, default=64)
    qa.add_argument("--n-best-size", type=int, default=20)
    qa.add_argument("--max-answer-length", type=int, default=30)
    return p


def null_odds_path(output: str) -> str:
    """Where SQuAD 2.0's null odds go: `null_odds.json` beside the predictions."""
    return os.path.join(os.path.dirname(os.path.abspath(output)), "null_odds.json")


def _input_format(args: argparse.Namespace) -> str | None:
    if args.format or args.input.startswith("tfds:") or args.task == "qa":
        return args.format
    suffix = os.path.splitext(args.input)[1].lower()
    if suffix not in _FORMATS_BY_SUFFIX:
        raise ValueError(f"--input {args.input}: cannot tell its format from its name; pass "
                         f"--format (a layout: tsv, csv, jsonl, json, conll; or a dataset such as glue/mnli).")
    return _FORMATS_BY_SUFFIX[suffix]


def _tag_column(path: str) -> int | None:
    """-1 (the last column holds gold tags) unless the file's word lines have one column."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            columns = line.split()
            if columns and columns[0] != "-DOCSTART-":
                return -1 if len(columns) > 1 else None
    return None


def run(args: argparse.Namespace) -> None:
    # Imported here, not above, so that `bert-jax --help` loads none of them (JAX and Flax take seconds).
    from input_pipeline.output_file import refuse_existing_file, write_output_file

    outputs = [(args.output, "--output")]
    if args.task == "qa" and args.version_2:
        outputs.append((null_odds_path(args.output), "null_odds.json beside --output"))
    for path, flag in outputs:
        refuse_existing_file(path, args.overwrite, flag)  # before loading the model
    contents = {"qa": _predict_qa, "tagging": _predict_tags}.get(args.task, _predict_texts)(args)
    for (path, flag), text in zip(outputs, contents):
        write_output_file(path, lambda f, text=text: f.write(text.encode("utf-8")),
                          overwrite=args.overwrite, flag=flag)
    print(f"wrote {' and '.join(path for path, _ in outputs)}")


def _fields(args: argparse.Namespace):
    from input_pipeline.tasks.fields import Fields

    if not args.text_fields:
        return None
    if len(args.text_fields) > 2:
        raise ValueError(f"--text-fields takes one field, or two for a pair; got {args.text_fields}.")
    return Fields(args.text_fields[0], args.text_fields[1] if len(args.text_fields) == 2 else None,
                  args.label_field)


def _predict_texts(args: argparse.Namespace) -> list[str]:
    from bert_jax.inference.prediction_files import glue_predictions
    from bert_jax.inference.text_classifier import TextClassifier
    from input_pipeline.tasks.formats import task_format
    from input_pipeline.tasks.reading import read_examples

    classifier = TextClassifier.load(args.model, args.step, args.dtype, max_batch_size=args.batch_size)
    if classifier.is_regression != (args.task == "regression"):
        raise ValueError(f"{args.model} is a {'regression' if classifier.is_regression else 'classification'} "
                         f"model ({len(classifier.labels)} outputs); use --task "
                         f"{'regression' if classifier.is_regression else 'classification'}.")
    name = _input_format(args)
    examples = read_examples(args.input, name, _fields(args), task_type=args.task)
    if not examples:
        raise ValueError(f"{args.input} has no examples.")
    inputs = [e.text_a if e.text_b is None else (e.text_a, e.text_b) for e in examples]
    sequences = classifier.encode(inputs, args.truncate, [str(e.location) for e in examples])
    logits = classifier.logits(sequences)
    if classifier.is_regression:
        predictions = [float(row[0]) for row in logits]
    else:
        predictions = [classifier.labels[int(i)] for i in logits.argmax(axis=-1)]
    known = task_format(name) if name and not args.input.startswith("tfds:") else None
    return [glue_predictions(predictions, known)]


def _predict_tags(args: argparse.Namespace) -> list[str]:
    from bert_jax.inference.prediction_files import conll_predictions
    from bert_jax.inference.token_classifier import TokenClassifier
    from input_pipeline.tasks.reading import read_examples
    from input_pipeline.tasks.truncation import TruncationReport

    tagger = TokenClassifier.load(args.model, args.step, args.dtype, max_batch_size=args.batch_size)
    name = _input_format(args)
    tag_column = _tag_column(args.input) if os.path.isfile(args.input) else -1
    sentences = read_examples(args.input, name, _fields(args), task_type="tagging", tag_column=tag_column)
    if not sentences:
        raise ValueError(f"{args.input} has no sentences.")
    report = TruncationReport(tagger.buckets.max_length)
    tags = tagger.tag_words(sentences, report=report)
    if report.words_cut and not args.truncate:
        raise ValueError(f"{report.first_truncated}: {report.words_cut} words (from this sentence "
                         f"on) lie past the {report.max_seq_length} tokens the model takes and would "
                         f"get no prediction; pass --truncate to label them O, or split the sentences.")
    return [conll_predictions(sentences, tags)]


def _predict_qa(args: argparse.Namespace) -> list[str]:
    from bert_jax.inference.prediction_files import squad_json
    from bert_jax.inference.question_answerer import QuestionAnswerer
    from input_pipeline.tasks.squad_examples import read_qa_examples

    if args.format not in (None, "squad"):
        raise ValueError(f"--task qa reads SQuAD JSON (or tfds:squad/...), not --format {args.format}.")
    answerer = QuestionAnswerer.load(args.model, args.step, args.dtype, max_batch_size=args.batch_size)
    examples = read_qa_examples(args.input)
    if not examples:
        raise ValueError(f"{args.input} has no questions.")
    predictions, *_ = answerer.predict(
        examples, answerer.feature_config(args.max_seq_length, args.doc_stride, args.max_query_length),
        n_best_size=args.n_best_size, max_answer_length=args.max_answer_length,
        version_2_with_negative=args.version_2, null_score_diff_threshold=args.null_score_diff_threshold)
    contents = [squad_json(predictions.answers)]
    if args.version_2:
        contents.append(squad_json(predictions.null_odds))
    return contents
