"""The launchers: the TPU pod plan printed by `launch/tpu_pod.py --dry-run` for a v4-32 slice, its
execution against a stand-in `gcloud` (no Google Cloud CLI or network needed), and the SLURM batch
script run against stand-in `srun` and `scontrol`."""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TPU_POD = REPO / "launch" / "tpu_pod.py"
SBATCH = REPO / "launch" / "slurm_gpu.sbatch"

TRICKY_SET = """train.note=it's a "quoted" value; with $HOME and spaces"""
V4_32 = ["--name", "bert-pod", "--zone", "us-central2-b", "--project", "my-project",
         "--accelerator-type", "v4-32"]
RUN_FLAGS = ["--config", "bert_base", "--workdir", "gs://my-bucket/runs/base",
             "--set", "data.train_files=gs://my-bucket/shards/",
             "--set", "data.vocab_file=gs://my-bucket/vocab.txt", "--set", TRICKY_SET]


def tpu_pod(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None
            ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TPU_POD), *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=60)


def commands(stdout: str) -> list[list[str]]:
    """The plan's commands (every line that is not a comment), split as a shell would."""
    return [shlex.split(line) for line in stdout.splitlines() if line and not line.startswith("#")]


def flag(argv: list[str], name: str) -> str:
    values = [a.split("=", 1)[1] for a in argv if a.startswith(name + "=")]
    assert len(values) == 1, (name, argv)
    return values[0]


@pytest.fixture(scope="module")
def v4_32_plan() -> subprocess.CompletedProcess:
    result = tpu_pod("all", "--dry-run", "--spot", *V4_32, *RUN_FLAGS)
    assert result.returncode == 0, result.stderr
    return result


def test_dry_run_for_v4_32_queues_four_hosts(v4_32_plan):
    assert "hosts: 4" in v4_32_plan.stdout
    create = commands(v4_32_plan.stdout)[0]
    assert create[:5] == ["gcloud", "compute", "tpus", "queued-resources", "create"]
    assert create[5] == "bert-pod" and flag(create, "--node-id") == "bert-pod"
    assert flag(create, "--accelerator-type") == "v4-32"
    assert flag(create, "--zone") == "us-central2-b" and flag(create, "--project") == "my-project"
    assert flag(create, "--runtime-version") == "tpu-ubuntu2204-base"
    assert "--spot" in create
    wait = commands(v4_32_plan.stdout)[1]
    assert wait[3:5] == ["queued-resources", "describe"]


def test_every_worker_gets_the_code_and_the_identical_pretrain_command(v4_32_plan):
    cmds = commands(v4_32_plan.stdout)
    scp = [c for c in cmds if c[:5] == ["gcloud", "compute", "tpus", "tpu-vm", "scp"]]
    ssh = [c for c in cmds if c[:5] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh"]]
    assert len(scp) == 1 and len(ssh) == 2   # Install, then train.
    for command in scp + ssh:
        assert "--worker=all" in command and flag(command, "--zone") == "us-central2-b"
    install, train = (flag(c, "--command") for c in ssh)
    assert "jax[tpu]==0.10.2" in install and "pip install" in install and "-e" in install

    # One remote command for all workers: `cd` into the code, then the pretrain argv.
    remote = shlex.split(train)
    pretrain = remote[remote.index("&&") + 1:]
    assert pretrain[0].endswith("bin/bert-jax") and pretrain[1] == "pretrain"
    assert pretrain[pretrain.index("--config") + 1] == "bert_base"
    assert pretrain[pretrain.index("--distributed") + 1] == "auto"
    assert pretrain[pretrain.index("--workdir") + 1] == "gs://my-bucket/runs/base"
    sets = [pretrain[i + 1] for i, a in enumerate(pretrain) if a == "--set"]
    assert sets == ["data.train_files=gs://my-bucket/shards/",
                    "data.vocab_file=gs://my-bucket/vocab.txt", TRICKY_SET]
    assert flag(ssh[1], "--output-directory") == "logs/bert-pod"   # <worker>.log per worker.


def test_set_values_survive_both_shells(v4_32_plan):
    """The local shell parses the gcloud line, the worker's shell parses --command: the value that
    reaches `bert-jax` is byte for byte the one given, quotes, `;` and `$HOME` included."""
    train = [c for c in commands(v4_32_plan.stdout) if "tpu-vm" in c and "ssh" in c][-1]
    remote = flag(train, "--command")
    script = remote.split(" && ", 1)[1].replace("~/bert-jax-venv/bin/bert-jax", "printf '%s\\n'")
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout
    assert TRICKY_SET in out.splitlines()


def test_process_index_of_every_worker_and_teardown_last(v4_32_plan):
    for i in range(4):
        assert f"worker {i} -> jax.process_index() {i} of 4" in v4_32_plan.stdout
    assert "worker 4" not in v4_32_plan.stdout
    last = commands(v4_32_plan.stdout)[-1]
    assert last[3:6] == ["queued-resources", "delete", "bert-pod"] and "--force" in last
    ssh_at = max(i for i, c in enumerate(commands(v4_32_plan.stdout)) if "ssh" in c)
    assert ssh_at == len(commands(v4_32_plan.stdout)) - 2


@pytest.mark.parametrize("accelerator_type, hosts", [
    ("v4-8", 1), ("v4-32", 4), ("v5p-16", 2), ("v5litepod-8", 1), ("v5litepod-16", 4),
    ("v6e-256", 64), ("v2-32", 4)])
def test_hosts_per_slice(accelerator_type, hosts):
    result = tpu_pod("up", "--dry-run", "--name", "n", "--zone", "z",
                     "--accelerator-type", accelerator_type)
    assert result.returncode == 0, result.stderr
    assert f"hosts: {hosts} " in result.stdout


@pytest.mark.parametrize("accelerator_type, message", [
    ("v7-32", "is not a TPU type this launcher knows"), ("v5e-16", "named v5litepod-N"),
    ("v4-12", "multiple of 8"), ("v5litepod-12", "one of 1, 4, 8")])
def test_unknown_accelerator_types_are_refused(accelerator_type, message):
    result = tpu_pod("up", "--dry-run", "--name", "n", "--zone", "z",
                     "--accelerator-type", accelerator_type)
    assert result.returncode == 2 and result.stdout == ""
    assert "--accelerator-type" in result.stderr and message in result.stderr


def test_a_local_workdir_is_refused():
    result = tpu_pod("run", "--dry-run", "--name", "n", "--zone", "z", "--accelerator-type",
                     "v4-32", "--config", "bert_base", "--workdir", "runs/base")
    assert result.returncode == 2 and "--workdir" in result.stderr and "gs://" in result.stderr


def _fake_gcloud(tmp_path: Path, fail_on: str = "", state: str = "") -> dict[str, str]:
    """A `gcloud` that logs its arguments and keeps the queued resource's state in a file: absent
    until `create` (then ACTIVE) or given as `state`; any call containing `fail_on` exits 7."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if state:
        (tmp_path / "state").write_text(state + "\n")
    script = bin_dir / "gcloud"
    script.write_text(f"""#!/bin/sh
echo "$*" >> {tmp_path}/calls
case "$*" in *"{fail_on or '@@never@@'}"*) exit 7;; esac
case "$*" in
  *"queued-resources describe"*)
    if [ -f {tmp_path}/state ]; then cat {tmp_path}/state; else echo "NOT_FOUND" >&2; exit 1; fi;;
  *"queued-resources create"*) echo ACTIVE > {tmp_path}/state;;
  *"queued-resources delete"*) rm {tmp_path}/state;;
esac
""")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "TMPDIR": str(tmp_path)}


def _calls(tmp_path: Path) -> list[str]:
    """`queued-resources create`, `tpu-vm ssh`, ...: the gcloud commands run, in order."""
    return [" ".join(c.split()[2:4]) for c in (tmp_path / "calls").read_text().splitlines()]


def test_execution_runs_every_step_in_order(tmp_path):
    result = tpu_pod("all", *V4_32, *RUN_FLAGS, env=_fake_gcloud(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert _calls(tmp_path) == ["queued-resources describe", "queued-resources create",
                                "queued-resources describe", "tpu-vm scp", "tpu-vm ssh",
                                "tpu-vm ssh", "queued-resources delete"]
    assert (tmp_path / "bert-jax-bert-pod.tar.gz").stat().st_size > 0   # `git archive` ran.
    assert (tmp_path / "logs" / "bert-pod").is_dir()


@pytest.mark.parametrize("state, expected", [
    ("ACTIVE", ["queued-resources describe", "queued-resources describe"]),   # Reused.
    ("SUSPENDED", ["queued-resources describe", "queued-resources delete",  # Preempted: replaced.
                   "queued-resources create", "queued-resources describe"])])
def test_up_reuses_a_live_slice_and_replaces_a_preempted_one(tmp_path, state, expected):
    result = tpu_pod("up", *V4_32, env=_fake_gcloud(tmp_path, state=state), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert _calls(tmp_path) == expected


def test_execution_stops_at_the_first_failure(tmp_path):
    result = tpu_pod("all", *V4_32, *RUN_FLAGS, env=_fake_gcloud(tmp_path, fail_on="pretrain"),
                     cwd=tmp_path)
    assert result.returncode == 7
    assert _calls(tmp_path)[-1] == "tpu-vm ssh" and "queued-resources delete" not in _calls(tmp_path)
    assert "tpu_pod.py down --name bert-pod" in result.stderr   # The slice is still up.


def test_best_effort_goes_through_gcloud_alpha():
    result = tpu_pod("up", "--dry-run", "--best-effort", *V4_32)
    create = commands(result.stdout)[0]
    assert create[:3] == ["gcloud", "alpha", "compute"] and "--best-effort" in create


def test_slurm_script_parses_and_sruns_pretrain_on_every_task(tmp_path):
    assert subprocess.run(["bash", "-n", str(SBATCH)]).returncode == 0
    text = SBATCH.read_text()
    assert "srun" in text and "--distributed auto" in text
    assert "#SBATCH --ntasks-per-node=8" in text and "#SBATCH --gpus-per-node=8" in text

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("srun", 'for a in "$@"; do echo "$a"; done'),
                       ("scontrol", "echo node001; echo node002")):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "SLURM_JOB_NUM_NODES": "2", "SLURM_NTASKS": "16", "SLURM_JOB_NODELIST": "node[001-002]",
           "CONFIG": "bert_base", "WORKDIR": "/shared/runs/base",
           "EXTRA_SETS": "data.train_files=/shared/shards/ model.dtype=bfloat16"}
    out = subprocess.run(["bash", str(SBATCH)], capture_output=True, text=True, env=env, check=True)
    argv = out.stdout.splitlines()[1:]
    pretrain = argv[argv.index("bert-jax"):]
    assert pretrain == ["bert-jax", "pretrain", "--config", "bert_base", "--workdir",
                        "/shared/runs/base", "--distributed", "auto",
                        "--set", "data.train_files=/shared/shards/", "--set", "model.dtype=bfloat16"]

    del env["CONFIG"]
    missing = subprocess.run(["bash", str(SBATCH)], capture_output=True, text=True, env=env)
    assert missing.returncode != 0 and "CONFIG" in missing.stderr


def test_the_pod_command_runs_as_one_process_where_there_is_no_cluster():
    """`--distributed auto`, what the launchers pass, on a machine where JAX detects no cluster
    (no SLURM or TPU pod): one process, with a warning, so the pod's command runs unchanged."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "TPU_", "OMPI_"))}
    code = ("import logging; logging.basicConfig(); from bert_jax.parallel import distributed; "
            "distributed.initialize('auto'); import jax; print(jax.process_count(), jax.process_index())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "0"]
    assert "JAX detects no cluster here" in done.stderr
