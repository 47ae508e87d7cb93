"""Multi-host: 2 local processes x 4 CPU devices train, save and restore like 1 process x 8 devices.

The processes join through `bert_jax.parallel.distributed.initialize("explicit", ...)` (a coordinator on a
free local port, gloo collectives) and run `tests/support/multihost_worker.py`. Every process feeds its own
half of each deterministic global batch through `train._global_batch`, as `train_and_evaluate`
does, into the step jitted as `train_and_evaluate` jits it; the mesh (2,2,2) splits data, fsdp and
tensor across the two processes' devices.

* the two processes assemble exactly the intended global batches and report the same losses as
  one process with 8 devices (and the same initial state, and final state within round-off);
* a checkpoint saved by the 2-process run restores bit for bit in 1 process on another mesh, and
  one saved by 1 process restores bit for bit in 2 processes on another mesh;
* a mesh whose batch axes do not span the processes, (1,1,8), must not silently train the
  processes on different data (refused by the config validation).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.multihost_worker import run_workers

MESH = "2,2,2"
STEPS = "3"
LOSS_RTOL = 1e-5
TIMEOUT_S = 150


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """The 2-process run (trains, saves), then the 1-process run (trains, saves, restores the
    2-process checkpoint on mesh (1,8,1)), then 2 processes restoring the 1-process checkpoint on
    mesh (4,1,2)."""
    root = tmp_path_factory.mktemp("multihost")
    multi = run_workers("steps", root / "multi", "--mesh", MESH, "--steps", STEPS,
                        "--save", str(root / "ckpt_multi"), num_processes=2, timeout=TIMEOUT_S)
    single = run_workers("steps", root / "single", "--mesh", MESH, "--steps", STEPS,
                         "--save", str(root / "ckpt_single"),
                         "--restore", str(root / "ckpt_multi"), "1,8,1", num_processes=1, timeout=TIMEOUT_S)
    multi_restore = run_workers("steps", root / "multi_restore", "--steps", STEPS,
                                "--restore", str(root / "ckpt_single"), "4,1,2",
                                num_processes=2, timeout=TIMEOUT_S)
    return {"root": root, "multi": multi, "single": single, "multi_restore": multi_restore}


def _arrays(path) -> dict[str, np.ndarray]:
    with np.load(path) as f:
        return dict(f)


def test_two_processes_see_all_devices(runs):
    for i, payload in enumerate(runs["multi"]):
        assert (payload["process_index"], payload["process_count"]) == (i, 2)
        assert (payload["local_devices"], payload["devices"]) == (4, 8)
    [single] = runs["single"]
    assert (single["process_count"], single["local_devices"], single["devices"]) == (1, 8, 8)


def test_two_processes_assemble_the_intended_global_batches(runs):
    for payload in runs["multi"]:
        assert payload["batches_in_order"] == [True] * int(STEPS)
        assert payload["batch_shapes"] == [[16, 32]] * int(STEPS)


def test_two_processes_train_like_one(runs):
    [single] = runs["single"]
    first, second = runs["multi"]
    # The metrics are global (replicated) arrays: both processes read the same numbers.
    assert first["losses"] == second["losses"]
    assert len(first["losses"]) == int(STEPS) and first["step"] == single["step"] == int(STEPS)
    for step, (got, want) in enumerate(zip(first["losses"], single["losses"])):
        for key in ("loss", "mlm_loss", "nsp_loss", "grad_norm"):
            assert got[key] == pytest.approx(want[key], rel=LOSS_RTOL), (step, key)
    assert len({round(m["loss"], 6) for m in single["losses"]}) == int(STEPS)  # the steps learn

    root = runs["root"]
    initial_multi = _arrays(root / "multi" / "initial.npz")
    initial_single = _arrays(root / "single" / "initial.npz")
    assert initial_multi.keys() == initial_single.keys()
    for key in initial_single:  # create_state gives the same numbers in 1 and 2 processes
        np.testing.assert_array_equal(initial_multi[key], initial_single[key], err_msg=key)

    final_multi, final_single = _arrays(root / "multi" / "final.npz"), _arrays(root / "single" / "final.npz")
    params = [k for k in final_single if k.startswith(".params")]
    diff = np.sqrt(sum(np.sum((final_multi[k].astype(np.float64) - final_single[k]) ** 2) for k in params))
    norm = np.sqrt(sum(np.sum(final_single[k].astype(np.float64) ** 2) for k in params))
    assert diff / norm < 1e-5
    assert int(final_multi[".step"]) == int(STEPS)


def test_checkpoint_of_two_processes_restores_in_one(runs):
    [single] = runs["single"]
    assert single["restored_step"] == int(STEPS)
    assert single["restored_matches_shardings"]
    # Restored onto mesh (1,8,1): the embedding axis split 8 ways.
    assert single["restored_placement"]["['bert']['embeddings']['word_embeddings']['embedding']"][
        "shard_shapes"] == [[1000, 8]]
    saved = _arrays(runs["root"] / "multi" / "final.npz")
    restored = _arrays(runs["root"] / "single" / "restored.npz")
    assert saved.keys() == restored.keys() and len(saved) > 50
    for key in saved:
        np.testing.assert_array_equal(restored[key], saved[key], err_msg=key)


def test_checkpoint_of_one_process_restores_in_two(runs):
    for payload in runs["multi_restore"]:
        assert payload["restored_step"] == int(STEPS)
        assert payload["restored_matches_shardings"]
        # Restored onto mesh (4,1,2): vocab split over tensor (2), one process holds 4 devices.
        assert payload["restored_placement"]["['bert']['embeddings']['word_embeddings']['embedding']"][
            "shard_shapes"] == [[500, 64]]
    saved = _arrays(runs["root"] / "single" / "final.npz")
    restored = _arrays(runs["root"] / "multi_restore" / "restored.npz")
    assert saved.keys() == restored.keys()
    for key in saved:
        np.testing.assert_array_equal(restored[key], saved[key], err_msg=key)


def test_mesh_whose_batch_axes_do_not_span_the_processes_is_refused_or_correct(tmp_path):
    """Either `validate` / `_global_batch` refuse the mesh, or the processes assemble the intended
    global batch; silently training on different data per process is the one wrong outcome."""
    try:
        payloads = run_workers("steps", tmp_path, "--mesh", "1,1,8", "--steps", "1", "--assemble-only",
                               num_processes=2, timeout=TIMEOUT_S)
    except AssertionError as e:
        assert "ValueError" in str(e), str(e)[-3000:]  # refused with a clear error: fine
        return
    for payload in payloads:
        assert payload["batch_shapes"] == [[16, 32]]
        assert payload["batches_in_order"] == [True]
