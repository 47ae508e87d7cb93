"""Checkpoints: a run killed with SIGKILL and started again resumes from its latest checkpoint and
ends with exactly the parameters of a run that was never interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np

from bert_jax.state.trained_params import load_trained_params


def _pretrain_command(workdir, overrides) -> list[str]:
    command = [sys.executable, "-m", "bert_jax.cli", "pretrain", "--config", "cpu_demo",
               "--workdir", str(workdir)]
    for item in overrides:
        command += ["--set", item]
    return command


def test_killed_run_resumes_to_the_same_parameters(tiny_run_overrides, tmp_path):
    overrides = tiny_run_overrides + ("train.num_steps=120", "train.checkpoint_every=20",
                                      "train.log_every=20", "data.eval_files=''")
    killed, uninterrupted = tmp_path / "killed", tmp_path / "uninterrupted"

    process = subprocess.Popen(_pretrain_command(killed, overrides), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    first_checkpoint = killed / "checkpoints" / "20"
    deadline = time.monotonic() + 240
    while not first_checkpoint.is_dir() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    output, _ = process.communicate()
    assert process.returncode == -signal.SIGKILL, output
    saved = sorted(int(p.name) for p in (killed / "checkpoints").iterdir() if p.name.isdigit())
    assert saved and saved[-1] < 120, f"the run should have been killed mid-way: {saved}"

    resumed = subprocess.run(_pretrain_command(killed, overrides), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming from the checkpoint of step {saved[-1]}" in resumed.stderr
    assert "train step 120/120" in resumed.stderr

    straight = subprocess.run(_pretrain_command(uninterrupted, overrides), capture_output=True, text=True)
    assert straight.returncode == 0, straight.stderr
    assert "resuming" not in straight.stderr

    params_resumed, config, step = load_trained_params(killed)
    params_straight, _, _ = load_trained_params(uninterrupted)
    assert step == 120
    for a, b in zip(jax.tree.leaves(params_resumed), jax.tree.leaves(params_straight)):
        np.testing.assert_array_equal(a, b)
    # The final interval's metrics agree too (same data, same dropout keys, same updates).
    final = [line for line in resumed.stderr.splitlines() if "train step 120/120" in line]
    expected = [line for line in straight.stderr.splitlines() if "train step 120/120" in line]
    assert final[0].split("|")[1:4] == expected[0].split("|")[1:4]

    # The run's config is saved beside the checkpoints, and inside each.
    saved_config = json.loads((killed / "config.json").read_text())
    assert saved_config["train"]["num_steps"] == 120
    assert config.train.checkpoint_every == 20


def test_completed_run_does_not_train_again(tiny_run_config, tmp_path):
    from bert_jax.training.loop import train_and_evaluate

    config = tiny_run_config(num_steps=40, log_every=20)
    train_and_evaluate(config, tmp_path)
    reports = []
    train_and_evaluate(config, tmp_path, on_report=reports.append)
    assert reports == []
    assert load_trained_params(tmp_path)[2] == 40
