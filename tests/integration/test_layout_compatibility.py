"""A work directory and shards written before the package layout of docs/architecture.md still
resume and load after it: `tests/data/pre_layout/` was written by commit c59e4df (the last flat
layout) with `make_with_old_code.py` beside it, which also recorded what that code computed from
them: the losses of steps 5 and 6 when the old code continued the run from its checkpoint of
step 4 (dropout on, so the dropout keys and the data position count too), and fill-mask
predictions."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "pre_layout"


@pytest.fixture
def pre_layout(tmp_path, monkeypatch) -> dict:
    """A copy of the old work directory and shards; the test runs inside it, since the run's
    config names its shards and vocab by relative paths."""
    shutil.copytree(FIXTURE, tmp_path / "pre_layout")
    monkeypatch.chdir(tmp_path / "pre_layout")
    return json.loads((FIXTURE / "expected.json").read_text())


def test_the_old_checkpoint_resumes_to_the_losses_the_old_code_computed(pre_layout):
    from bert_jax.config.files import load_config
    from bert_jax.training.loop import train_and_evaluate

    config = load_config("cpu_demo", pre_layout["overrides"] + ["train.num_steps=6"])
    reports = []
    train_and_evaluate(config, "workdir", on_report=reports.append)
    assert [r["step"] for r in reports] == [5, 6]  # resumed from the old checkpoint of step 4
    assert [r["loss"] for r in reports] == pre_layout["losses_of_steps_5_and_6_resumed"]


def test_the_old_checkpoint_loads_for_inference_with_the_old_predictions(pre_layout):
    from bert_jax.inference.fill_mask import FillMask

    fill = FillMask.from_workdir("workdir")
    expected = pre_layout["fill_mask"]
    for text, old in zip(expected["texts"], expected["predictions"]):
        new = fill(text, top_k=3)[0]
        assert [[p["token"] for p in mask] for mask in new] == [[p["token"] for p in mask] for mask in old]
        assert [[p["sequence"] for p in mask] for mask in new] == [[p["sequence"] for p in mask] for mask in old]
        np.testing.assert_allclose([[p["score"] for p in mask] for mask in new],
                                   [[p["score"] for p in mask] for mask in old], rtol=1e-6)
