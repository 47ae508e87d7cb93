"""The fine-tuning step on 8 devices: each task's objective (classification, regression, tagging,
QA), trained by the loop's jitted step (`training.loop.jit_train_step`) on a (2, 2, 2) mesh over the
data, fsdp and tensor axes, gives the losses of one device step by step, with dropout on and a partial
batch. Needs 8 devices (`XLA_FLAGS=--xla_force_host_platform_device_count=8`): the 8-device
runner (test_eight_device_unit_tests.py) runs it in CI; in a one-device session it skips."""

from __future__ import annotations

import jax
import pytest

from bert_jax.config.run import LoopConfig, OptimizerConfig
from bert_jax.model import BertConfig
from bert_jax.parallel import sharding
from bert_jax.state.optimizer import make_optimizer
from bert_jax.state.train_state import create_state, state_shardings
from bert_jax.tasks.finetuning import task_objective
from bert_jax.training.loop import jit_train_step
from input_pipeline.tasks.labels import LabelList
from tests.support.task_models import training_batches

# 8 heads and sizes divisible by 8, so that every axis splits on every mesh.
CONFIG = BertConfig(vocab_size=96, hidden_size=64, num_layers=2, num_heads=8, intermediate_size=128,
                    max_position_embeddings=64, hidden_dropout_rate=0.1, attention_dropout_rate=0.1)
# One mesh over all three axes: each compile costs seconds, and (2,2,2) splits the batch over data
# and fsdp, the parameters over fsdp and the heads and feed-forward over tensor at once.
MESHES = ({"data": 2, "fsdp": 2, "tensor": 2},)
STEPS = 10  # training_batches' step 9 is partial
# task -> (the batches' case in tests.support.task_models, the labels)
TASKS = {"classification": ("classification", LabelList(("a", "b", "c"))),
         "regression": ("regression", None),
         "tagging": ("token_classification", LabelList(tuple("abcde"))),
         "qa": ("question_answering", None)}


def _losses(task: str, mesh_shape: dict[str, int], devices) -> list[dict[str, float]]:
    case, labels = TASKS[task]
    objective = task_objective(task, CONFIG, labels)
    mesh = sharding.make_mesh(mesh_shape, devices)
    optimizer, schedule = make_optimizer(OptimizerConfig(learning_rate=1e-3, warmup_steps=2), STEPS)
    shardings = state_shardings(objective.init_params, optimizer, mesh)
    state = create_state(objective.init_params, optimizer, shardings, seed=0)
    step = jit_train_step(objective, optimizer, schedule, LoopConfig(num_steps=STEPS, global_batch_size=8),
                          mesh, sharding.LOGICAL_RULES, shardings)
    losses = []
    for batch in training_batches(case, CONFIG.vocab_size, len(labels) if labels else 1)[:STEPS]:
        state, metrics = step(state, jax.device_put(batch, sharding.batch_sharding(mesh)))
        losses.append({k: float(v) for k, v in jax.device_get(metrics).items()})
    return losses


@pytest.mark.skipif(jax.device_count() < 8, reason="needs 8 devices: XLA_FLAGS=--xla_force_host_platform_device_count=8")
@pytest.mark.parametrize("task", TASKS)
def test_the_finetuning_step_on_a_mesh_equals_one_device(task):
    reference = _losses(task, {"data": 1, "fsdp": 1, "tensor": 1}, jax.devices()[:1])
    assert reference[0]["loss"] != reference[-1]["loss"]  # it trains
    for shape in MESHES:
        for step, (got, want) in enumerate(zip(_losses(task, shape, jax.devices()[:8]), reference, strict=True)):
            for key in ("loss", "grad_norm"):
                assert got[key] == pytest.approx(want[key], rel=1e-5), (shape, step, key)
