"""Damaged weights are refused, named, and never answered with: a Hugging Face `model.safetensors`
with 100 KB overwritten by NaN bytes, truncated, empty or with a garbage header stops `bert-jax
import` and `fill-mask` with one line naming the file (and the tensor) and exit status 2; a work
directory's newest checkpoint that is damaged is passed over by every reader (one warning naming
it and the step used, the directory untouched, no "Event loop is closed" echoes), while an asked-
for damaged `--step` is an error; non-finite parameters in a checkpoint are named; and fill-mask
`--truncate` keeps the tokens around the [MASK]s. An import that a full disk stops is one clear
error and leaves no directory behind."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from bert_jax.cli import main
from bert_jax.errors import DamagedWeights
from tests.support.export_fixtures import CONFIG, perturbed_params

REPO = Path(__file__).resolve().parents[2]
NAN_BYTES = 100 * 1024


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory, uncased_vocab_path):
    """A small Hugging Face BertForPreTraining directory (bert-jax's export of random weights)."""
    from bert_jax.convert.hf_export import export_to_huggingface
    from bert_jax.model import BertConfig

    vocab_size = sum(1 for _ in open(uncased_vocab_path, encoding="utf-8"))
    config = BertConfig(**{**CONFIG.__dict__, "vocab_size": vocab_size})
    out = tmp_path_factory.mktemp("hf") / "model"
    export_to_huggingface(perturbed_params(config), config, uncased_vocab_path, True, out)
    return out


def _largest_tensor(path) -> tuple[str, int]:
    """(name, absolute offset of its data) of the largest tensor of a safetensors file."""
    raw = path.read_bytes()
    (header_bytes,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + header_bytes])
    name = max((n for n in header if n != "__metadata__"),
               key=lambda n: header[n]["data_offsets"][1] - header[n]["data_offsets"][0])
    return name, 8 + header_bytes + header[name]["data_offsets"][0]


def _damage(directory, how: str) -> str:
    """Damages `directory`'s model.safetensors as `how` says; returns what the error must name."""
    path = directory / "model.safetensors"
    raw = bytearray(path.read_bytes())
    if how == "nan":
        name, start = _largest_tensor(path)
        raw[start + 4096:start + 4096 + NAN_BYTES] = b"\xff" * NAN_BYTES  # float32 0xffffffff: NaN
        path.write_bytes(bytes(raw))
        return f"tensor {name} holds {NAN_BYTES // 4} non-finite values"
    if how == "truncated":
        path.write_bytes(bytes(raw[:len(raw) // 2]))
        return f"truncated: its header says {len(raw)} bytes but the file has {len(raw) // 2}"
    if how == "empty":
        path.write_bytes(b"")
        return "it is empty (0 bytes)"
    if how == "garbage header length":
        path.write_bytes(b"\x93\x17garbage" + bytes(raw[9:]))
        return "not a safetensors file"
    assert how == "garbage header"
    (header_bytes,) = struct.unpack("<Q", raw[:8])
    raw[8:8 + header_bytes] = b"#" * header_bytes
    path.write_bytes(bytes(raw))
    return "invalid header"


DAMAGES = ["nan", "truncated", "empty", "garbage header length", "garbage header"]


@pytest.mark.parametrize("how", DAMAGES)
@pytest.mark.parametrize("command", ["import", "fill-mask"])
def test_a_damaged_safetensors_file_is_one_line_naming_it(hf_dir, tmp_path, capsys, how, command):
    damaged = tmp_path / "model"
    shutil.copytree(hf_dir, damaged)
    expected = _damage(damaged, how)
    argv = (["import", "--from", str(damaged), "--output", str(tmp_path / "workdir")]
            if command == "import" else ["fill-mask", "--model", str(damaged), "The [MASK] sat."])
    assert main(argv) == 2
    captured = capsys.readouterr()
    [line] = [line for line in captured.err.splitlines() if line.startswith("bert-jax")]
    assert line.startswith(f"bert-jax {command}: error: {damaged / 'model.safetensors'}: ")
    assert expected in line, line
    assert "score" not in captured.out and not (tmp_path / "workdir").exists()


def test_import_on_a_full_disk_is_one_clear_error_and_leaves_nothing(hf_dir, tmp_path):
    """A 300 kB file-size limit (a stand-in for a full disk) lets the vocab (232 kB) through and
    fails the step-0 checkpoint's array writes. Before: 117 lines on stderr with orbax's
    tracebacks, and 'stopped: saving a checkpoint (step 0) in OUTPUT.tmp-PID/checkpoints failed
    ... rerun the same command to resume', which an import cannot."""
    out = tmp_path / "workdir"
    command = [sys.executable, str(REPO / "tests" / "support" / "file_size_limit.py"), "300000",
               sys.executable, "-m", "bert_jax.cli", "import", "--from", str(hf_dir), "--output", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if not re.match(r"\d\d:\d\d:\d\d ", line)]
    assert len(lines) <= 2 and "with their tracebacks: " in lines[0], lines
    assert lines[-1].startswith(f"bert-jax import: error: writing the work directory {out} failed (")
    assert "File too large" in lines[-1] and "Free disk space" in lines[-1]
    assert os.listdir(tmp_path) == []  # no work directory, no temporary one beside it


def test_fill_mask_on_nan_weights_exits_nonzero_with_one_line(hf_dir, tmp_path):
    """The reported case, as a command: it printed `score: nan` and exited 0."""
    damaged = tmp_path / "model"
    shutil.copytree(hf_dir, damaged)
    expected = _damage(damaged, "nan")
    result = subprocess.run([sys.executable, "-m", "bert_jax.cli", "fill-mask", "--model", str(damaged),
                             "The [MASK] sat on the mat."], capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert expected in result.stderr.strip().splitlines()[-1]
    assert "nan" not in result.stdout


def test_non_finite_parameters_in_a_checkpoint_are_named(hf_dir, tmp_path, monkeypatch):
    """A work directory whose only checkpoint holds NaN (written past the import's check) is
    refused by every reader, naming the parameter and the checkpoint."""
    from bert_jax.convert import hf_import
    from bert_jax.convert.workdir_import import import_to_workdir
    from bert_jax.state.trained_params import load_trained_params

    damaged = tmp_path / "model"
    shutil.copytree(hf_dir, damaged)
    _damage(damaged, "nan")
    monkeypatch.setattr(hf_import, "check_finite", lambda *args: None)
    workdir, _ = import_to_workdir(damaged, tmp_path / "workdir")
    with pytest.raises(DamagedWeights, match=r"checkpoints/0: parameter bert/embeddings/word_embeddings/"
                                             r"embedding holds non-finite values"):
        load_trained_params(workdir)


@pytest.fixture(scope="module")
def workdir_with_damaged_newest(hf_dir, tmp_path_factory):
    """A work directory (imported) with checkpoints 0 and 5 (a copy of 0) where 5 lost its state's
    manifest, as test_recovery damages one."""
    from bert_jax.convert.workdir_import import import_to_workdir

    workdir, _ = import_to_workdir(hf_dir, tmp_path_factory.mktemp("damaged_newest") / "workdir")
    shutil.copytree(workdir / "checkpoints" / "0", workdir / "checkpoints" / "5")
    (workdir / "checkpoints" / "5" / "state" / "manifest.ocdbt").unlink()
    return workdir


def _listing(directory) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


def test_fill_mask_uses_the_newest_checkpoint_that_restores(workdir_with_damaged_newest):
    workdir = workdir_with_damaged_newest
    before = _listing(workdir)
    result = subprocess.run([sys.executable, "-m", "bert_jax.cli", "fill-mask", "--model", str(workdir),
                             "--top-k", "2", "The [MASK] sat on the mat."], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "score" in result.stdout and "nan" not in result.stdout
    assert "Event loop is closed" not in result.stderr
    [warning] = [line for line in result.stderr.splitlines() if "cannot be restored" in line]
    assert str(workdir / "checkpoints" / "5") in warning and "using step 0" in warning
    assert len(result.stderr.splitlines()) < 10, result.stderr[-3000:]
    assert _listing(workdir) == before  # a reader moves nothing


@pytest.mark.parametrize("command", ["nsp", "encode", "export", "export-serving"])
def test_every_reader_of_a_work_directory_falls_back(workdir_with_damaged_newest, tmp_path, caplog, command):
    workdir = str(workdir_with_damaged_newest)
    (tmp_path / "lines.txt").write_text("The cat sat.\n")
    argv = {"nsp": ["nsp", "--model", workdir, "--pair", "The cat sat.", "It was happy."],
            "encode": ["encode", "--model", workdir, "--input", str(tmp_path / "lines.txt"),
                       "--output", str(tmp_path / "vectors.npy")],
            "export": ["export", "--workdir", workdir, "--output", str(tmp_path / "out")],
            "export-serving": ["export-serving", "--model", workdir, "--output", str(tmp_path / "out"),
                               "--platforms", "cpu"]}[command]
    assert main(argv) == 0
    [warning] = [r.getMessage() for r in caplog.records if "cannot be restored" in r.getMessage()]
    assert "checkpoints/5" in warning and "using step 0" in warning


def test_an_asked_for_damaged_step_is_an_error(workdir_with_damaged_newest, capsys):
    assert main(["fill-mask", "--model", str(workdir_with_damaged_newest), "--step", "5",
                 "The [MASK] sat."]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()[-1:]
    assert f"{workdir_with_damaged_newest / 'checkpoints' / '5'} cannot be restored" in line
    assert "other steps are 0" in line
    assert main(["fill-mask", "--model", str(workdir_with_damaged_newest), "--step", "7",
                 "The [MASK] sat."]) == 2
    assert "no checkpoint of step 7" in capsys.readouterr().err


def test_a_failed_restore_prints_no_event_loop_echoes(tmp_path):
    """orbax's reads left in flight by a failed restore used to print "Event loop is closed" once
    each (hundreds here, thousands for a BERT) after the restore's own error."""
    script = textwrap.dedent(f"""
        import os
        import numpy as np
        from bert_jax.state.checkpointer import Checkpointer
        state = {{f"w{{i}}": np.full((512, 512), i, np.float32) for i in range(60)}}
        checkpointer = Checkpointer({str(tmp_path)!r}, async_save=False)
        checkpointer.save(6, state, {{}})
        checkpointer.wait_until_finished()
        os.remove(os.path.join(checkpointer.directory, "6", "state", "manifest.ocdbt"))
        for _ in range(5):
            try:
                checkpointer.restore(6, state)
            except Exception as e:
                print("failed:", type(e).__name__)
        checkpointer.close()
        import time; time.sleep(1)  # the reads in flight finish
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("failed:") == 5
    assert "Event loop is closed" not in result.stderr, f"{result.stderr.count('Event loop is closed')} echoes"


WORDS = "the cat sat on the mat".split()


def test_fill_mask_truncate_keeps_the_tokens_around_the_masks(hf_dir, capsys):
    from bert_jax.inference.fill_mask import FillMask

    fill_mask = FillMask.load(hf_dir)
    window = fill_mask.buckets.max_length - 2  # 126 of our 200 one-token words
    words = [WORDS[i % len(WORDS)] for i in range(200)]
    words[180] = "[MASK]"
    text = " ".join(words)
    with pytest.raises(ValueError, match="--truncate"):
        fill_mask([text])
    [[ours]] = fill_mask([text], top_k=3, truncate=True)
    # The mask lies in the last `window` words, so they are the window kept.
    [[expected]] = fill_mask([" ".join(words[-window:])], top_k=3)
    assert [p["token"] for p in ours] == [p["token"] for p in expected]
    np.testing.assert_allclose([p["score"] for p in ours], [p["score"] for p in expected], rtol=1e-5)
    assert [p["sequence"] for p in ours] == [p["sequence"] for p in expected]

    apart = " ".join(["[MASK]"] + words[:150] + ["[MASK]"])
    with pytest.raises(ValueError, match="no truncation keeps them all"):
        fill_mask([apart], truncate=True)

    assert main(["fill-mask", "--model", str(hf_dir), "--truncate", text]) == 0
    assert "[MASK]" not in capsys.readouterr().out.splitlines()[1]
    assert main(["fill-mask", "--model", str(hf_dir), text]) == 2
    assert "--truncate" in capsys.readouterr().err


def test_sharded_and_pytorch_weights_are_checked_too(tmp_path):
    """The other Hugging Face layouts: a shard of a safetensors index holding an infinity, a
    pytorch_model.bin holding a NaN or cut short."""
    import torch
    from safetensors.numpy import save_file

    from bert_jax.convert.hf_import import read_weights

    sharded = tmp_path / "sharded"
    sharded.mkdir()
    save_file({"a": np.ones(4, np.float32)}, sharded / "model-00001-of-00002.safetensors")
    save_file({"b": np.array([1, np.inf], np.float32)}, sharded / "model-00002-of-00002.safetensors")
    (sharded / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {
        "a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}))
    with pytest.raises(DamagedWeights, match=r"model-00002-of-00002.safetensors: tensor b holds 1 non-finite"):
        read_weights(sharded)
    (sharded / "model.safetensors.index.json").write_text("{not json")
    with pytest.raises(DamagedWeights, match=r"model.safetensors.index.json: not a safetensors index"):
        read_weights(sharded)

    pytorch = tmp_path / "pytorch"
    pytorch.mkdir()
    torch.save({"a": torch.ones(64), "b": torch.tensor([1.0, float("nan")])}, pytorch / "pytorch_model.bin")
    with pytest.raises(DamagedWeights, match=r"pytorch_model.bin: tensor b holds 1 non-finite"):
        read_weights(pytorch)
    raw = (pytorch / "pytorch_model.bin").read_bytes()
    (pytorch / "pytorch_model.bin").write_bytes(raw[:len(raw) // 2])
    with pytest.raises(DamagedWeights, match=r"pytorch_model.bin: unreadable as a PyTorch state dict"):
        read_weights(pytorch)


def test_google_checkpoint_variables_are_checked(tmp_path):
    import tensorflow as tf

    from bert_jax.convert.google_checkpoint import _CheckpointVariables

    prefix = tf.train.Checkpoint(v=tf.Variable([1.0, float("nan")])).write(str(tmp_path / "bert_model.ckpt"))
    variables = _CheckpointVariables(tf.train.load_checkpoint(prefix), prefix)
    [name] = [n for n in variables if n.startswith("v/")]
    with pytest.raises(DamagedWeights, match=rf"bert_model.ckpt: tensor {name} holds 1 non-finite"):
        variables[name]
