"""A `bert-jax finetune` killed with SIGKILL resumes to the same numbers: real subprocesses
fine-tune the tiny random BERT on pair classification (dropout 0.1, an evaluation every epoch);
one is killed between two checkpoints and started again, and from its checkpoint on it reports
bitwise the training metrics and the evaluations of an uninterrupted run, and keeps bitwise the
same best parameters. (The pattern of test_resilience.py, for pretraining.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from bert_jax.state.best import load_best_params
from tests.support import finetuning_files

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = 240
EPOCHS = 60  # x 4 steps: long enough to be killed mid-way
TIMING_KEYS = {"steps_per_second", "step_seconds", "sequences_per_second", "tokens_per_second",
               "tflops_per_second", "mfu", "compile_seconds"}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("finetune_recovery")
    finetuning_files.write_tiny_model(root)
    finetuning_files.write_classification(root / "train.jsonl", 27, seed=1)
    finetuning_files.write_classification(root / "eval.jsonl", 13, seed=2)
    return root


def _env() -> dict[str, str]:
    env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env.pop("XLA_FLAGS", None)  # one CPU device
    return env


def _command(files: Path, workdir: Path) -> list[str]:
    settings = ["train.global_batch_size=8", "optimizer.learning_rate=1e-3", "task.max_seq_length=24",
                f"train.num_epochs={EPOCHS}", "train.checkpoint_every=10", "train.keep_checkpoints=10",
                "train.log_every=1"]
    return [sys.executable, "-m", "bert_jax.cli", "finetune", "--task", "classification",
            "--init-from", str(files / "model"), "--train", str(files / "train.jsonl"),
            "--eval", str(files / "eval.jsonl"), "--workdir", str(workdir),
            *(arg for setting in settings for arg in ("--set", setting))]


def _rows(workdir: Path) -> list[dict]:
    path = workdir / "metrics.jsonl"
    if not path.exists():
        return []
    lines = [line for line in path.read_text().splitlines() if line.endswith("}")]
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING_KEYS} for line in lines]


def _checkpoints(workdir: Path) -> list[int]:
    directory = workdir / "checkpoints"
    return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit()) if directory.exists() else []


def test_a_killed_finetuning_run_resumes_to_bitwise_the_same_numbers(files, tmp_path):
    reference, workdir = tmp_path / "reference", tmp_path / "killed"
    done = subprocess.run(_command(files, reference), env=_env(), capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]
    expected = _rows(reference)
    assert len([r for r in expected if r["prefix"] == "train"]) == EPOCHS * 4

    with open(tmp_path / "killed.log", "w") as log:
        process = subprocess.Popen(_command(files, workdir), env=_env(), stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + TIMEOUT_S
    while not (_checkpoints(workdir) and any(r["step"] >= 25 for r in _rows(workdir))):
        assert process.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "timed out waiting for step 25"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = max(r["step"] for r in _rows(workdir))
    assert killed_at < EPOCHS * 4 and not (workdir / "results.json").exists()

    done = subprocess.run(_command(files, workdir), env=_env(), capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming from the checkpoint of step" in done.stderr
    # Rows after the checkpoint it resumed from were reported again, and replaced.
    assert _rows(workdir) == expected
    results = [json.loads((w / "results.json").read_text()) for w in (reference, workdir)]
    assert results[0] == results[1]
    kept = [load_best_params(w) for w in (reference, workdir)]
    assert kept[0][2] == kept[1][2] == results[0]["best_step"]
    for a, b in zip(jax.tree.leaves(kept[0][0]), jax.tree.leaves(kept[1][0]), strict=True):
        np.testing.assert_array_equal(a, b)
