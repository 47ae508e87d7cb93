"""The one table of our parameters' names and conversions (`bert_jax.convert.parameter_table`):
through each format and back, in each layout, every parameter comes back bit for bit; the table
covers every parameter once; and its Hugging Face side is `transformers`' own `BertForPreTraining`
(names, shapes, and its tensors through us and back unchanged). Google's side is checked against
Google's own code in tests/integration/test_import_references.py."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bert_jax.convert.google_checkpoint import from_google_variables, to_google_variables
from bert_jax.convert.hf_export import to_huggingface_state_dict
from bert_jax.convert.hf_import import from_huggingface_state_dict
from bert_jax.convert.imported import flatten, in_layout, parameter_shapes
from bert_jax.convert.parameter_table import FORMATS, parameter_table
from bert_jax.model import BertConfig
from tests.support.export_fixtures import perturbed_params

# Every size differs (hidden, heads, head_dim, intermediate, vocab, positions), so a reshape that
# mixes two axes up cannot come out with the right shape by chance.
CONFIG = BertConfig(vocab_size=97, hidden_size=24, num_layers=3, num_heads=4, intermediate_size=40,
                    max_position_embeddings=20, type_vocab_size=3)

EXPORT = {"huggingface": to_huggingface_state_dict, "google": to_google_variables}


def _import(format: str, tensors: dict, config: BertConfig):
    if format == "huggingface":
        return from_huggingface_state_dict(tensors, config)
    return from_google_variables(tensors, config)


@pytest.mark.parametrize("scan_layers", [False, True])
@pytest.mark.parametrize("format", FORMATS)
def test_through_each_format_and_back_is_bit_identical(format, scan_layers):
    config = dataclasses.replace(CONFIG, scan_layers=scan_layers)
    params = perturbed_params(config)
    theirs = EXPORT[format](params, config)
    assert all(value.dtype == np.float32 for value in theirs.values())
    back, missing, ignored = _import(format, theirs, config)
    assert missing == [] and ignored == []
    back, original = flatten(in_layout(back, config)), flatten(params)
    assert back.keys() == original.keys()
    for key, value in original.items():
        assert back[key].dtype == value.dtype and np.array_equal(back[key], value), (format, key)


def test_the_table_names_every_parameter_once():
    table = list(parameter_table(CONFIG))
    assert sorted("/".join(p.path) for p in table) == sorted(parameter_shapes(CONFIG))
    for format in FORMATS:
        names = [p.stored(format).name for p in table]
        assert len(set(names)) == len(names), format
    # The heads a source may lack (initialized afresh), and only those.
    heads = {"/".join(p.path) for p in table if p.head}
    assert heads == {key for key in parameter_shapes(CONFIG)
                     if key.startswith(("bert/pooler/", "masked_lm/", "next_sentence/"))}


def test_huggingface_side_is_transformers_bert_for_pretraining():
    """Our export has `transformers`' names and shapes (less the tied decoder and a constant
    buffer), and its own tensors come back unchanged through our parameters."""
    import torch
    import transformers

    hf_config = transformers.BertConfig(
        vocab_size=CONFIG.vocab_size, hidden_size=CONFIG.hidden_size,
        num_hidden_layers=CONFIG.num_layers, num_attention_heads=CONFIG.num_heads,
        intermediate_size=CONFIG.intermediate_size, max_position_embeddings=CONFIG.max_position_embeddings,
        type_vocab_size=CONFIG.type_vocab_size)
    torch.manual_seed(0)
    model = transformers.BertForPreTraining(hf_config)
    with torch.no_grad():  # off the constant initial biases and LayerNorm scales
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    state = {name: value.numpy() for name, value in model.state_dict().items()
             if name not in ("cls.predictions.decoder.weight", "cls.predictions.decoder.bias",
                             "bert.embeddings.position_ids")}

    ours = to_huggingface_state_dict(perturbed_params(CONFIG), CONFIG)
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in state.items()}

    params, missing, ignored = from_huggingface_state_dict(state, CONFIG)
    assert missing == [] and ignored == []
    again = to_huggingface_state_dict(params, CONFIG)
    for name, value in state.items():
        assert np.array_equal(again[name], value), name
