"""The serving export runs without this project: a fresh Python process that can import neither
`bert_jax` nor `flax` (an import hook refuses them) deserializes the StableHLO artifact with
`jax.export`, runs it at several batch sizes and lengths (one artifact, symbolic shapes), and
matches our model within 1e-5; the TensorFlow SavedModel does the same in a process that loads it
with `tf.saved_model.load` and cannot import jax at all."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import jax
import numpy as np
import pytest

from bert_jax.cli import main
from bert_jax.inference import serving_export
from bert_jax.inference.batching import encoder_outputs
from bert_jax.inference.loading import load_model
from bert_jax.inference.serving_export import ARTIFACT_FILE, METADATA_FILE, SAVED_MODEL_DIR
from bert_jax.model import BertForPreTraining

try:
    from jax.experimental import jax2tf  # noqa: F401
    HAVE_JAX2TF = True
except ImportError:  # jax2tf may leave JAX one day; the StableHLO artifact does not need it.
    HAVE_JAX2TF = False

# (batch, length) of the inputs the artifact is called with; 512 is the model's maximum.
SHAPES = [(1, 5), (3, 37), (2, 130), (1, 512)]

# Runs in a fresh interpreter: refuses to import this project or Flax, then calls the artifact.
STABLEHLO_RUNNER = r"""
import sys

class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"bert_jax", "input_pipeline", "flax", "tensorflow"}:
            raise ImportError(f"{name} must not be needed to serve the artifact")
sys.meta_path.insert(0, Refuse())

import json
import jax
import numpy as np

directory, inputs_path, outputs_path = sys.argv[1:]
metadata = json.load(open(f"{directory}/serving.json"))
with open(f"{directory}/{metadata['artifact']}", "rb") as f:
    exported = jax.export.deserialize(bytearray(f.read()))
names = [spec["name"] for spec in metadata["inputs"]]
results = {}
with np.load(inputs_path) as data:
    for key in sorted({k.rsplit("/", 1)[0] for k in data}):
        outputs = exported.call(*(data[f"{key}/{name}"] for name in names))
        for name, value in outputs.items():
            results[f"{key}/{name}"] = np.asarray(value)
    too_long = np.ones((1, metadata["max_length"] + 1), np.int32)
    try:
        exported.call(too_long, too_long, too_long)
        results["too_long_refused"] = np.array(False)
    except Exception:
        results["too_long_refused"] = np.array(True)
np.savez(outputs_path, **results)
assert not {"bert_jax", "flax"} & set(sys.modules)
"""

SAVED_MODEL_RUNNER = r"""
import sys

class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"bert_jax", "input_pipeline", "flax", "jax", "jaxlib"}:
            raise ImportError(f"{name} must not be needed to serve the SavedModel")
sys.meta_path.insert(0, Refuse())

import numpy as np
import tensorflow as tf

directory, inputs_path, outputs_path = sys.argv[1:]
serve = tf.saved_model.load(f"{directory}/saved_model").signatures["serving_default"]
results = {}
with np.load(inputs_path) as data:
    for key in sorted({k.rsplit("/", 1)[0] for k in data}):
        outputs = serve(**{name: tf.constant(data[f"{key}/{name}"])
                           for name in ("input_ids", "input_mask", "segment_ids")})
        for name, value in outputs.items():
            results[f"{key}/{name}"] = value.numpy()
np.savez(outputs_path, **results)
"""


@pytest.fixture(scope="module")
def trained(tiny_trained_model):
    return tiny_trained_model[0]


@pytest.fixture(scope="module")
def exported(trained):
    """The serving export, made by the command line, with the MLM logits and (if jax2tf is
    there) a SavedModel."""
    out = trained / "serving"
    argv = ["export-serving", "--model", str(trained), "--output", str(out), "--mlm-logits"]
    assert main(argv + (["--saved-model"] if HAVE_JAX2TF else [])) == 0
    return out


@pytest.fixture(scope="module")
def inputs_and_expected(trained, tmp_path_factory):
    """Inputs of every shape in SHAPES (padded rows included) and our model's outputs on them."""
    params, config, tokenizer = load_model(trained)
    model = BertForPreTraining(config)
    rng = np.random.default_rng(0)
    inputs, expected = {}, {}
    for batch, length in SHAPES:
        key = f"{batch}x{length}"
        lengths = rng.integers(2, length + 1, batch)
        lengths[0] = length
        mask = (np.arange(length)[None, :] < lengths[:, None]).astype(np.int32)
        ids = rng.integers(5, config.vocab_size, (batch, length)).astype(np.int32) * mask
        segments = ((np.arange(length)[None, :] >= lengths[:, None] // 2) * mask).astype(np.int32)
        inputs.update({f"{key}/input_ids": ids, f"{key}/input_mask": mask, f"{key}/segment_ids": segments})
        sequence, pooled = encoder_outputs(model, params, ids, mask, segments)
        heads = model.apply({"params": params}, ids, mask, segments)
        expected.update({f"{key}/sequence_output": sequence, f"{key}/pooled_output": pooled,
                         f"{key}/nsp_logits": heads["nsp_logits"], f"{key}/mlm_logits": heads["mlm_logits"]})
    path = tmp_path_factory.mktemp("serving_inputs") / "inputs.npz"
    np.savez(path, **inputs)
    return path, jax.device_get(expected)


def _run(script: str, exported, inputs_path, tmp_path) -> dict[str, np.ndarray]:
    outputs_path = tmp_path / "outputs.npz"
    # Run from an empty directory, so the repository is not on the path by accident.
    result = subprocess.run([sys.executable, "-c", script, str(exported), str(inputs_path),
                             str(outputs_path)], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    with np.load(outputs_path) as data:
        return dict(data)


def _compare(got: dict[str, np.ndarray], expected: dict[str, np.ndarray], what: str) -> None:
    differences = {}
    for key, value in expected.items():
        assert got[key].shape == value.shape, key
        np.testing.assert_allclose(got[key], value, atol=1e-5, rtol=0, err_msg=key)
        name = key.split("/")[1]
        differences[name] = max(differences.get(name, 0.0), float(np.abs(got[key] - value).max()))
    print(f"{what} max |difference| over shapes {SHAPES}: "
          + ", ".join(f"{k} {v:.2e}" for k, v in sorted(differences.items())))


def test_stablehlo_artifact_runs_with_jax_alone(exported, inputs_and_expected, tmp_path):
    inputs_path, expected = inputs_and_expected
    got = _run(STABLEHLO_RUNNER, exported, inputs_path, tmp_path)
    _compare(got, expected, "StableHLO artifact")
    assert got["too_long_refused"], "an input longer than max_position_embeddings must be refused"


@pytest.mark.skipif(not HAVE_JAX2TF, reason="jax.experimental.jax2tf is not available")
def test_saved_model_runs_with_tensorflow_alone(exported, inputs_and_expected, tmp_path):
    inputs_path, expected = inputs_and_expected
    _compare(_run(SAVED_MODEL_RUNNER, exported, inputs_path, tmp_path), expected, "TF SavedModel")


def test_metadata_describes_inputs_outputs_and_tokenizer(exported, trained):
    metadata = json.loads((exported / METADATA_FILE).read_text())
    _, config, tokenizer = load_model(trained)
    assert (exported / ARTIFACT_FILE).is_file()
    assert metadata["inputs"] == [{"name": name, "dtype": "int32", "shape": ["b", "l"]}
                                  for name in ("input_ids", "input_mask", "segment_ids")]
    hidden, vocab = config.hidden_size, config.vocab_size
    assert {o["name"]: o["shape"] for o in metadata["outputs"]} == {
        "sequence_output": ["b", "l", hidden], "pooled_output": ["b", hidden],
        "nsp_logits": ["b", 2], "mlm_logits": ["b", "l", vocab]}
    assert all(o["dtype"] == "float32" for o in metadata["outputs"])
    assert metadata["platforms"] == ["cpu", "cuda"] and metadata["max_length"] == 512
    assert metadata["saved_model"] == (SAVED_MODEL_DIR if HAVE_JAX2TF else None)
    vocab_lines = (exported / metadata["tokenizer"]["vocab"]).read_text(encoding="utf-8").splitlines()
    assert {token: i for i, token in enumerate(vocab_lines)} == tokenizer.vocab
    assert metadata["tokenizer"]["special_token_ids"]["[CLS]"] == tokenizer.cls_id


def test_export_refuses_a_foreign_directory_and_unknown_platforms(trained, tmp_path, capsys):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    assert main(["export-serving", "--model", str(trained), "--output", str(foreign)]) == 2
    assert "holds files that bert-jax did not write (keep.txt; no .bert-jax-export.json)" in capsys.readouterr().err
    assert (foreign / "keep.txt").read_text() == "mine"
    assert main(["export-serving", "--model", str(trained), "--output", str(tmp_path / "x"),
                 "--platforms", "cpu,gpu"]) == 2
    assert "platforms ['gpu']" in capsys.readouterr().err


def _tree(directory) -> dict:
    return {p.relative_to(directory).as_posix(): None if p.is_dir() else p.read_bytes()
            for p in sorted(directory.rglob("*"))}


def test_export_serving_replaces_only_its_own_files(trained, exported, tmp_path, capsys, monkeypatch):
    """A directory it did not write is refused even with --overwrite; its own earlier export only
    with --overwrite, which keeps the user's README.md; a failed export changes nothing; every
    file is 0644 (with umask 022)."""
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / METADATA_FILE).write_text("{}")  # looks like a serving export, but is not ours
    assert main(["export-serving", "--model", str(trained), "--output", str(foreign), "--overwrite"]) == 2
    assert "holds files that bert-jax did not write (serving.json;" in capsys.readouterr().err
    assert _tree(foreign) == {METADATA_FILE: b"{}"}
    assert main(["export-serving", "--model", str(trained), "--output", str(exported)]) == 2
    assert "holds an earlier export" in capsys.readouterr().err

    out = tmp_path / "serving"
    previous = os.umask(0o022)
    try:
        assert main(["export-serving", "--model", str(trained), "--output", str(out)]) == 0
        (out / "README.md").write_text("mine")
        before = _tree(out)
        monkeypatch.setattr(serving_export, "save_vocab", _disk_full)
        assert main(["export-serving", "--model", str(trained), "--output", str(out), "--overwrite",
                     "--mlm-logits"]) == 2
        assert "No space left on device" in capsys.readouterr().err
        assert _tree(out) == before
        monkeypatch.undo()
        assert main(["export-serving", "--model", str(trained), "--output", str(out), "--overwrite",
                     "--mlm-logits"]) == 0
    finally:
        os.umask(previous)
    after = _tree(out)
    assert after["README.md"] == b"mine" and after[ARTIFACT_FILE] != before[ARTIFACT_FILE]
    assert set(after) == set(before)
    assert "mlm_logits" in after[METADATA_FILE].decode()
    assert {stat.S_IMODE(p.stat().st_mode) for p in out.rglob("*") if p.is_file()} == {0o644}
    assert not [p for p in [*tmp_path.iterdir(), *out.iterdir()] if "bert-jax-export-" in p.name]


def _disk_full(*args, **kwargs):
    raise OSError(28, "No space left on device")
