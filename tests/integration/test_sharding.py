"""Sharding: on 8 (fake CPU) devices, every (data, fsdp, tensor) mesh trains exactly like one device.

From the same initial state and the same global batches, a tiny BERT (hidden 64, 2 layers, 8 heads,
feed-forward 128, vocab 1000, sequence 32, batch 16, dropout 0.1, float32) takes 2 AdamW steps on
one device and on the meshes (8,1,1), (1,8,1), (2,4,1), (2,2,2) and (1,1,8): the losses, the
updated parameters and the optimizer state agree within float32 round-off. And the arrays really
are split the way `bert_jax.parallel.sharding.LOGICAL_RULES` says (an "embed" axis 8 ways on (1,8,1),
attention heads over "tensor" on (2,2,2), ...), so the agreement is not that of replicas.

JAX sees its fake devices only if `XLA_FLAGS` asks for them before it starts, and this pytest
process has started JAX already: the runs happen in a subprocess (`tests/support/multihost_worker.py`).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from bert_jax.parallel.sharding import LOGICAL_RULES
from tests.support.multihost_worker import run_workers

MESHES = ("8,1,1", "1,8,1", "2,4,1", "2,2,2", "1,1,8")
MESH_AXES = ("data", "fsdp", "tensor")
TIMEOUT_S = 240
# The share of the parameters' bytes on one device: 1 for pure data parallelism; under fsdp only
# small vectors stay replicated; under pure tensor parallelism also the position table and the
# LayerNorms.
# (Observed: 1, 0.134, 0.258, 0.314, 0.339.)
MAX_BYTES_PER_DEVICE = {"8,1,1": 1.0, "1,8,1": 0.16, "2,4,1": 0.3, "2,2,2": 0.36, "1,1,8": 0.4}

# float32 round-off, reordered sums: the step's losses and the whole state (tree norms).
LOSS_RTOL = 1e-5
STATE_RTOL = 1e-5
# Per parameter, AdamW's update m/(sqrt(v)+eps) amplifies round-off where the two steps' gradients
# nearly cancel (observed up to 3.4e-5, in a LayerNorm bias); a sharding bug (a missing or double
# reduction, another dropout mask) is off by O(1). The attention key bias has an exactly zero
# gradient (softmax ignores a per-query constant), so its "update" is round-off: the absolute part.
LEAF_RTOL = 1e-3
LEAF_ATOL = 1e-6


@pytest.fixture(scope="module")
def equivalence(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("equivalence")
    [result] = run_workers("equivalence", out, "--steps", "2", "--meshes", *MESHES,
                           "--check-create", "2,2,2", timeout=TIMEOUT_S)
    return result


def _equivalence_with(overrides: list[str], meshes: tuple[str, ...], out) -> dict:
    """The equivalence run with config overrides (for the reference and every mesh alike)."""
    import os

    saved = os.environ.get("BERT_JAX_TEST_OVERRIDES")
    os.environ["BERT_JAX_TEST_OVERRIDES"] = json.dumps(overrides)
    try:
        [result] = run_workers("equivalence", out, "--steps", "2", "--meshes", *meshes,
                               timeout=TIMEOUT_S)
    finally:
        if saved is None:
            del os.environ["BERT_JAX_TEST_OVERRIDES"]
        else:
            os.environ["BERT_JAX_TEST_OVERRIDES"] = saved
    return result


@pytest.fixture(scope="module")
def packed_equivalence(tmp_path_factory) -> dict:
    """The same check on packed rows (`data.packing`): 4 sequences per row, attention masks of
    [rows, 1, 32, 32] and per-sequence [CLS] positions split with the batch."""
    return _equivalence_with(["data.packing=True", "data.max_sequences_per_pack=4"], PACKED_MESHES,
                             tmp_path_factory.mktemp("packed_equivalence"))


@pytest.fixture(scope="module")
def accumulated_equivalence(tmp_path_factory) -> dict:
    """The same check with gradient accumulation over 2 micro-batches (each of 8 rows, still
    split over data x fsdp), dropout on; `test_train.py` shows that accumulating equals one big
    batch on one device."""
    return _equivalence_with(["train.grad_accum_steps=2"], ACCUMULATED_MESHES,
                             tmp_path_factory.mktemp("accumulated_equivalence"))


ACCUMULATED_MESHES = ("2,2,2",)


@pytest.mark.parametrize("mesh", ACCUMULATED_MESHES)
def test_accumulated_gradients_train_alike_on_a_mesh(accumulated_equivalence, mesh):
    _assert_trains_like_one_device(accumulated_equivalence, mesh)
    assert min(accumulated_equivalence["dropout"]) > 0


PACKED_MESHES = ("2,4,1", "2,2,2")


@pytest.mark.parametrize("mesh", PACKED_MESHES)
def test_packed_rows_train_alike_on_every_mesh(packed_equivalence, mesh):
    _assert_trains_like_one_device(packed_equivalence, mesh)
    # The rows held more than one sequence each: the step counted them.
    assert all(r["sequences"] > 1.5 * 16 for r in packed_equivalence["reference_losses"])


def _assert_trains_like_one_device(run: dict, mesh: str) -> None:
    """The mesh's losses, updated parameters and updates equal the one-device run's."""
    result = run["meshes"][mesh]
    for step, (got, want) in enumerate(zip(result["losses"], run["reference_losses"], strict=True)):
        for key in ("loss", "mlm_loss", "nsp_loss", "grad_norm"):
            assert got[key] == pytest.approx(want[key], rel=LOSS_RTOL), (mesh, step, key)
    assert _total(result["params"]) < STATE_RTOL
    assert _total(result["updates"]) < STATE_RTOL


def _total(diffs: dict[str, list[float]], select=lambda key: True) -> float:
    """||a - b|| / ||b|| over all the selected leaves together."""
    diff = math.sqrt(sum(d * d for k, (d, _) in diffs.items() if select(k)))
    norm = math.sqrt(sum(n * n for k, (_, n) in diffs.items() if select(k)))
    return diff / norm


def _leaves_off(diffs: dict[str, list[float]], scale: float) -> list[str]:
    return [f"{k}: |a-b|={d:.3g}, |b|={n:.3g}" for k, (d, n) in diffs.items()
            if d > LEAF_RTOL * n + LEAF_ATOL * scale]


@pytest.mark.parametrize("mesh", MESHES)
def test_losses_match_one_device(equivalence, mesh):
    reference, losses = equivalence["reference_losses"], equivalence["meshes"][mesh]["losses"]
    assert len(losses) == len(reference) == 2
    for step, (got, want) in enumerate(zip(losses, reference)):
        for key in ("loss", "mlm_loss", "nsp_loss", "grad_norm"):
            assert got[key] == pytest.approx(want[key], rel=LOSS_RTOL), (mesh, step, key)
        assert got["learning_rate"] == want["learning_rate"]
    # The second step sees the first's update: the run is not comparing two no-ops.
    assert reference[0]["loss"] != reference[1]["loss"]
    assert min(equivalence["dropout"]) > 0  # dropout masks must agree across layouts too


@pytest.mark.parametrize("mesh", MESHES)
def test_updated_state_matches_one_device(equivalence, mesh):
    result = equivalence["meshes"][mesh]
    assert result["step"] == 2
    # The steps moved the parameters (learning rate 1e-2): the updates compared below are real.
    reference_updates = equivalence["reference_updates"]
    assert math.sqrt(sum(v * v for v in reference_updates.values())) > 1.0
    moved = [k for k, v in reference_updates.items() if v > 1e-3]
    assert len(moved) >= len(reference_updates) - 2, sorted(set(reference_updates) - set(moved))

    assert _total(result["params"]) < STATE_RTOL
    assert _total(result["updates"]) < STATE_RTOL
    for moment in (".mu", ".nu"):
        assert _total(result["opt_state"], lambda k: moment in k) < STATE_RTOL, moment

    params_scale = math.sqrt(sum(v * v for v in reference_updates.values()))
    assert not _leaves_off(result["updates"], params_scale)
    for moment in (".mu", ".nu"):
        selected = {k: v for k, v in result["opt_state"].items() if moment in k}
        scale = math.sqrt(sum(n * n for _, n in selected.values()))
        assert not _leaves_off(selected, scale), moment


def test_create_state_does_not_depend_on_the_mesh(equivalence):
    """The initial state made directly in the (2,2,2) layout equals the one-device one."""
    created = equivalence["meshes"]["2,2,2"]["created"]
    assert created and all(d == 0.0 for d, _ in created.values()), \
        {k: v for k, v in created.items() if v[0]}


def _expected_shard_shape(shape: list[int], logical: list[str | None], mesh: dict[str, int]) -> list[int]:
    """The shard shape the rules imply, computed here from `LOGICAL_RULES` and the mesh sizes."""
    rules = dict(LOGICAL_RULES)
    out = []
    for size, name in zip(shape, logical):
        target = rules.get(name) if name is not None else None
        axes = () if target is None else (target,) if isinstance(target, str) else tuple(target)
        ways = math.prod(mesh[a] for a in axes)
        assert size % ways == 0, (shape, logical, mesh)
        out.append(size // ways)
    return out


@pytest.mark.parametrize("mesh", MESHES)
@pytest.mark.parametrize("when", ["initial_placement", "final_placement"])
def test_state_is_sharded_as_the_rules_say(equivalence, mesh, when):
    placement = equivalence["meshes"][mesh][when]
    sizes = dict(zip(MESH_AXES, (int(x) for x in mesh.split(","))))
    logical = equivalence["logical_axes"]
    checked = 0
    for key, axes in logical.items():
        param = placement[f".params{key}"]
        expected = _expected_shard_shape(param["shape"], axes, sizes)
        assert param["shard_shapes"] == [expected], (key, axes, param)
        # Adam's moments live exactly where their parameters do.
        for moment in ("mu", "nu"):
            assert placement[f".opt_state[1][0].{moment}{key}"]["shard_shapes"] == [expected], (moment, key)
        checked += 1
    assert checked == len(logical) >= 20
    # Scalars (step, Adam's count) are replicated.
    assert placement[".step"]["shard_shapes"] == [[]]


@pytest.mark.parametrize("mesh", MESHES)
def test_batch_is_split_over_data_and_fsdp(equivalence, mesh):
    data, fsdp, _ = (int(x) for x in mesh.split(","))
    assert equivalence["meshes"][mesh]["batch_shard_shapes"] == [[16 // (data * fsdp), 32]]


def _find(placement: dict, *parts: str) -> dict:
    matches = [v for k, v in placement.items() if k.startswith(".params") and all(p in k for p in parts)]
    assert matches, parts
    return matches[0]


@pytest.mark.parametrize("mesh", MESHES)
def test_named_parameters_are_split_where_expected(equivalence, mesh):
    """Hand-written expectations, independent of the rules table: fsdp splits the hidden (64) axis,
    tensor splits heads (8), the feed-forward width (128) and the vocabulary (1000)."""
    data, fsdp, tensor = (int(x) for x in mesh.split(","))
    placement = equivalence["meshes"][mesh]["final_placement"]
    [word] = _find(placement, "word_embeddings", "embedding")["shard_shapes"]
    assert word == [1000 // tensor, 64 // fsdp]
    for projection in ("query", "key", "value"):
        [kernel] = _find(placement, "attention", f"['{projection}']", "kernel")["shard_shapes"]
        assert kernel[-3:] == [64 // fsdp, 8 // tensor, 8], projection  # [embed, heads, head_dim]
    [attention_out] = _find(placement, "attention", "['output']", "kernel")["shard_shapes"]
    assert attention_out[-3:] == [8 // tensor, 8, 64 // fsdp]
    [intermediate] = _find(placement, "intermediate", "kernel")["shard_shapes"]
    assert intermediate[-2:] == [64 // fsdp, 128 // tensor]
    [output_bias] = _find(placement, "masked_lm", "output_bias")["shard_shapes"]
    assert output_bias == [1000 // tensor]

    params = {k: v for k, v in placement.items() if k.startswith(".params")}
    total = sum(math.prod(v["shape"]) * 4 for v in params.values())
    per_device = sum(v["device_bytes"] for v in params.values())
    assert per_device <= MAX_BYTES_PER_DEVICE[mesh] * total, (per_device, total)
    if mesh == "8,1,1":
        assert per_device == total  # pure data parallelism: every device holds a full replica


# The model's activation annotations as sharding constraints in the traced step, hand-written:
# [batch, length, hidden] split over the batch only, and Megatron's layout for the attention
# context [batch, length, heads, head_dim] and the feed-forward activations [batch, length, ffn].
EXPECTED_ACTIVATION_CONSTRAINTS = [
    "P(('data', 'fsdp'), None, 'tensor')",
    "P(('data', 'fsdp'), None, 'tensor', None)",
    "P(('data', 'fsdp'), None, None)",
]


@pytest.mark.parametrize("mesh", MESHES)
def test_activations_are_constrained_as_the_rules_say(equivalence, mesh):
    """The step is traced with the rules in scope: without them Flax silently drops every
    `nn.with_logical_constraint`, and XLA picks the activations' layout on its own."""
    assert equivalence["meshes"][mesh]["activation_constraints"] == EXPECTED_ACTIVATION_CONSTRAINTS


@pytest.mark.parametrize("mesh", PACKED_MESHES)
def test_packed_activations_are_constrained_too(packed_equivalence, mesh):
    assert packed_equivalence["meshes"][mesh]["activation_constraints"] == EXPECTED_ACTIVATION_CONSTRAINTS


def _word_embedding_spec(*overrides: str):
    import jax

    from bert_jax.config.files import load_config
    from bert_jax.parallel import sharding
    from tests.support.pretraining_parts import pretraining_parts

    config = load_config("bert_tiny", list(overrides))
    mesh = sharding.make_mesh({"data": 1, "fsdp": 1, "tensor": 1}, jax.devices()[:1])
    shardings = pretraining_parts(config, mesh).shardings
    return shardings.params["bert"]["embeddings"]["word_embeddings"]["embedding"].spec


def test_the_config_rules_place_the_parameters():
    """`mesh.rules` moves a parameter axis to other mesh axes without a code change (the
    spec names the mesh axes whatever their sizes, so one device shows it)."""
    from jax.sharding import PartitionSpec as P

    assert _word_embedding_spec() == P("tensor", "fsdp")
    assert _word_embedding_spec("mesh.rules.vocab=") == P(None, "fsdp")
    assert _word_embedding_spec("mesh.rules.vocab=", "mesh.rules.embed=fsdp,tensor") == P(None, ("fsdp", "tensor"))
    with pytest.raises(ValueError, match=r"mesh.rules.vocab='tensor,model'.*mesh axes from"):
        _word_embedding_spec("mesh.rules.vocab=tensor,model")


def test_the_meshes_differ(equivalence):
    """The five runs really used five different layouts."""
    layouts = {mesh: json.dumps(sorted((k, v["shard_shapes"]) for k, v in r["final_placement"].items()))
               for mesh, r in equivalence["meshes"].items()}
    assert len(set(layouts.values())) == len(MESHES)
    assert np.isfinite(equivalence["reference_losses"][-1]["loss"])
