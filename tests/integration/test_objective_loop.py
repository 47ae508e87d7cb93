"""The training loop runs an objective that is not pretraining, as fine-tuning and Sentence-BERT
will: a regression head on the encoder (a toy task: the share of low token ids), the encoder
initialized from a bert-jax work directory (`init_from`) and the head fresh, in-memory examples
with a partial last batch, two micro-batches a step, dropout on; an evaluation whose metrics need
every prediction (MSE, Pearson) with the best parameters kept by one of them. A run preempted
between a checkpoint and its evaluation resumes to the very same losses, evaluations and best
parameters as one that never stopped."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
from pathlib import Path

import jax
import numpy as np
import pytest

from bert_jax.config.run import CheckpointConfig, LoopConfig, MeshConfig, OptimizerConfig, RunConfig
from bert_jax.convert.sources import initialize_params
from bert_jax.model import BertConfig
from bert_jax.parallel import sharding
from bert_jax.state.best import load_best_params
from bert_jax.state.optimizer import make_optimizer
from bert_jax.state.train_state import create_state, state_shardings
from bert_jax.state.trained_params import load_trained_params
from bert_jax.training.array_batches import ArrayData, steps_per_epoch
from bert_jax.training.loop import train
from tests.support.toy_regression import RegressionEvaluator, RegressionObjective, examples

PRE_LAYOUT = Path(__file__).resolve().parents[1] / "data" / "pre_layout"
TIMINGS = {"steps_per_second", "step_seconds", "sequences_per_second", "tokens_per_second"}


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    """(run config, objective, train data, evaluator) of the toy task: 22 training examples in
    batches of 8 (the third of each epoch holds 6), 4 epochs, 10 evaluation examples."""
    source = tmp_path_factory.mktemp("source") / "workdir"
    shutil.copytree(PRE_LAYOUT / "workdir", source)
    saved = json.loads((PRE_LAYOUT / "workdir" / "config.json").read_text())
    model = BertConfig(**saved["model"])
    assert model.hidden_dropout_rate > 0 and model.scan_layers
    train_arrays, eval_arrays = examples(22, seed=1), examples(10, seed=2)
    num_steps = 4 * steps_per_epoch(22, 8)
    run = RunConfig(
        model=model,
        optimizer=OptimizerConfig(learning_rate=2e-2, weight_decay=0.0).with_warmup_fraction(0.25, num_steps),
        loop=LoopConfig(num_steps=num_steps, global_batch_size=8, grad_accum_steps=2, log_every=1, eval_every=3),
        checkpoints=CheckpointConfig(every=3, keep=10, best_metric="mse", best_mode="min"),
        mesh=MeshConfig(shape=(("data", -1), ("fsdp", 1), ("tensor", 1)), rules=sharding.LOGICAL_RULES),
        init_from=str(source), user_config={"model": dataclasses.asdict(model), "task": "share of low ids"},
        resume_invariants=("model.hidden_size", "model.num_layers"))
    objective = RegressionObjective(model)
    return run, objective, ArrayData(train_arrays, 8, seed=0), RegressionEvaluator(objective, eval_arrays, 8)


def _train(task, workdir, reports: list, preempt_after: int | None = None) -> dict:
    run, objective, data, evaluator = task

    def on_report(report):
        reports.append({k: v for k, v in report.items() if k not in TIMINGS})
        if report["step"] == preempt_after:  # as a TPU VM's preemption notice would
            os.kill(os.getpid(), signal.SIGTERM)
    results = train(run, objective, data, workdir, evaluator=evaluator, on_report=on_report)
    return {k: v for k, v in results.items() if k.removeprefix("train_") not in TIMINGS}


def _evaluations(workdir: Path) -> list[dict]:
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in records if r["prefix"] == "eval"]


def test_the_encoder_starts_from_init_from_and_the_head_fresh(task):
    run, objective, _, _ = task
    optimizer, _ = make_optimizer(run.optimizer, run.loop.num_steps)
    mesh = sharding.make_mesh(dict(run.mesh.shape))
    shardings = state_shardings(objective.init_params, optimizer, mesh, run.mesh.rules)
    fresh = create_state(objective.init_params, optimizer, shardings, run.loop.seed).params
    params = initialize_params(run.init_from, fresh, shardings.params, run.model)
    source, _, _ = load_trained_params(run.init_from)
    for got, want in zip(jax.tree.leaves(params["bert"]), jax.tree.leaves(source["bert"]), strict=True):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(jax.tree.leaves(params["regressor"]), jax.tree.leaves(fresh["regressor"]), strict=True):
        np.testing.assert_array_equal(got, want)


def test_a_task_objective_trains_evaluates_keeps_its_best_and_resumes_exactly(task, tmp_path):
    run, *_ = task
    reference: list[dict] = []
    finished = _train(task, tmp_path / "reference", reference)
    assert [r["step"] for r in reference] == list(range(1, 13))
    evaluations = _evaluations(tmp_path / "reference")
    assert [e["step"] for e in evaluations] == [3, 6, 9, 12]
    assert all(e["examples"] == 10 for e in evaluations)  # the padding rows left out
    assert evaluations[-1]["mse"] < evaluations[0]["mse"]
    assert finished["eval_mse"] == evaluations[-1]["mse"]

    # Preempted at step 6: its checkpoint is saved, its evaluation not yet made.
    resumed: list[dict] = []
    stopped = _train(task, tmp_path / "resumed", resumed, preempt_after=5)
    assert stopped["preempted_at_step"] == 6 and [r["step"] for r in resumed] == list(range(1, 7))
    assert [e["step"] for e in _evaluations(tmp_path / "resumed")] == [3]
    assert _train(task, tmp_path / "resumed", resumed) == finished
    assert resumed == reference  # every step's loss, bit for bit
    assert _evaluations(tmp_path / "resumed") == evaluations

    best = min(evaluations, key=lambda e: e["mse"])
    kept = {name: load_best_params(tmp_path / name) for name in ("reference", "resumed")}
    for params, config, step, metrics in kept.values():
        assert step == best["step"] and metrics["mse"] == best["mse"]
        assert config.task == "share of low ids" and set(params) == {"bert", "regressor"}
    for a, b in zip(jax.tree.leaves(kept["reference"][0]), jax.tree.leaves(kept["resumed"][0]), strict=True):
        np.testing.assert_array_equal(a, b)
    assert sorted(p.name for p in (tmp_path / "resumed" / "best").iterdir()) == [str(best["step"])]
