"""Fine-tuning's entry point (`bert-jax finetune`, `bert_jax.finetune`): a pretrained encoder
and a task's files in, a work directory out, on the one training loop (`training.loop.train`).

`finetune(config, workdir)` reads the config once (`config.finetuning`), takes the model's shape
and tokenizer from `train.init_from`, reads the training and evaluation sets, builds the task's
head, objective and evaluator, and trains; the work directory then holds what prediction and
export need:

  config.json     the config, the model's fields filled in from the checkpoint
  labels.json     the label list (classification, tagging): ids -> names
  checkpoints/    the rolling checkpoints (resume, preemption)
  best/<step>/    the parameters of the best evaluation by the task's main metric
  truncation.txt  what fitting the examples into max_seq_length cost, per set
  results.json    the best evaluation, the final one and the run's length, once it finished

A finished run is not trained again: its `results.json` is read back. With `seeds` N > 1 the
run is repeated with seeds `train.seed`, +1, ... in `WORKDIR/seed-<seed>` and `WORKDIR/
results.json` holds each one's best evaluation with the median, minimum and maximum of every
metric: small GLUE sets (RTE, MRPC, STS-B, CoLA) vary by points between seeds.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import ml_collections

from bert_jax.config.finetuning import (
    TaskConfig,
    config_with,
    finetuning_run,
    resolve_model,
    validate_finetuning,
)
from bert_jax.convert.sources import source_model
from bert_jax.model import BertConfig
from bert_jax.model.task_heads import model_of_kind
from bert_jax.state.best import best_metrics
from bert_jax.tasks.classification import SequenceClassificationObjective
from bert_jax.tasks.evaluation import TaskEvaluator, main_metric_name
from bert_jax.tasks.head_objective import HeadObjective
from bert_jax.tasks.question_answering import QuestionAnsweringObjective
from bert_jax.tasks.tagging import TokenClassificationObjective
from bert_jax.tasks.task_data import read_task_examples, task_labels, task_set
from bert_jax.training.array_batches import ArrayData, steps_per_epoch
from bert_jax.training.loop import train
from input_pipeline import remote_files
from input_pipeline.shards.tfrecord import write_atomically
from input_pipeline.tasks.labels import LABELS_FILE, LabelList, load_labels, save_labels
from input_pipeline.tokenizers.loading import load_tokenizer

logger = logging.getLogger("bert_jax")

RESULTS_FILE = "results.json"
TRUNCATION_FILE = "truncation.txt"

Report = Callable[[dict[str, float]], None]


def finetune(config: ml_collections.ConfigDict, workdir: str | os.PathLike, *, seeds: int = 1,
             on_report: Report | None = None) -> dict[str, Any]:
    """Fine-tunes `train.init_from` on the task of `config` in `workdir` (see the module
    docstring), resuming a stopped run and returning a finished one's results unchanged.

    Returns the results (those of `results.json`): for one seed the best evaluation ("best",
    with "best_step"), the final one ("final") and "num_steps"; for several, each seed's under
    "seeds" and "median", "min", "max" of the best evaluations. A run stopped by SIGTERM returns
    {"preempted_at_step": step}: run it again to continue.
    """
    validate_finetuning(config, jax.device_count(), jax.process_count())
    if seeds < 1:
        raise ValueError(f"seeds={seeds} must be at least 1.")
    if seeds == 1:
        return _finetune_one(config, os.fspath(workdir), on_report)
    runs = {}
    for seed in range(config.train.seed, config.train.seed + seeds):
        results = _finetune_one(config_with(config, {"train.seed": seed}),
                                os.path.join(workdir, f"seed-{seed}"), on_report)
        if "preempted_at_step" in results:
            return results | {"seed": seed}
        runs[seed] = results
    summary = summarize_seeds(runs)
    _write_results(workdir, summary)
    print(format_seed_table(summary))
    return summary


def _finetune_one(config: ml_collections.ConfigDict, workdir: str, on_report: Report | None) -> dict[str, Any]:
    finished = _read_results(workdir)
    if finished is not None:
        logger.info("%s holds a finished run (%s); nothing to do. Use another --workdir to train "
                    "again.", workdir, RESULTS_FILE)
        print(format_results_table(finished))
        return finished
    source = source_model(config.train.init_from)
    config = resolve_model(config, source.config)
    if not config.data.vocab_file:
        if source.vocab_file is None:
            raise ValueError(f"train.init_from={config.train.init_from!r} has no vocab file beside it; "
                             f"name the tokenizer's with data.vocab_file.")
        config.data.vocab_file = source.vocab_file
    if config.data.do_lower_case is None:
        config.data.do_lower_case = source.do_lower_case
    # Again, now that the model is known: its positions and the mesh's splits of its axes.
    validate_finetuning(config, jax.device_count(), jax.process_count())
    task = TaskConfig.from_config(config)
    tokenizer = load_tokenizer(config.data.vocab_file, do_lower_case=config.data.do_lower_case)

    train_examples = read_task_examples(task, task.train_file)
    labels = task_labels(task, train_examples)
    training = task_set(task, task.train_file, train_examples, tokenizer, labels, training=True)
    evaluation = None
    if task.eval_file:
        evaluation = task_set(task, task.eval_file, read_task_examples(task, task.eval_file),
                              tokenizer, labels, training=False)
    sets = {name: s for name, s in (("train", training), ("eval", evaluation)) if s is not None}
    for name, data_set in sets.items():
        logger.info("%s set %s: %s", name, data_set.source, data_set.report)

    best_metric = main_metric_name(task) if evaluation is not None else ""
    run = finetuning_run(config, steps_per_epoch(len(training), config.train.global_batch_size),
                         best_metric=best_metric)
    objective = task_objective(task.type, run.model, labels)
    evaluator = None
    if evaluation is not None:
        evaluator = TaskEvaluator(task, objective, evaluation, labels, config.train.global_batch_size)
    if jax.process_index() == 0:
        remote_files.makedirs(workdir)
        _keep_labels(workdir, labels)
    logger.info("fine-tuning %s for %d steps (%s epochs of %d examples, batch %d)%s", task.type,
                run.loop.num_steps, config.train.num_epochs, len(training), run.loop.global_batch_size,
                f"; the best evaluation by {best_metric} is kept" if best_metric else "")
    outcome = train(run, objective, ArrayData(training.arrays, run.loop.global_batch_size, config.train.seed),
                    workdir, evaluator=evaluator, on_report=on_report)
    if "preempted_at_step" in outcome:
        return {"preempted_at_step": outcome["preempted_at_step"]}
    results: dict[str, Any] = {"task": task.type, "format": task.format, "init_from": config.train.init_from,
                               "seed": config.train.seed, "num_steps": run.loop.num_steps,
                               "train_examples": len(training)}
    if evaluation is not None:
        best = best_metrics(workdir)
        results |= {"metric": best_metric, "eval_examples": len(evaluation.examples),
                    "final": {k.removeprefix("eval_"): v for k, v in outcome.items() if k.startswith("eval_")}}
        if best is not None:
            results |= {"best_step": best[0], "best": best[1]}
    if jax.process_index() == 0:
        write_atomically(os.path.join(workdir, TRUNCATION_FILE),
                         ["".join(f"{name} ({s.source}): {s.report}\n" for name, s in sets.items()).encode()])
        _write_results(workdir, results)
    print(format_results_table(results))
    return results


def task_objective(task_type: str, model_config: BertConfig, labels: LabelList | None) -> HeadObjective:
    """The head of `task_type` on a BERT of `model_config`, with its loss."""
    if task_type in ("classification", "regression"):
        num_labels = 1 if task_type == "regression" else len(labels)
        return SequenceClassificationObjective(model_of_kind(model_config, "sequence_classification", num_labels))
    if task_type == "tagging":
        return TokenClassificationObjective(model_of_kind(model_config, "token_classification", len(labels)))
    return QuestionAnsweringObjective(model_of_kind(model_config, "question_answering"))


def _keep_labels(workdir: str, labels: LabelList | None) -> None:
    """Writes `labels.json`, or checks that a resumed run's labels are the same: the head's ids
    must keep meaning the same classes."""
    if labels is None:
        return
    path = os.path.join(workdir, LABELS_FILE)
    if remote_files.exists(path):
        saved = load_labels(path)
        if saved != labels:
            raise ValueError(f"{path} holds the labels {list(saved.names)} of the run in this work "
                             f"directory, the data now gives {list(labels.names)}; use another "
                             f"--workdir, or the same labels (--labels {path}).")
        return
    save_labels(labels, path)


def _read_results(workdir: str) -> dict | None:
    path = os.path.join(workdir, RESULTS_FILE)
    if not remote_files.exists(path):
        return None
    with remote_files.open_file(path) as f:
        return json.load(f)


def _write_results(workdir: str, results: Mapping[str, Any]) -> None:
    remote_files.makedirs(workdir)
    write_atomically(os.path.join(workdir, RESULTS_FILE), [(json.dumps(results, indent=2) + "\n").encode()])


def _number(value: float) -> str:
    return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"


def format_results_table(results: Mapping[str, Any]) -> str:
    """The evaluations of one run as a small table: a row for the best and the final one."""
    if "best" not in results:
        return f"{results.get('task')}: trained {results.get('num_steps')} steps (no evaluation set)."
    names = [k for k in results["best"] if k not in ("total", "missing")]
    rows = [["", "step", *names]]
    rows.append(["best", str(results["best_step"]), *(_number(results["best"][k]) for k in names)])
    rows.append(["final", str(results["num_steps"]), *(_number(results["final"].get(k, float("nan"))) for k in names)])
    return _table(rows)


def summarize_seeds(runs: Mapping[int, Mapping[str, Any]]) -> dict[str, Any]:
    """Each seed's best evaluation, and the median, minimum and maximum over the seeds of every
    metric they all report."""
    bests = {seed: run["best"] for seed, run in runs.items() if "best" in run}
    summary: dict[str, Any] = {"seeds": {str(seed): run for seed, run in runs.items()}}
    if bests:
        names = [k for k in next(iter(bests.values())) if all(k in b for b in bests.values())]
        summary["median"] = {k: statistics.median(b[k] for b in bests.values()) for k in names}
        summary["min"] = {k: min(b[k] for b in bests.values()) for k in names}
        summary["max"] = {k: max(b[k] for b in bests.values()) for k in names}
    return summary


def format_seed_table(summary: Mapping[str, Any]) -> str:
    """A row per seed (its best evaluation), then the median, min and max."""
    if "median" not in summary:
        return f"{len(summary['seeds'])} seeds trained (no evaluation set)."
    names = [k for k in summary["median"] if k not in ("total", "missing")]
    rows = [["seed", "best step", *names]]
    for seed, run in summary["seeds"].items():
        rows.append([seed, str(run.get("best_step", "")), *(_number(run["best"][k]) for k in names)])
    for statistic in ("median", "min", "max"):
        rows.append([statistic, "", *(_number(summary[statistic][k]) for k in names)])
    return _table(rows)


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                               for i, (cell, w) in enumerate(zip(row, widths))) for row in rows)
