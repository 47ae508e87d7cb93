#!/usr/bin/env python3
"""Pretrains bert-jax on a Cloud TPU pod slice: queue the slice, ship the code, train, tear down.

  python launch/tpu_pod.py up   --name NAME --zone ZONE --accelerator-type v4-32 [--spot]
  python launch/tpu_pod.py run  --name NAME --zone ZONE --accelerator-type v4-32 \\
      --config bert_base --workdir gs://BUCKET/runs/base \\
      --set data.train_files=gs://BUCKET/shards/ --set data.vocab_file=gs://BUCKET/vocab.txt
  python launch/tpu_pod.py down --name NAME --zone ZONE
  python launch/tpu_pod.py all  ...   # up, run, down in one go

`up` creates the slice through a queued resource (or reuses one of that name) and waits until it
is ACTIVE. `run` copies a tarball of this git checkout to every worker, installs it with the JAX TPU
wheel, and starts the same `bert-jax pretrain --distributed auto` on every worker; each worker's
output goes to LOG_DIR/<worker>.log on this machine. `down` deletes the queued resource and its
VMs. With --dry-run the gcloud commands are printed instead of run. Commands run one at a time,
their output streamed, and the first failure stops the launcher with its exit status.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

# The TPU images ship Python 3.10 and jax 0.10.2 needs 3.11 or newer, so the workers get a
# uv-managed interpreter of the version the project is tested with.
PYTHON_VERSION = "3.11"
REMOTE_TARBALL = "bert-jax.tar.gz"   # In each worker's home directory.
REMOTE_CODE = "~/bert-jax"
REMOTE_VENV = "~/bert-jax-venv"
POLL_SECONDS = 30


@dataclasses.dataclass(frozen=True)
class Family:
    """How one TPU generation's accelerator type `<prefix>-N` maps to chips and hosts."""
    counts: str                 # What N counts: "cores" (2 TensorCores per chip) or "chips".
    chips_per_host: int         # Chips on each VM of a multi-host slice.
    single_host_chips: int      # The largest slice that is one VM.
    runtime_version: str        # Default --runtime-version (a JAX-ready image for the family).


# Hosts per slice. v2/v3/v4/v5p name TensorCores (2 per chip) and put 4 chips on a VM: v4-32 is 16
# chips on 4 hosts. v5e (v5litepod-N) and v6e name chips: up to 8 chips is one VM, larger slices
# are VMs of 4 chips (v5litepod-16 is 4 hosts of 4 chips).
FAMILIES: dict[str, Family] = {
    "v2": Family("cores", 4, 4, "tpu-ubuntu2204-base"),
    "v3": Family("cores", 4, 4, "tpu-ubuntu2204-base"),
    "v4": Family("cores", 4, 4, "tpu-ubuntu2204-base"),
    "v5p": Family("cores", 4, 4, "v2-alpha-tpuv5"),
    "v5litepod": Family("chips", 4, 8, "v2-alpha-tpuv5-lite"),
    "v6e": Family("chips", 4, 8, "v2-alpha-tpuv6e"),
}

# The slice sizes of the chip-counted families (topologies 1x1, 2x2, 2x4, 4x4 ... 16x16).
CHIP_SLICES = (1, 4, 8, 16, 32, 64, 128, 256)

# States of a queued resource that will never become ACTIVE again: its VMs were preempted or
# deleted (SUSPENDED) or never provisioned (FAILED). Such a resource holds no VMs and only blocks
# the name; GOING_STATES are on their way there.
DEAD_STATES = ("FAILED", "SUSPENDED")
GOING_STATES = ("SUSPENDING", "DELETING")


@dataclasses.dataclass(frozen=True)
class Slice:
    accelerator_type: str
    family: Family
    chips: int
    hosts: int


def slice_shape(accelerator_type: str) -> Slice:
    """Chips and hosts of an accelerator type such as v4-32; ValueError for an unknown type."""
    prefix, _, size = accelerator_type.rpartition("-")
    if prefix not in FAMILIES or not size.isdigit():
        hint = " (v5e slices are named v5litepod-N)" if prefix == "v5e" else ""
        raise ValueError(f"--accelerator-type {accelerator_type!r} is not a TPU type this launcher "
                         f"knows{hint}; use one of {', '.join(f'{p}-N' for p in FAMILIES)}, or add "
                         "its family to FAMILIES in launch/tpu_pod.py.")
    family, n = FAMILIES[prefix], int(size)
    if family.counts == "cores":
        # N counts TensorCores (2 per chip) and slices are whole hosts of 4 chips: N = 8, 16, 32...
        if n == 0 or n % 8:
            raise ValueError(f"--accelerator-type {accelerator_type!r}: {prefix}-N counts TensorCores, "
                             f"8 per host, so N must be a multiple of 8 (e.g. {prefix}-8, {prefix}-32).")
        chips = n // 2
    else:
        if n not in CHIP_SLICES:
            raise ValueError(f"--accelerator-type {accelerator_type!r}: {prefix}-N counts chips and "
                             f"N must be one of {', '.join(map(str, CHIP_SLICES))}.")
        chips = n
    hosts = 1 if chips <= family.single_host_chips else chips // family.chips_per_host
    return Slice(accelerator_type, family, chips, hosts)


def project_jax_version() -> str:
    """The exact jax pin of pyproject.toml, so the TPU wheel matches what the project tests."""
    text = (REPO_ROOT / "pyproject.toml").read_text()
    match = re.search(r'"jax==([^"]+)"', text)
    if not match:
        raise ValueError("pyproject.toml has no exact \"jax==X\" pin for the jax[tpu] install.")
    return match.group(1)


@dataclasses.dataclass
class Step:
    """One command of the plan, with comment lines for the dry run.

    `execute` replaces running `argv` when the step needs logic around its command (reuse an
    existing slice, poll until ACTIVE); the dry run always shows `argv`.
    """
    title: str
    argv: list[str]
    notes: list[str] = dataclasses.field(default_factory=list)
    execute: Callable[[], None] | None = None
    phase: str = ""             # up, run or down: which subcommand the step belongs to.


def gcloud(*args: str, project: str | None = None, alpha: bool = False) -> list[str]:
    """A gcloud command line; without --project gcloud uses its configured project."""
    return ["gcloud", *(["alpha"] if alpha else []), *args,
            *([f"--project={project}"] if project else [])]


def describe_argv(args: argparse.Namespace) -> list[str]:
    """Prints the queued resource's state and nothing else."""
    return gcloud("compute", "tpus", "queued-resources", "describe", args.name,
                  f"--zone={args.zone}", "--format=value(state.state)", project=args.project)


def queued_resource_state(args: argparse.Namespace) -> str | None:
    """The queued resource's state (ACTIVE, WAITING_FOR_RESOURCES, ...), None if it does not exist."""
    result = subprocess.run(describe_argv(args), capture_output=True, text=True)
    if result.returncode != 0:
        if "NOT_FOUND" in result.stderr or "not found" in result.stderr.lower():
            return None
        sys.stderr.write(result.stderr)
        raise RuntimeError(f"could not describe queued resource {args.name!r} (see above).")
    return result.stdout.strip()


def up_steps(args: argparse.Namespace, shape: Slice) -> list[Step]:
    """Queue the slice (or reuse it) and wait until it is ACTIVE."""
    runtime = args.runtime_version or shape.family.runtime_version
    create = gcloud("compute", "tpus", "queued-resources", "create", args.name,
                    f"--node-id={args.name}", f"--zone={args.zone}",
                    f"--accelerator-type={shape.accelerator_type}", f"--runtime-version={runtime}",
                    *(["--spot"] if args.spot else []), *(["--best-effort"] if args.best_effort else []),
                    project=args.project, alpha=args.best_effort)  # --best-effort is alpha-only.
    delete = down_argv(args)

    def create_or_reuse() -> None:
        state = queued_resource_state(args)
        while state in GOING_STATES:
            print(f"{args.name}: {state}; checking again in {POLL_SECONDS} s", flush=True)
            time.sleep(POLL_SECONDS)
            state = queued_resource_state(args)
        if state in DEAD_STATES:
            print(f"queued resource {args.name} is {state} (preempted or never provisioned): "
                  "deleting it and queueing a new one", flush=True)
            run_argv(delete)
            state = None
        if state is None:
            run_argv(create)
        else:
            print(f"reusing queued resource {args.name} ({state})", flush=True)

    def wait_until_active() -> None:
        while (state := queued_resource_state(args)) != "ACTIVE":
            if state is None or state in DEAD_STATES + GOING_STATES:
                raise RuntimeError(f"queued resource {args.name} is {state or 'gone'}, not coming up; "
                                   "run `up` again to queue a new one.")
            print(f"{args.name}: {state}; checking again in {POLL_SECONDS} s", flush=True)
            time.sleep(POLL_SECONDS)
        print(f"{args.name}: ACTIVE", flush=True)

    return [
        Step(f"Queue the {shape.accelerator_type} slice", create,
             [f"skipped if queued resource {args.name} exists; a {' or '.join(DEAD_STATES)} one "
              "(e.g. preempted) is deleted first"], create_or_reuse),
        Step("Wait until the slice is ACTIVE", describe_argv(args),
             [f"polled every {POLL_SECONDS} s; queueing can take minutes to hours"], wait_until_active),
    ]


def tarball_path(name: str) -> str:
    """Where `git archive` writes the code for slice `name` on this machine."""
    return str(Path(tempfile.gettempdir()) / f"bert-jax-{name}.tar.gz")


def worker_ssh(args: argparse.Namespace, command: str, *extra: str) -> list[str]:
    """Runs `command` through each worker's login shell, on all workers at once."""
    return gcloud("compute", "tpus", "tpu-vm", "ssh", args.name, f"--zone={args.zone}",
                  "--worker=all", f"--command={command}", *extra, project=args.project)


def install_command(jax_version: str) -> str:
    """Unpacks the code and installs it with the JAX TPU wheel, in a venv of PYTHON_VERSION."""
    uv = "~/.local/bin/uv"
    return " && ".join([
        f"rm -rf {REMOTE_CODE}",   # No files left over from an older checkout.
        f"tar -xzf ~/{REMOTE_TARBALL} -C ~",
        "python3 -m pip install --user --quiet --upgrade uv",
        f"{{ [ -x {REMOTE_VENV}/bin/python ] || {uv} venv --python {PYTHON_VERSION} {REMOTE_VENV}; }}",
        f"{uv} pip install --python {REMOTE_VENV}/bin/python -e {REMOTE_CODE} "
        + shlex.quote(f"jax[tpu]=={jax_version}"),
    ])


def pretrain_argv(args: argparse.Namespace) -> list[str]:
    """The command every worker runs; identical on all of them."""
    argv = ["bert-jax", "pretrain", "--config", args.config, "--workdir", args.workdir,
            "--distributed", "auto"]
    for item in args.set:
        argv += ["--set", item]
    return argv


def run_steps(args: argparse.Namespace, shape: Slice) -> list[Step]:
    """Ship the committed code, install it, and start the same training command on every worker."""
    tarball = tarball_path(args.name)
    jax_version = project_jax_version()
    install = install_command(jax_version)
    remote_train = f"cd {REMOTE_CODE} && {REMOTE_VENV}/bin/" + shlex.join(pretrain_argv(args))
    workers = [f"  worker {i} -> jax.process_index() {i} of {shape.hosts}"
               + (" (coordinator)" if i == 0 else "") for i in range(shape.hosts)]
    return [
        Step("Pack the committed tree of this checkout (uncommitted changes are not shipped)",
             ["git", "-C", str(REPO_ROOT), "archive", "--format=tar.gz", "--prefix=bert-jax/",
              "-o", tarball, "HEAD"]),
        Step("Copy it to every worker",
             gcloud("compute", "tpus", "tpu-vm", "scp", tarball, f"{args.name}:{REMOTE_TARBALL}",
                    f"--zone={args.zone}", "--worker=all", project=args.project)),
        Step(f"Install it with jax[tpu]=={jax_version} on every worker",
             worker_ssh(args, install), [f"on each worker: {install}"]),
        Step("Make the local directory for the per-worker logs", ["mkdir", "-p", args.log_dir]),
        Step(f"Train: the same command on all {shape.hosts} workers, each logging to "
             f"{args.log_dir}/<worker>.log here",
             worker_ssh(args, remote_train, f"--output-directory={args.log_dir}"),
             [f"on each worker: {remote_train}",
              "--distributed auto: JAX reads the slice from the TPU metadata, worker i is process i:",
              *workers]),
    ]


def down_argv(args: argparse.Namespace) -> list[str]:
    # --force also deletes the slice's VMs; --quiet answers the confirmation prompt.
    return gcloud("compute", "tpus", "queued-resources", "delete", args.name, f"--zone={args.zone}",
                  "--force", "--quiet", project=args.project)


def down_steps(args: argparse.Namespace) -> list[Step]:
    """Deletes the slice."""
    return [Step("Tear down: delete the queued resource and its VMs", down_argv(args))]


def check_run_args(args: argparse.Namespace) -> None:
    """Refuses paths the workers cannot share; warns about data the workers cannot read."""
    if not args.workdir.startswith("gs://"):
        raise ValueError(f"--workdir {args.workdir!r} must be a gs:// path: every worker writes "
                         "into the same checkpoints, and the TPU VMs' disks go with the slice.")
    for item in args.set:
        field, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set {item!r} must look like section.field=value.")
        if field.strip().startswith("data.") and field.strip().endswith(("_files", "_file")):
            local = [v for v in value.split(",") if v and not v.startswith("gs://")]
            if local:
                print(f"warning: --set {field}={value}: {local} is not on gs://; the workers only "
                      "have the code of this checkout.", file=sys.stderr)


def plan(args: argparse.Namespace) -> tuple[list[Step], Slice | None]:
    """The steps of the subcommand (`all`: up, run, down) and the slice's shape (None for down)."""
    shape = slice_shape(args.accelerator_type) if args.command != "down" else None
    if args.command in ("run", "all"):
        check_run_args(args)
    steps: list[Step] = []
    for phase, make in (("up", lambda: up_steps(args, shape)), ("run", lambda: run_steps(args, shape)),
                        ("down", lambda: down_steps(args))):
        if args.command in (phase, "all"):
            steps += [dataclasses.replace(step, phase=phase) for step in make()]
    return steps, shape


def print_plan(steps: list[Step], shape: Slice | None) -> None:
    """The dry run: every command as one shell line, its purpose in comments above it."""
    if shape is not None:
        print(f"# {shape.accelerator_type}: {shape.chips} chips, hosts: {shape.hosts} "
              f"({shape.chips // shape.hosts} chips per host)")
    for number, step in enumerate(steps, 1):
        print(f"# {number}. {step.title}")
        for note in step.notes:
            print(f"#    {note}")
        print(shlex.join(step.argv))


def run_argv(argv: list[str]) -> None:
    """Runs one command; CalledProcessError if it fails."""
    print("$ " + shlex.join(argv), flush=True)
    returncode = subprocess.run(argv).returncode   # Output streams straight to this terminal.
    if returncode != 0:
        raise subprocess.CalledProcessError(returncode, argv)


def execute(steps: list[Step], args: argparse.Namespace) -> int:
    """Runs the steps in order and returns the exit status of the first that fails (0 if none)."""
    if shutil.which("gcloud") is None:
        raise ValueError("gcloud is not on PATH: install the Google Cloud CLI "
                         "(https://cloud.google.com/sdk/docs/install), or add --dry-run.")
    if any(step.argv[:2] == ["git", "-C"] for step in steps):
        # --no-optional-locks: only look, never refresh the checkout's index.
        dirty = subprocess.run(["git", "--no-optional-locks", "-C", str(REPO_ROOT), "status",
                                "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout
        if dirty:
            print("warning: uncommitted changes are not shipped (the workers get HEAD):\n" + dirty,
                  file=sys.stderr)
    for number, step in enumerate(steps, 1):
        print(f"\n== {number}/{len(steps)} {step.title}", flush=True)
        try:
            step.execute() if step.execute else run_argv(step.argv)
        except (subprocess.CalledProcessError, RuntimeError) as e:
            print(f"\nstopped at step {number} ({step.title}): {e}", file=sys.stderr)
            if step.phase == "run":   # A failed `up` has nothing running; `down` is the fix.
                print("the slice is still up (and billed); delete it with: python launch/tpu_pod.py "
                      f"down --name {args.name} --zone {args.zone}"
                      + (f" --project {args.project}" if args.project else ""), file=sys.stderr)
            return getattr(e, "returncode", 1) or 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tpu_pod.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="{up,run,down,all}")

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--name", required=True, help="queued resource and TPU node name")
    common.add_argument("--zone", required=True, help="e.g. us-central2-b (v4), where the quota is")
    common.add_argument("--project", help="GCP project (default: gcloud's configured project)")
    common.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")

    slice_ = argparse.ArgumentParser(add_help=False)
    slice_.add_argument("--accelerator-type", required=True,
                        help="e.g. v4-32, v5p-64, v5litepod-16, v6e-16")

    up = argparse.ArgumentParser(add_help=False)
    up.add_argument("--runtime-version", help="TPU image (default: the family's JAX image, e.g. "
                    "tpu-ubuntu2204-base for v4)")
    tier = up.add_mutually_exclusive_group()
    tier.add_argument("--spot", action="store_true",
                      help="Spot capacity: cheaper, can be preempted (rerun `all` to resume)")
    tier.add_argument("--best-effort", action="store_true",
                      help="best-effort tier (gcloud alpha); can be preempted like --spot")

    run = argparse.ArgumentParser(add_help=False)
    run.add_argument("--config", required=True, help="config name in configs/ or a path in the repo")
    run.add_argument("--workdir", required=True, help="gs://BUCKET/RUN: checkpoints, logs, config")
    run.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                     help="passed to `bert-jax pretrain --set` (repeatable), e.g. "
                     "data.train_files=gs://BUCKET/shards/")
    run.add_argument("--log-dir", help="local directory for <worker>.log (default: logs/NAME)")

    sub.add_parser("up", parents=[common, slice_, up], help="queue the slice (or reuse it) and "
                   "wait until it is ACTIVE")
    sub.add_parser("run", parents=[common, slice_, run], help="ship this checkout, install it and "
                   "train on every worker")
    sub.add_parser("down", parents=[common], help="delete the queued resource and its VMs")
    sub.add_parser("all", parents=[common, slice_, up, run], help="up, run and down")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in ("run", "all") and not args.log_dir:
        args.log_dir = f"logs/{args.name}"
    try:
        steps, shape = plan(args)
        if args.dry_run:
            print_plan(steps, shape)
            return 0
        return execute(steps, args)
    except ValueError as e:
        print(f"tpu_pod.py: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
