"""The tests that need 8 devices run, and pass, in CI.

The suite runs in one process whose JAX has started with the devices it has (one CPU, unless
`XLA_FLAGS=--xla_force_host_platform_device_count=8` was set before): there the mesh tests of
global negatives, GradCache, the Sentence-BERT ranking objectives and the fine-tuning step skip.
Here they run in a pytest subprocess that asks for 8 fake CPU devices, and each must pass: a skip
fails this test as a failure would.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

REPO = Path(__file__).resolve().parents[2]
MESH_TESTS = (
    "tests/unit/test_global_negatives.py::test_sharded_batch_on_a_mesh_gives_the_whole_batch_loss",
    "tests/integration/test_gradient_cache.py::test_gradient_cache_with_global_negatives_on_a_mesh",
    "tests/integration/test_sentence_objectives.py::test_ranking_on_a_mesh_equals_one_device",
    "tests/integration/test_finetuning_mesh.py::test_the_finetuning_step_on_a_mesh_equals_one_device",
)
# 3 meshes x 2 numbers of negatives, GradCache on one mesh, the ranking objectives (pairs,
# triplets) with and without the gradient cache, and the four fine-tuning objectives.
EXPECTED = 15


def test_the_8_device_unit_tests_pass_on_8_devices(tmp_path):
    env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2")
    inherited = re.sub(r"--xla_force_host_platform_device_count=\S+", "", env.get("XLA_FLAGS", ""))
    env["XLA_FLAGS"] = f"{inherited} --xla_force_host_platform_device_count=8".strip()
    report = tmp_path / "report.xml"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs",
         f"--junitxml={report}", *MESH_TESTS],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    output = result.stdout[-5000:] + result.stderr[-2000:]
    assert result.returncode == 0, output

    cases = ElementTree.parse(report).getroot().iter("testcase")
    outcomes = {f"{case.get('classname')}::{case.get('name')}":
                [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
                for case in cases}
    assert len(outcomes) == EXPECTED, f"expected {EXPECTED} tests, ran {sorted(outcomes)}\n{output}"
    not_passed = {name: tags for name, tags in outcomes.items() if tags}
    assert not not_passed, f"did not pass on 8 devices: {not_passed}\n{output}"
