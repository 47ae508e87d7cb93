"""Export of a checkpoint sharded over 8 devices (written in a subprocess with 8 fake CPU
devices), loaded by transformers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bert_jax.convert.hf_export import export_to_huggingface

_SHARDED_SAVE = """
import dataclasses, sys
import jax
from bert_jax.config.defaults import default_config
from bert_jax.config.validation import bert_config, config_rules
from bert_jax.parallel import sharding
from bert_jax.state.train_state import create_state, pretraining_init, state_shardings
from bert_jax.convert.sources import initialize_params, load_pretrained
from bert_jax.state.checkpointer import Checkpointer
from bert_jax.model import BertForPreTraining
from bert_jax.state.optimizer import make_optimizer
from bert_jax.config.run import OptimizerConfig

source, workdir = sys.argv[1:3]
config = default_config()
config.model.update(dataclasses.asdict(load_pretrained(source).config))
config.model.scan_layers = True
config.mesh.shape.update({"data": 2, "fsdp": 2, "tensor": 2})
mesh = sharding.make_mesh(config.mesh.shape)
model = BertForPreTraining(bert_config(config))
init = pretraining_init(model, config.data.max_seq_length, config.data.max_predictions_per_seq)
optimizer, _ = make_optimizer(OptimizerConfig.from_config(config.optimizer), config.train.num_steps)
shardings = state_shardings(init, optimizer, mesh, config_rules(config))
state = create_state(init, optimizer, shardings, config.train.seed)
state = state.replace(params=initialize_params(source, state.params, shardings.params, model.config))
query = state.params["bert"]["layers"]["layer"]["attention"]["query"]["kernel"]
print("devices", jax.device_count(), "query kernel shards", len({str(s.index) for s in query.addressable_shards}))
checkpointer = Checkpointer(workdir, async_save=False)
checkpointer.save(0, state, config.to_dict())
checkpointer.wait_until_finished()
checkpointer.close()
"""


@pytest.mark.parametrize("exported", ["gelu"], indirect=True)  # one activation is enough here
def test_export_of_a_checkpoint_sharded_over_8_devices(exported, tmp_path):
    """The export, loaded with `train.init_from` into a train state sharded over a 2x2x2 mesh of 8
    (fake CPU) devices and saved there, then exported again from that checkpoint on one device:
    the same tensors, bit for bit."""
    import os
    import subprocess
    import sys

    from safetensors.numpy import load_file

    from bert_jax.state.trained_params import load_trained_params

    config, _, out = exported
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
           "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run([sys.executable, "-c", _SHARDED_SAVE, str(out), str(tmp_path / "run")],
                            capture_output=True, text=True, env=env, timeout=600,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "devices 8 query kernel shards 4" in result.stdout  # heads over tensor, hidden over fsdp
    params, run_config, _ = load_trained_params(tmp_path / "run")
    again = export_to_huggingface(params, config, out / "vocab.txt", True, tmp_path / "again")
    first, second = load_file(str(out / "model.safetensors")), load_file(str(again / "model.safetensors"))
    assert first.keys() == second.keys()
    assert all(np.array_equal(first[k], second[k]) for k in first)
