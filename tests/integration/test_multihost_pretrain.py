"""Multi-host `train_and_evaluate`: 2 local processes x 4 CPU devices pretrain on the tiny corpus.

Each process reads its own shard files (2 of the 4), the loop assembles global batches, evaluates
on the held-out shards mid-way and at the end, and saves checkpoints; then the same command again
finds the run finished in both processes and does nothing, and one process with 8 devices
evaluates the same checkpoint (a copy of the work directory without its final evaluation). Runs in subprocesses (`tests/support/multihost_worker.py`), since the fake
devices must be requested before JAX starts.
"""

from __future__ import annotations

import json
import math
import os
import shutil

import pytest

from tests.support.multihost_worker import run_workers

STEPS = 6
TIMEOUT_S = 150


@pytest.fixture(scope="module")
def pretrain(tiny_run_overrides, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("multihost_pretrain")
    workdir = root / "workdir"
    overrides = list(tiny_run_overrides) + [
        f"train.num_steps={STEPS}", "optimizer.warmup_steps=2", "train.log_every=2",
        "train.checkpoint_every=3", "train.eval_every=3", "train.eval_steps=0",
        "mesh.shape.fsdp=4"]  # mesh (2,4,1): data across the processes, fsdp within each
    args = ("--overrides", json.dumps(overrides), "--workdir", str(workdir))
    two = run_workers("pretrain", root / "two", *args, "--again", "1", num_processes=2, timeout=TIMEOUT_S)
    # Without metrics.jsonl the final evaluation is not recorded: the finished run makes it.
    shutil.copytree(workdir, root / "copy", ignore=shutil.ignore_patterns("metrics.jsonl", "run.lock"))
    one = run_workers("pretrain", root / "one", "--overrides", json.dumps(overrides),
                      "--workdir", str(root / "copy"), num_processes=1, timeout=TIMEOUT_S)
    return {"workdir": workdir, "two": two, "one": one, "overrides": overrides}


# Each process times its own steps: throughputs, step times and MFU are per process, not global.
def _is_timing(key: str) -> bool:
    return any(word in key for word in ("second", "mfu", "flops", "time", "eta"))


def _close(a: dict, b: dict, rel: float) -> bool:
    a, b = ({k: v for k, v in d.items() if not _is_timing(k)} for d in (a, b))
    return a.keys() == b.keys() and all(math.isclose(a[k], b[k], rel_tol=rel, abs_tol=1e-9) for k in a)


def test_both_processes_report_the_same_global_metrics(pretrain):
    first, second = pretrain["two"]
    assert [p["process_index"] for p in (first, second)] == [0, 1]
    assert first["process_count"] == 2 and first["devices"] == 8
    results = first["results"][0]
    assert {"train_loss", "train_mlm_accuracy", "eval_loss", "eval_mlm_accuracy",
            "eval_examples"} <= results.keys()
    assert all(math.isfinite(v) for v in results.values())
    assert _close(first["results"][0], second["results"][0], 1e-6)
    # Every logged interval (steps 2, 4, 6), on both processes; none from the second call.
    assert [r["step"] for r in first["reports"]] == [2, 4, 6]
    for a, b in zip(first["reports"], second["reports"], strict=True):
        assert _close(a, b, 1e-6)


def test_evaluation_covers_every_held_out_example_once(pretrain, tiny_corpus):
    from input_pipeline.reading.reader import count_examples, list_shards

    held_out = count_examples(list_shards((str(tiny_corpus["held_out"]),)))
    assert held_out > 16
    for process in pretrain["two"] + pretrain["one"]:
        assert process["results"][-1]["eval_examples"] == held_out


def test_checkpoints_hold_every_process_data_position(pretrain):
    checkpoints = pretrain["workdir"] / "checkpoints"
    assert sorted(int(p.name) for p in checkpoints.iterdir() if p.name.isdigit()) == [3, 6]
    for step in (3, 6):
        data = checkpoints / str(step) / "data"
        assert sorted(p.name for p in data.iterdir() if p.name.startswith("process_")) == [
            "process_0-of-2", "process_1-of-2"]
        for process in ("process_0-of-2", "process_1-of-2"):
            assert json.loads((data / process / "position.json").read_text())["global_batch_size"] == 16


def test_only_process_0_writes_the_config(pretrain):
    first, second = pretrain["two"]
    config_json = str(pretrain["workdir"] / "config.json")
    assert first["save_config_calls"] == [config_json]  # the second call, on a finished run, writes nothing
    assert second["save_config_calls"] == []
    saved = json.loads(open(config_json).read())
    assert saved["train"]["num_steps"] == STEPS and saved["mesh"]["shape"]["fsdp"] == 4
    assert not [name for name in os.listdir(pretrain["workdir"]) if ".tmp-" in name]


def test_a_finished_run_started_again_returns_its_results_in_both_processes(pretrain):
    for process in pretrain["two"]:
        first, again = process["results"]
        # Read back from metrics.jsonl: nothing trained or evaluated. Its timings are process
        # 0's, which process 1's own first results need not match.
        assert _close(first, again, 1e-12)


def test_one_process_evaluates_the_two_process_checkpoint_the_same(pretrain):
    """1 process x 8 devices reads all 4 held-out files in other batches: the same sums."""
    [one] = pretrain["one"]
    two = {k: v for k, v in pretrain["two"][0]["results"][0].items() if k.startswith("eval_")}
    assert one["process_count"] == 1 and one["devices"] == 8
    assert _close(one["results"][0], two, 1e-5)


def test_the_two_process_checkpoint_exports_to_transformers(pretrain, tmp_path):
    """The checkpoint the two processes wrote together (each process its half of every fsdp-
    sharded tensor) is restored in this one process and exported; `transformers` loads the export
    and, on text its own tokenizer encodes, gives our logits on the restored parameters."""
    import numpy as np
    import torch
    import transformers

    from bert_jax.config.validation import bert_config
    from bert_jax.convert.hf_export import export_to_huggingface
    from bert_jax.model import BertForPreTraining
    from bert_jax.state.trained_params import load_trained_params

    params, config, step = load_trained_params(pretrain["workdir"])
    assert step == STEPS and config.mesh.shape.fsdp == 4
    model_config = bert_config(config)
    out = export_to_huggingface(params, model_config, config.data.vocab_file, config.data.do_lower_case,
                                tmp_path / "hf")

    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    batch = tokenizer(["Return the number of items in a container.", "Raise an exception."],
                      ["The default is None.", "This module provides access to the operating system."],
                      padding=True, return_tensors="np")
    ids, mask, segments = (batch[k].astype(np.int32) for k in ("input_ids", "attention_mask", "token_type_ids"))
    assert not mask.all() and segments.any()  # one row padded; second segments present
    ours = BertForPreTraining(model_config).apply({"params": params}, ids, mask, segments)
    hf = transformers.BertForPreTraining.from_pretrained(out).eval()
    with torch.no_grad():
        theirs = hf(**{k: torch.tensor(v, dtype=torch.long) for k, v in batch.items()})
    valid = mask.astype(bool)
    np.testing.assert_allclose(np.asarray(ours["mlm_logits"])[valid],
                               theirs.prediction_logits.numpy()[valid], atol=1e-4, rtol=0)
    np.testing.assert_allclose(np.asarray(ours["nsp_logits"]), theirs.seq_relationship_logits.numpy(),
                               atol=1e-4, rtol=0)
