"""GLUE in one command (`bert-jax glue`): every task found in a GLUE directory as its download
script lays it out (`CoLA/train.tsv`, `CoLA/dev.tsv`, ..., `MNLI/dev_matched.tsv` and
`dev_mismatched.tsv`) fine-tuned with one recipe (`configs/finetune_glue.py`), each in
`WORKDIR/<task>`, and the table papers print: every task's dev metrics and the GLUE average
(`tasks.metrics.glue_score`), the way BERT, MosaicBERT and Cramming report a pretrained model.

MNLI trains once and is scored on both dev sets: matched during training (its best checkpoint
chosen there), mismatched with that checkpoint afterwards.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import ml_collections

from bert_jax.config.finetuning import TaskConfig, config_with
from bert_jax.config.validation import bert_config
from bert_jax.state.best import load_best_params
from bert_jax.tasks.evaluation import TaskEvaluator
from bert_jax.tasks.finetuning import finetune, task_objective
from bert_jax.tasks.metrics import glue_score
from bert_jax.tasks.task_data import read_task_examples, task_labels, task_set
from input_pipeline import remote_files
from input_pipeline.shards.tfrecord import write_atomically
from input_pipeline.tokenizers.loading import load_tokenizer

logger = logging.getLogger("bert_jax")

# The GLUE download's directory of each task -> (its format, its dev file), in the order of the
# GLUE paper's table. MNLI's mismatched dev set is scored as "glue/mnli_mismatched".
GLUE_DIRECTORIES = {
    "CoLA": ("glue/cola", "dev.tsv"), "SST-2": ("glue/sst2", "dev.tsv"),
    "MRPC": ("glue/mrpc", "dev.tsv"), "STS-B": ("glue/stsb", "dev.tsv"),
    "QQP": ("glue/qqp", "dev.tsv"), "MNLI": ("glue/mnli", "dev_matched.tsv"),
    "QNLI": ("glue/qnli", "dev.tsv"), "RTE": ("glue/rte", "dev.tsv"), "WNLI": ("glue/wnli", "dev.tsv"),
}
MNLI_MISMATCHED = "dev_mismatched.tsv"
RESULTS_FILE = "glue_results.json"


def find_glue_tasks(data_dir: str, names: Sequence[str] | None = None) -> list[str]:
    """The GLUE tasks (directory names, in GLUE's order) of `data_dir` that hold a train.tsv and
    their dev file; `names` (case-insensitive, "SST-2" or "sst2") must all be among them."""
    found = [name for name, (_, dev) in GLUE_DIRECTORIES.items()
             if all(remote_files.exists(os.path.join(data_dir, name, f)) for f in ("train.tsv", dev))]
    if names:
        canonical = {_key(name): name for name in GLUE_DIRECTORIES}
        unknown = [n for n in names if _key(n) not in canonical]
        if unknown:
            raise ValueError(f"unknown GLUE tasks {unknown}; the tasks are {list(GLUE_DIRECTORIES)}.")
        missing = [canonical[_key(n)] for n in names if canonical[_key(n)] not in found]
        if missing:
            raise ValueError(f"{data_dir} has no train.tsv and dev file for {missing} (expected "
                             f"{data_dir}/<task>/train.tsv as GLUE's download lays them out).")
        found = [name for name in found if _key(name) in {_key(n) for n in names}]
    if not found:
        raise ValueError(f"no GLUE task in {data_dir}: expected directories {list(GLUE_DIRECTORIES)} "
                         f"holding train.tsv and dev.tsv (MNLI: dev_matched.tsv), as GLUE's download "
                         f"script writes them.")
    return found


def _key(name: str) -> str:
    return name.lower().replace("-", "")


def run_glue(config: ml_collections.ConfigDict, data_dir: str, workdir: str | os.PathLike,
             tasks: Sequence[str] | None = None, *, seeds: int = 1) -> dict[str, Any]:
    """Fine-tunes `train.init_from` (set in `config`, a fine-tuning config) on each GLUE task of
    `data_dir` (or those named), each in `workdir/<task>`, and returns {"tasks": {format: the
    best evaluation's metrics (the median over seeds)}, "glue_score": the average} after
    printing the table; both are also written to `workdir/glue_results.json`."""
    workdir = os.fspath(workdir)
    results: dict[str, dict[str, float]] = {}
    for name in find_glue_tasks(data_dir, tasks):
        fmt, dev = GLUE_DIRECTORIES[name]
        task_config = config_with(config, {
            "task.type": "regression" if fmt == "glue/stsb" else "classification", "task.format": fmt,
            "data.train_file": os.path.join(data_dir, name, "train.tsv"),
            "data.eval_file": os.path.join(data_dir, name, dev)})
        logger.info("GLUE: %s", name)
        outcome = finetune(task_config, os.path.join(workdir, name), seeds=seeds)
        if "preempted_at_step" in outcome:
            return outcome | {"task": name}
        results[fmt] = outcome["median"] if seeds > 1 else outcome["best"]
        if fmt == "glue/mnli":
            runs = [os.path.join(workdir, name)] if seeds == 1 else [
                os.path.join(workdir, name, f"seed-{seed}") for seed in outcome["seeds"]]
            mismatched = [evaluate_best(run, os.path.join(data_dir, name, MNLI_MISMATCHED),
                                        "glue/mnli_mismatched") for run in runs]
            results["glue/mnli_mismatched"] = {k: statistics.median(m[k] for m in mismatched)
                                               for k in mismatched[0]}
    summary = {"tasks": results, "glue_score": glue_score(results, [t for t in results if t != "glue/mnli_mismatched"])}
    if jax.process_index() == 0:
        remote_files.makedirs(workdir)
        write_atomically(os.path.join(workdir, RESULTS_FILE), [(json.dumps(summary, indent=2) + "\n").encode()])
    print(format_glue_table(summary))
    return summary


def evaluate_best(workdir: str, eval_file: str, fmt: str) -> dict[str, float]:
    """The metrics of the best parameters kept in a fine-tuning `workdir` on another evaluation
    file of the same task (`fmt`: its format, e.g. "glue/mnli_mismatched"), on this host's first
    device."""
    params, config, _, _ = load_best_params(workdir)
    config = config_with(config, {"data.eval_file": eval_file, "task.format": fmt})
    task = TaskConfig.from_config(config)
    tokenizer = load_tokenizer(config.data.vocab_file, do_lower_case=config.data.do_lower_case)
    labels = task_labels(task, read_task_examples(task, task.train_file))
    evaluation = task_set(task, eval_file, read_task_examples(task, eval_file), tokenizer, labels, training=False)
    objective = task_objective(task.type, bert_config(config), labels)
    evaluator = TaskEvaluator(task, objective, evaluation, labels, config.train.global_batch_size)
    outputs = jax.jit(evaluator.outputs)
    return evaluator.metrics(jax.device_get(outputs(params, batch)) for batch in evaluator.batches())


# The columns of the table papers print: a task's name and the metrics shown (several: "a/b").
_COLUMNS = (("CoLA", "glue/cola", ("matthews_correlation",)), ("SST-2", "glue/sst2", ("accuracy",)),
            ("MRPC", "glue/mrpc", ("f1", "accuracy")), ("STS-B", "glue/stsb", ("pearson", "spearman")),
            ("QQP", "glue/qqp", ("f1", "accuracy")), ("MNLI-m/mm", "glue/mnli", ("accuracy",)),
            ("QNLI", "glue/qnli", ("accuracy",)), ("RTE", "glue/rte", ("accuracy",)),
            ("WNLI", "glue/wnli", ("accuracy",)))


def format_glue_table(summary: Mapping[str, Any]) -> str:
    """GLUE's dev results as papers print them, in percent: one column per task (MRPC and QQP
    F1/accuracy, STS-B Pearson/Spearman, MNLI matched/mismatched accuracy) and the average."""
    results = summary["tasks"]
    header, values = [], []
    for title, fmt, metrics in _COLUMNS:
        if fmt not in results:
            continue
        numbers = [results[fmt][m] for m in metrics]
        if fmt == "glue/mnli" and "glue/mnli_mismatched" in results:
            numbers.append(results["glue/mnli_mismatched"]["accuracy"])
        header.append(title)
        values.append("/".join(f"{100 * n:.1f}" for n in numbers))
    header.append("GLUE")
    values.append(f"{100 * summary['glue_score']:.1f}")
    widths = [max(len(h), len(v)) for h, v in zip(header, values)]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in (header, values))
