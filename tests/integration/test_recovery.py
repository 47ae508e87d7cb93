"""In-process recovery of `train_and_evaluate`: a damaged newest checkpoint is set aside and the
one before it used; a checkpoint whose background write fails stops the run naming that step;
non-finite steps (loss or gradient) are skipped, and K in a row stop the run; a work directory
whose saved config is incompatible is refused naming the fields, while compatible changes resume;
and every config rule of the issue is checked before anything is compiled."""

from __future__ import annotations

import errno
import functools
import json
import logging
import re
import shutil
import threading

import jax
import numpy as np
import pytest

from bert_jax.config.files import load_config
from bert_jax.config.validation import check_resumable, validate
from bert_jax.state.checkpointer import CheckpointError
from bert_jax.training.loop import TrainingDiverged, train_and_evaluate


def _config(tiny_run_config, num_steps: int, checkpoint_every: int = 3):
    config = tiny_run_config(num_steps=num_steps, log_every=1, checkpoint_every=checkpoint_every)
    config.data.eval_files = ""
    config.optimizer.warmup_steps = 2
    config.train.keep_checkpoints = 10
    return config


def _checkpoint_steps(workdir) -> list[int]:
    return sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())


@pytest.fixture(scope="module")
def six_step_run(tiny_run_config, tmp_path_factory):
    """(reports of an uninterrupted 9-step run, work directory of a 6-step run with checkpoints at
    steps 3 and 6): each test copies the work directory and damages its copy."""
    root = tmp_path_factory.mktemp("six_step_run")
    reference = []
    train_and_evaluate(_config(tiny_run_config, 9), root / "reference", on_report=reference.append)
    train_and_evaluate(_config(tiny_run_config, 6), root / "run")
    assert _checkpoint_steps(root / "run") == [3, 6]
    return reference, root / "run"


def test_a_damaged_newest_checkpoint_is_set_aside_and_the_previous_one_used(
        six_step_run, tiny_run_config, tmp_path, caplog):
    reference, template = six_step_run
    workdir = tmp_path / "run"
    shutil.copytree(template, workdir)
    outside = tmp_path / "not_ours.txt"
    outside.write_text("must survive")
    # Damage the newest checkpoint's arrays: every file cut to half its length.
    for path in (workdir / "checkpoints" / "6" / "state").rglob("*"):
        if path.is_file() and path.stat().st_size > 1:
            path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])

    _assert_resumes_from_step_3_setting_6_aside(tiny_run_config, workdir, reference, caplog)
    assert outside.read_text() == "must survive"


def _assert_resumes_from_step_3_setting_6_aside(tiny_run_config, workdir, reference, caplog) -> None:
    """Resuming `workdir` to step 9 sets checkpoint 6 aside with a warning naming it, and goes on
    from step 3 exactly as the uninterrupted 9-step run (`reference`) went on from there."""
    resumed = []
    with caplog.at_level(logging.WARNING):
        train_and_evaluate(_config(tiny_run_config, 9), workdir, on_report=resumed.append)
    [warning] = [r.getMessage() for r in caplog.records if "cannot be restored" in r.getMessage()]
    assert str(workdir / "checkpoints" / "6") in warning and "falling back" in warning
    assert not [r for r in caplog.records if "restarts from its beginning" in r.getMessage()]
    [aside] = list((workdir / "damaged_checkpoints").iterdir())
    assert aside.name.startswith("6-")
    assert [r["step"] for r in resumed] == [4, 5, 6, 7, 8, 9]
    for mine, theirs in zip(resumed, reference[3:], strict=True):
        assert mine["loss"] == theirs["loss"] and mine["grad_norm"] == theirs["grad_norm"]
    assert _checkpoint_steps(workdir) == [3, 6, 9]


@pytest.mark.parametrize("missing", ["data", "data/process_0-of-1/position.json",
                                     "data/process_0-of-1/iterator.index", "state/manifest.ocdbt"])
def test_a_partial_newest_checkpoint_is_set_aside_and_the_previous_one_used(
        six_step_run, tiny_run_config, tmp_path, caplog, missing):
    """A newest checkpoint missing its data position (saved by as many processes as now) or a
    state file is incomplete, not a reason to restart the data stream: it is set aside."""
    reference, template = six_step_run
    workdir = tmp_path / "run"
    shutil.copytree(template, workdir)
    lost = workdir / "checkpoints" / "6" / missing
    shutil.rmtree(lost) if lost.is_dir() else lost.unlink()
    _assert_resumes_from_step_3_setting_6_aside(tiny_run_config, workdir, reference, caplog)


class _CountingIterator:
    """Stands in for a data iterator: its position is one integer, saved to a file."""

    def __init__(self, position: int = 0):
        self.position = position

    def save(self, prefix: str) -> None:
        with open(prefix + ".txt", "w") as f:
            f.write(str(self.position))

    def restore(self, prefix: str) -> None:
        with open(prefix + ".txt") as f:
            self.position = int(f.read())


def test_a_data_position_saved_by_another_number_of_processes_restarts_the_stream(
        tmp_path, monkeypatch, caplog):
    """Resuming with another number of processes is legitimate: the state is used and the data
    stream restarts, with a warning. With as many processes as saved it, the same checkpoint
    missing this process's position is incomplete and raises."""
    import types

    from bert_jax.state import checkpointer as checkpointing

    state = {"w": np.arange(4.0)}
    real_jax = checkpointing.jax
    # The data handler alone sees two processes; orbax (one real process) writes the arrays.
    as_two = types.SimpleNamespace(process_index=lambda: 0, process_count=lambda: 2)
    monkeypatch.setattr(checkpointing, "jax", as_two)
    checkpointer = checkpointing.Checkpointer(tmp_path, async_save=False)
    checkpointer.save(5, state, {}, _CountingIterator(7), {"phase": 1})
    checkpointer.wait_until_finished()
    assert (tmp_path / "checkpoints" / "5" / "data" / "process_0-of-2").is_dir()

    monkeypatch.setattr(checkpointing, "jax", real_jax)
    iterator = _CountingIterator()
    with caplog.at_level(logging.WARNING):
        assert not checkpointer.restore_data(5, iterator, {"phase": 1})
    assert iterator.position == 0
    [warning] = [r.getMessage() for r in caplog.records if "restarts from its beginning" in r.getMessage()]
    assert "saved by 2 processes, this run has 1" in warning
    np.testing.assert_array_equal(checkpointer.restore(5, state)["w"], state["w"])

    monkeypatch.setattr(checkpointing, "jax", as_two)
    assert checkpointer.restore_data(5, iterator, {"phase": 1}) and iterator.position == 7
    assert not checkpointer.restore_data(5, _CountingIterator(), {"phase": 2})  # another stream
    shutil.rmtree(tmp_path / "checkpoints" / "5" / "data" / "process_0-of-2")
    with pytest.raises(FileNotFoundError, match="process_0-of-2/position.json is missing"):
        checkpointer.restore_data(5, iterator, {"phase": 1})
    checkpointer.close()


def _poison_batches(monkeypatch, bad: set[int]) -> None:
    """Makes the loop's `bad` batches (1-based) carry NaN masked-LM weights, as garbage data or an
    overflow would: the loss and every gradient become NaN."""
    import bert_jax.training.loop as train_module

    original = train_module._global_batch
    count = {"n": 0}

    def poisoned(local_batch, mesh):
        count["n"] += 1
        if count["n"] in bad:
            local_batch = dict(local_batch, masked_lm_weights=np.full_like(local_batch["masked_lm_weights"], np.nan))
        return original(local_batch, mesh)
    monkeypatch.setattr(train_module, "_global_batch", poisoned)


def test_a_non_finite_step_is_skipped_and_counted(tiny_run_config, tmp_path, monkeypatch):
    reference = []
    train_and_evaluate(_config(tiny_run_config, 6, 1000), tmp_path / "reference", on_report=reference.append)
    _poison_batches(monkeypatch, bad={4})
    reports = []
    train_and_evaluate(_config(tiny_run_config, 6, 1000), tmp_path / "run", on_report=reports.append)
    assert [r["skipped_steps"] for r in reports] == [0, 0, 0, 1, 0, 0]
    assert all(np.isfinite(r["loss"]) for r in reports[:3] + reports[4:])
    # Steps 1-3 as without the bad batch; after it, the parameters are those of step 3, so
    # step 5 differs from the reference (which did update at step 4) but is finite.
    for mine, theirs in zip(reports[:3], reference[:3]):
        assert mine["loss"] == theirs["loss"]
    assert reports[4]["loss"] != reference[4]["loss"]


def test_k_consecutive_non_finite_steps_stop_the_run(tiny_run_config, tmp_path, monkeypatch):
    config = _config(tiny_run_config, 20, checkpoint_every=3)
    config.train.max_consecutive_nonfinite = 4
    _poison_batches(monkeypatch, bad=set(range(5, 100)))
    with pytest.raises(TrainingDiverged) as stopped:
        train_and_evaluate(config, tmp_path / "run")
    message = str(stopped.value)
    assert "4 consecutive steps (5 to 8)" in message
    assert "train.max_consecutive_nonfinite=4" in message
    assert "The parameters did not change since step 4" in message
    assert f"the last checkpoint is step 6 in {tmp_path / 'run' / 'checkpoints'}" in message
    assert _checkpoint_steps(tmp_path / "run") == [3, 6]


def test_k_consecutive_non_finite_steps_stop_the_command_with_exit_1_and_a_restorable_checkpoint(
        tiny_run_config, tiny_run_overrides, tmp_path, monkeypatch, capsys):
    """Through `bert-jax pretrain` (its `main`, in-process): exit code 1, the message on stderr,
    and the checkpoint it names restores with finite parameters, those of before the streak."""
    from bert_jax import cli
    from bert_jax.state.trained_params import load_trained_params

    workdir = tmp_path / "run"
    _poison_batches(monkeypatch, bad=set(range(5, 100)))
    argv = ["pretrain", "--config", "cpu_demo", "--workdir", str(workdir)]
    for item in [o for o in tiny_run_overrides if not o.startswith("data.eval_files=")] + [
            "data.eval_files=", "train.num_steps=20", "train.log_every=1", "train.checkpoint_every=3",
            "train.keep_checkpoints=10", "optimizer.warmup_steps=2", "train.max_consecutive_nonfinite=4"]:
        argv += ["--set", item]
    assert cli.main(argv) == 1
    [message] = [line for line in capsys.readouterr().err.splitlines()
                 if line.startswith("bert-jax pretrain: stopped:")]
    assert "4 consecutive steps (5 to 8) had a non-finite loss or gradient" in message
    assert f"the last checkpoint is step 6 in {workdir / 'checkpoints'}" in message
    assert "Lower the learning rate" in message
    assert _checkpoint_steps(workdir) == [3, 6]
    params, _, step = load_trained_params(workdir)
    assert step == 6
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(params))


@pytest.mark.parametrize("failing_step, error", [
    (6, OSError(errno.ENOSPC, "No space left on device")),
    (9, OSError(errno.EROFS, "Read-only file system")),
], ids=["disk full, found at the next save", "read-only, found at the final wait"])
def test_a_failed_background_checkpoint_write_stops_the_run_naming_the_step(
        tiny_run_config, tmp_path, monkeypatch, failing_step, error):
    """Orbax writes a checkpoint's arrays in a background thread while training goes on, so their
    failure surfaces later: at the next save (a failure at step 6 is found at step 9) or at the
    final wait (a failure at the last step). Either way the run stops with a CheckpointError that
    names the step whose write failed and the last complete checkpoint, and no checkpoint exists
    under the failed step's name (its temporary directory is never committed)."""
    from orbax.checkpoint._src.serialization import serialization

    real_write = serialization.async_serialize_from_host
    failed_in: list[threading.Thread] = []

    async def failing_write(rslices_on_host, tensorstore_spec, *args, **kwargs):
        # As in tests/support/slow_save_pretrain.py: the array goes to the save's temporary directory,
        # named by its step.
        step = re.search(r"/(\d+)\.orbax-checkpoint-tmp", json.dumps(tensorstore_spec))
        if step and int(step.group(1)) == failing_step:
            failed_in.append(threading.current_thread())
            raise error
        return await real_write(rslices_on_host, tensorstore_spec, *args, **kwargs)
    # Orbax's array handler looks the function up on the module at each write.
    monkeypatch.setattr(serialization, "async_serialize_from_host", failing_write)

    workdir = tmp_path / "run"
    with pytest.raises(CheckpointError) as stopped:
        train_and_evaluate(_config(tiny_run_config, 9), workdir)
    assert failed_in and threading.main_thread() not in failed_in  # the background write failed
    message = str(stopped.value)
    assert (f"saving a checkpoint (step {failing_step}) in {workdir / 'checkpoints'} failed: "
            f"OSError: [Errno {error.errno}] {error.strerror}") in message
    assert f"the last complete checkpoint is step {failing_step - 3}" in message
    assert "rerun the same command to resume" in message
    assert _checkpoint_steps(workdir) == [s for s in (3, 6) if s < failing_step]


def test_a_skipped_step_leaves_parameters_and_optimizer_state_bitwise_unchanged(tiny_run_config):
    from bert_jax.parallel.sharding import make_mesh
    from bert_jax.training.step import train_step
    from tests.support.model_inputs import random_pretraining_batch
    from tests.support.pretraining_parts import pretraining_parts

    config = _config(tiny_run_config, 10)
    parts = pretraining_parts(config, make_mesh({"data": 1, "fsdp": 1, "tensor": 1}))
    state = parts.fresh_state()
    step = jax.jit(functools.partial(train_step, objective=parts.objective, optimizer=parts.optimizer,
                                     schedule=parts.schedule, seed=0))
    good = random_pretraining_batch(8, vocab=config.model.vocab_size)
    state, metrics = step(state, good)
    assert metrics["skipped"] == 0
    for poison in ("nan", "inf"):
        bad = dict(good, masked_lm_weights=np.full_like(good["masked_lm_weights"], float(poison)))
        after, metrics = step(state, bad)
        assert metrics["skipped"] == 1 and int(after.step) == int(state.step) + 1
        for a, b in zip(jax.tree.leaves((after.params, after.opt_state)),
                        jax.tree.leaves((state.params, state.opt_state)), strict=True):
            np.testing.assert_array_equal(a, b)


def _with_poisoned_gradient(model, value: float):
    """`model` with the same forward pass, whose backward pass makes the gradient of one parameter
    (the first leaf) `value` everywhere: an overflow in the backward pass alone."""
    @jax.custom_vjp
    def identity(x):
        return x
    identity.defvjp(lambda x: (x, None), lambda _, g: (jax.numpy.full_like(g, value),))

    class Poisoned:
        config = model.config

        @staticmethod
        def apply(variables, *args, **kwargs):
            leaves, tree = jax.tree.flatten(variables["params"])
            params = jax.tree.unflatten(tree, [identity(leaves[0]), *leaves[1:]])
            return model.apply({**variables, "params": params}, *args, **kwargs)
    return Poisoned()


def test_a_step_with_a_finite_loss_but_a_non_finite_gradient_is_skipped(tiny_run_config):
    """Every poisoned batch above makes the loss non-finite as well; here the loss is exactly that
    of the real model and only a gradient is inf or NaN, so only the gradient check can catch it."""
    from bert_jax.parallel.sharding import make_mesh
    from bert_jax.training.pretraining import PretrainingObjective
    from bert_jax.training.step import train_step
    from tests.support.model_inputs import random_pretraining_batch
    from tests.support.pretraining_parts import pretraining_parts

    config = _config(tiny_run_config, 10)
    parts = pretraining_parts(config, make_mesh({"data": 1, "fsdp": 1, "tensor": 1}))
    model = parts.objective.model
    state = parts.fresh_state()
    batch = random_pretraining_batch(8, vocab=config.model.vocab_size)

    def step(model):
        return jax.jit(functools.partial(train_step, objective=PretrainingObjective(model),
                                         optimizer=parts.optimizer, schedule=parts.schedule, seed=0))
    clean_step = step(model)
    state, _ = clean_step(state, batch)  # a real update first, so the moments are non-zero
    _, clean = clean_step(state, batch)
    assert clean["skipped"] == 0
    for poison in (float("inf"), float("nan")):
        after, metrics = step(_with_poisoned_gradient(model, poison))(state, batch)
        assert metrics["loss"] == clean["loss"] and np.isfinite(metrics["loss"])
        assert not np.isfinite(metrics["grad_norm"])
        assert metrics["skipped"] == 1 and int(after.step) == int(state.step) + 1
        for a, b in zip(jax.tree.leaves((after.params, after.opt_state)),
                        jax.tree.leaves((state.params, state.opt_state)), strict=True):
            np.testing.assert_array_equal(a, b)


def test_an_incompatible_work_directory_is_refused_naming_the_fields(tiny_run_config, tmp_path):
    workdir = tmp_path / "run"
    train_and_evaluate(_config(tiny_run_config, 3), workdir)
    saved_config = (workdir / "config.json").read_text()
    changed = _config(tiny_run_config, 6)
    changed.model.hidden_size = 128
    changed.model.intermediate_size = 256
    changed.optimizer.name = "lamb"
    with pytest.raises(ValueError) as refused:
        train_and_evaluate(changed, workdir)
    message = str(refused.value)
    for field in ("model.hidden_size: saved 64, now 128", "model.intermediate_size: saved 128, now 256",
                  "optimizer.name: saved 'adamw', now 'lamb'"):
        assert field in message
    assert "model.num_layers" not in message
    # (Shards of another length are refused before this check: the config's own rule.)
    changed = _config(tiny_run_config, 6)
    changed.data.max_seq_length = 32
    with pytest.raises(ValueError, match="data.max_seq_length: saved 64, now 32"):
        check_resumable(json.loads(saved_config), changed, str(workdir))
    assert (workdir / "config.json").read_text() == saved_config  # not overwritten by the refused one
    assert _checkpoint_steps(workdir) == [3]


def test_an_incompatible_vocab_file_is_refused(tiny_run_config, tmp_path):
    workdir = tmp_path / "run"
    train_and_evaluate(_config(tiny_run_config, 3), workdir)
    other_vocab = tmp_path / "other_vocab.txt"
    lines = open(_config(tiny_run_config, 3).data.vocab_file, encoding="utf-8").read().splitlines()
    other_vocab.write_text("\n".join(lines[:-2] + lines[-1:] + lines[-2:-1]) + "\n", encoding="utf-8")
    config = _config(tiny_run_config, 6)
    config.data.vocab_file = str(other_vocab)
    with pytest.raises(ValueError, match="data.vocab_file: saved .* whose contents differ"):
        check_resumable(json.loads((workdir / "config.json").read_text()), config,
                                          str(workdir))


def test_compatible_changes_resume(tiny_run_config, tmp_path):
    """The learning-rate schedule, logging and checkpoint intervals, dropout and the PRNG may
    change between restarts."""
    workdir = tmp_path / "run"
    train_and_evaluate(_config(tiny_run_config, 3), workdir)
    changed = _config(tiny_run_config, 5, checkpoint_every=5)
    changed.optimizer.learning_rate = 1e-3
    changed.optimizer.warmup_steps = 1
    changed.train.log_every = 2
    changed.model.hidden_dropout_rate = 0.0
    changed.train.rng_impl = "rbg"
    reports = []
    train_and_evaluate(changed, workdir, on_report=reports.append)
    assert [r["step"] for r in reports] == [4, 5]
    assert _checkpoint_steps(workdir) == [3, 5]


@pytest.mark.parametrize("overrides, devices, processes, expected", [
    (["model.num_heads=5"], 1, 1, "model.hidden_size=768 must be divisible by model.num_heads=5"),
    (["data.max_seq_length=1024"], 1, 1, "data.max_seq_length=1024 exceeds model.max_position_embeddings=512"),
    (["train.global_batch_size=30", "mesh.shape.data=4"], 4, 1,
     "train.global_batch_size=30 must be divisible by the data-parallel size 4"),
    (["train.global_batch_size=9"], 1, 2, "train.global_batch_size=9 must be divisible by the number of processes 2"),
    (["mesh.shape.data=4"], 8, 1, "4 devices but 8 are available"),
    (["data.max_predictions_per_seq=200"], 1, 1, "data.max_predictions_per_seq=200 must be in [1, data.max_seq_length=128]"),
    (["optimizer.warmup_steps=20", "train.num_steps=10"], 1, 1, "optimizer.warmup_steps=20 must be in [0, train.num_steps=10]"),
    (["train.max_consecutive_nonfinite=0"], 1, 1, "train.max_consecutive_nonfinite=0 must be at least 1"),
])
def test_config_rules_name_field_value_and_rule(overrides, devices, processes, expected):
    config = load_config("bert_base", ["data.train_files=shards/", *overrides])
    with pytest.raises(ValueError) as error:
        validate(config, num_devices=devices, num_processes=processes)
    assert expected in str(error.value)
