"""The package as users install it: a wheel built from this checkout and installed outside the
source tree (`pip install --no-deps --target`, on top of the test environment's dependencies)
carries its configs, runs the demo and plans a pretraining run from another directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_a_wheel_installed_elsewhere_carries_its_configs_and_runs(tmp_path):
    wheels, site, elsewhere = tmp_path / "wheels", tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    # No build isolation: the build uses the installed setuptools, so no network is needed.
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(wheels), str(REPO)], check=True, timeout=600, cwd=tmp_path)
    (wheel,) = wheels.glob("bert_jax-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site),
                    str(wheel)], check=True, timeout=600, cwd=tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(site)}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, *args], cwd=elsewhere, env=env, capture_output=True,
                              text=True, timeout=1200)

    # The wheel's code and configs are what run, not the checkout's.
    where = run("-c", "import bert_jax, bert_jax.config.files as f; print(bert_jax.__file__); print(f.CONFIG_DIR)")
    assert where.returncode == 0, where.stderr
    code, configs = where.stdout.split()
    assert code.startswith(str(site)) and configs == str(site / "bert_jax" / "configs")
    assert sorted(p.stem for p in (site / "bert_jax" / "configs").glob("*.py")) == sorted(
        p.stem for p in (REPO / "configs").glob("*.py"))

    command = str(site / "bin" / "bert-jax")
    demo = run(command, "demo", "--steps", "20", "--workdir", "demo")
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "held-out" in demo.stdout + demo.stderr

    shards = elsewhere / "demo" / "data" / "train"
    plan = run(command, "pretrain", "--config", "bert_tiny", "--dry-run",
               "--set", f"data.train_files={shards}", "--set", f"data.vocab_file={elsewhere / 'demo' / 'vocab.txt'}",
               "--set", "data.max_seq_length=64", "--set", "data.max_predictions_per_seq=10",
               "--set", "train.global_batch_size=8")
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert "parameters: 4,433,468" in plan.stdout  # BERT-Tiny with BERT's 30,522-token vocab
