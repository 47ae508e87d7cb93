"""An exported tiny model and its config, shared by the export tests."""

from __future__ import annotations

import numpy as np
import pytest

from bert_jax.convert.hf_export import export_to_huggingface
from bert_jax.model import BertConfig

CONFIG = BertConfig(vocab_size=0, hidden_size=48, num_layers=3, num_heads=4, intermediate_size=96,
                    max_position_embeddings=128)


def perturbed_params(config: BertConfig, seed: int = 0):
    """Parameters of `config` (scanned or not) whose every leaf (biases and LayerNorm scales
    included) is off its initial constant, so a parameter exported to the wrong place cannot go
    unnoticed. Drawn with numpy: compiling an initialization takes ten seconds on a busy CPU."""
    from bert_jax.convert.imported import in_layout, parameter_shapes, set_path

    rng = np.random.default_rng(seed)
    params: dict = {}
    for path, shape in parameter_shapes(config).items():
        initial = 1.0 if path.endswith("/scale") else 0.0
        set_path(params, tuple(path.split("/")),
                 (initial + 0.05 * rng.standard_normal(shape)).astype(np.float32))
    return in_layout(params, config)


@pytest.fixture(scope="module", params=["gelu", "gelu_tanh"])
def exported(request, tmp_path_factory, uncased_vocab_path):
    vocab_size = sum(1 for _ in open(uncased_vocab_path, encoding="utf-8"))
    config = BertConfig(**{**CONFIG.__dict__, "vocab_size": vocab_size, "hidden_act": request.param})
    params = perturbed_params(config)
    out = tmp_path_factory.mktemp("export") / "hf"
    export_to_huggingface(params, config, uncased_vocab_path, True, out)
    return config, params, out


SP_VOCAB_SIZE = 800


@pytest.fixture(scope="session", params=["unigram", "bpe"])
def sentencepiece_export(request, tmp_path_factory):
    """(config, params, tokenizer, export directory) of a tiny model with an 800-piece
    SentencePiece vocab trained on docstrings; one per session (three test files read it, none
    changes it)."""
    from conftest import stdlib_docstring_lines

    from input_pipeline.vocabulary.sentencepiece import train_sentencepiece

    root = tmp_path_factory.mktemp(f"sentencepiece_{request.param}")
    tokenizer = train_sentencepiece(stdlib_docstring_lines(8000), root / "sp.model", SP_VOCAB_SIZE,
                                    model_type=request.param)
    config = BertConfig(**{**CONFIG.__dict__, "vocab_size": SP_VOCAB_SIZE})
    params = perturbed_params(config)
    export_to_huggingface(params, config, root / "sp.model", True, root / "hf")
    return config, params, tokenizer, root / "hf"
