"""`bert-jax finetune` end to end, for each of the four tasks, from a tiny random BERT exported as a
Hugging Face directory (its shape and vocab taken from there): classification of pairs (JSON
Lines), regression (TSV) over two seeds, tagging (CoNLL) and extractive QA (SQuAD JSON). Each
run keeps its evaluations in metrics.jsonl, the best one's parameters in best/<step> with
results.json naming it, its labels in labels.json and its truncation report in truncation.txt;
the best classification accuracy is the one its kept parameters score, recomputed here with
scikit-learn; a finished run given again does nothing; an unknown label in the evaluation set
stops the command naming the file and line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import sklearn.metrics

from bert_jax.cli import main
from bert_jax.config.finetuning import TaskConfig
from bert_jax.config.validation import bert_config
from bert_jax.state.best import load_best_params
from bert_jax.tasks.finetuning import task_objective
from bert_jax.tasks.task_data import read_task_examples, task_labels, task_set
from input_pipeline.tasks.labels import load_labels
from input_pipeline.tokenizers.loading import load_tokenizer
from tests.support import finetuning_files

COMMON = ["--set", "train.global_batch_size=8", "--set", "optimizer.learning_rate=1e-3",
          "--set", "task.max_seq_length=24", "--set", "train.log_every=1"]
METRICS = {"classification": ["accuracy"], "regression": ["pearson", "spearman", "score"],
           "tagging": ["precision", "recall", "f1", "accuracy"], "qa": ["exact_match", "f1", "total", "missing"]}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("finetune")
    finetuning_files.write_tiny_model(root)
    for task, write, ext in (("classification", finetuning_files.write_classification, "jsonl"),
                             ("regression", finetuning_files.write_regression, "tsv"),
                             ("tagging", finetuning_files.write_tagging, "conll"),
                             ("qa", finetuning_files.write_squad, "json")):
        write(root / f"{task}_train.{ext}", 27, seed=1)
        write(root / f"{task}_eval.{ext}", 13, seed=2)
    with open(root / "classification_train.jsonl", "a") as f:  # one pair longer than 24 tokens
        f.write(json.dumps({"sentence1": "good " * 30, "sentence2": "the cat", "label": "pos"}) + "\n")
    return root


def _finetune(files: Path, task: str, workdir: Path, *extra: str) -> int:
    ext = {"classification": "jsonl", "regression": "tsv", "tagging": "conll", "qa": "json"}[task]
    return main(["finetune", "--task", task, "--init-from", str(files / "model"),
                 "--train", str(files / f"{task}_train.{ext}"), "--eval", str(files / f"{task}_eval.{ext}"),
                 "--workdir", str(workdir), *COMMON, *extra])


def _evaluations(workdir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["prefix"] == "eval"]


def _written(workdir: Path) -> dict[str, int]:
    """When each file under `workdir` was last written (ns)."""
    return {str(p): p.stat().st_mtime_ns for p in workdir.rglob("*") if p.is_file()}


def _check_run(workdir: Path, task: str) -> dict:
    """The files a finished run leaves, and their agreement; returns results.json."""
    results = json.loads((workdir / "results.json").read_text())
    assert results["num_steps"] == 3 * 4  # 3 epochs of ceil(27 or 28 / 8) batches (QA: 1 window each)
    evaluations = _evaluations(workdir)
    assert [e["step"] for e in evaluations] == [4, 8, 12]  # every epoch
    assert sorted(results["best"]) == sorted(METRICS[task])
    metric = results["metric"]
    best = max(evaluations, key=lambda e: e[metric])  # the first of equals
    assert results["best_step"] == best["step"] and results["best"][metric] == best[metric]
    assert results["final"][metric] == evaluations[-1][metric]
    assert sorted(p.name for p in (workdir / "best").iterdir()) == [str(best["step"])]
    saved = json.loads((workdir / "config.json").read_text())
    assert saved["model"]["hidden_size"] == 32 and saved["data"]["vocab_file"].endswith("model/vocab.txt")
    assert (workdir / "truncation.txt").read_text().startswith("train (")
    return results


def test_each_task_trains_evaluates_and_keeps_its_best(files, tmp_path, capsys):
    # Classification: pairs, labels from the training set, evaluated on 13 pairs (a partial batch).
    workdir = tmp_path / "classification"
    assert _finetune(files, "classification", workdir) == 0
    results = _check_run(workdir, "classification")
    assert results["metric"] == "accuracy" and results["eval_examples"] == 13
    assert load_labels(workdir / "labels.json").names == ("neg", "pos")
    assert "1 of 28 examples truncated to 24 tokens" in (workdir / "truncation.txt").read_text()
    printed = capsys.readouterr().out
    assert "best" in printed and "accuracy" in printed
    # The kept parameters score the accuracy reported, computed here from their predictions.
    params, config, step, _ = load_best_params(workdir)
    task = TaskConfig.from_config(config)
    tokenizer = load_tokenizer(config.data.vocab_file, do_lower_case=config.data.do_lower_case)
    labels = task_labels(task, read_task_examples(task, task.train_file))
    evaluation = task_set(task, task.eval_file, read_task_examples(task, task.eval_file), tokenizer, labels,
                          training=False)
    objective = task_objective("classification", bert_config(config), labels)
    logits = objective.outputs(params, evaluation.arrays)
    assert step == results["best_step"]
    assert results["best"]["accuracy"] == sklearn.metrics.accuracy_score(
        evaluation.arrays["label"], np.argmax(logits, axis=-1))
    # Exported (the best parameters, with the labels), `transformers` gives the same logits.
    _check_export(workdir, tmp_path / "classification-export", "BertForSequenceClassification",
                  evaluation.arrays, logits, {"0": "neg", "1": "pos"})
    # Given again, the finished run does nothing: no file written (no evaluation, no config), the
    # same results printed.
    before = _written(workdir)
    assert _finetune(files, "classification", workdir) == 0
    assert _written(workdir) == before
    assert "best" in capsys.readouterr().out

    # Regression over two seeds: each in seed-<seed>, their median and spread in results.json.
    workdir = tmp_path / "regression"
    assert _finetune(files, "regression", workdir, "--seeds", "2", "--set", "train.seed=3") == 0
    seeds = [_check_run(workdir / f"seed-{seed}", "regression") for seed in (3, 4)]
    assert seeds[0]["best"] != seeds[1]["best"] and not (workdir / "seed-3" / "labels.json").exists()
    summary = json.loads((workdir / "results.json").read_text())
    assert sorted(summary["seeds"]) == ["3", "4"]
    for name in METRICS["regression"]:
        values = sorted(run["best"][name] for run in seeds)
        assert (summary["min"][name], summary["max"][name]) == (values[0], values[1])
        assert summary["median"][name] == pytest.approx((values[0] + values[1]) / 2, abs=1e-15)
    assert "median" in capsys.readouterr().out

    # Tagging: entity F1 (seqeval); the tag list sorted from the training set.
    workdir = tmp_path / "tagging"
    assert _finetune(files, "tagging", workdir) == 0
    assert _check_run(workdir, "tagging")["metric"] == "f1"
    assert load_labels(workdir / "labels.json").names == ("B-LOC", "B-PER", "O")
    _check_export(workdir, tmp_path / "tagging-export", "BertForTokenClassification",
                  id2label={"0": "B-LOC", "1": "B-PER", "2": "O"})

    # Extractive QA: SQuAD's exact match and F1 (percentages) over the 13 questions.
    workdir = tmp_path / "qa"
    assert _finetune(files, "qa", workdir, "--set", "task.max_seq_length=32", "--set", "task.max_query_length=8") == 0
    results = _check_run(workdir, "qa")
    assert results["metric"] == "f1" and results["best"]["total"] == 13 and results["best"]["missing"] == 0
    _check_export(workdir, tmp_path / "qa-export", "BertForQuestionAnswering")


def _check_export(workdir: Path, output: Path, architecture: str, arrays: dict | None = None,
                  logits: np.ndarray | None = None, id2label: dict | None = None) -> None:
    """`bert-jax export` of a fine-tuning run: `transformers`' class of its head loads every
    weight, with the run's labels, and (given `arrays`) computes our `logits` within 1e-4."""
    import torch
    import transformers

    assert main(["export", "--workdir", str(workdir), "--output", str(output)]) == 0
    exported = json.loads((output / "config.json").read_text())
    assert exported["architectures"] == [architecture]
    if id2label is not None:
        assert exported["id2label"] == id2label
    model, info = getattr(transformers, architecture).from_pretrained(output, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    if arrays is not None:
        model.eval()
        with torch.no_grad():
            theirs = model(input_ids=torch.tensor(np.asarray(arrays["input_ids"]), dtype=torch.long),
                           attention_mask=torch.tensor(np.asarray(arrays["input_mask"]), dtype=torch.long),
                           token_type_ids=torch.tensor(np.asarray(arrays["segment_ids"]), dtype=torch.long)).logits
        np.testing.assert_allclose(theirs.numpy(), np.asarray(logits), rtol=1e-4, atol=1e-4)


def test_an_unknown_label_in_the_evaluation_set_names_the_file_and_line(files, tmp_path, capsys):
    bad = tmp_path / "eval.jsonl"
    bad.write_text("".join(json.dumps({"sentence1": "a", "sentence2": "b", "label": label}) + "\n"
                           for label in ("pos", "neg", "maybe")))
    status = main(["finetune", "--task", "classification", "--init-from", str(files / "model"),
                   "--train", str(files / "classification_train.jsonl"), "--eval", str(bad),
                   "--workdir", str(tmp_path / "run"), *COMMON])
    assert status == 2
    error = capsys.readouterr().err
    assert f"{bad}:3: field 'label': unknown label 'maybe'" in error and "['neg', 'pos']" in error
    assert not (tmp_path / "run").exists()  # stopped before anything was written
