"""Fill-mask from our checkpoint against `transformers`' fill-mask pipeline on the export of the
same checkpoint: the same tokens, token strings and sequences, scores within 1e-4."""

from __future__ import annotations

import pytest
import transformers

from bert_jax.experiment_config import bert_config
from bert_jax.fill_mask import FillMask
from bert_jax.hf_export import export_to_huggingface
from bert_jax.train import load_trained_params, train_and_evaluate

TEXTS = [
    "Return the [MASK] of the file.",
    "If the [MASK] is not found, raise a ValueError.",
    "This [MASK] returns a new [MASK] object.",
]


@pytest.fixture(scope="module")
def trained(tiny_run_config, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("fill_mask_run")
    config = tiny_run_config(num_steps=60, log_every=30)
    config.data.eval_files = ""
    train_and_evaluate(config, workdir)
    params, config, _ = load_trained_params(workdir)
    export = export_to_huggingface(params, bert_config(config), config.data.vocab_file,
                                   config.data.do_lower_case, workdir / "export")
    return workdir, export


def test_predictions_match_the_transformers_pipeline(trained):
    workdir, export = trained
    ours = FillMask.from_workdir(workdir)(TEXTS, top_k=5)
    pipeline = transformers.pipeline("fill-mask", model=str(export), top_k=5)
    for text, per_mask in zip(TEXTS, ours):
        theirs = pipeline(text)
        theirs = [theirs] if isinstance(theirs[0], dict) else theirs  # One mask: a flat list.
        assert len(per_mask) == len(theirs) == text.count("[MASK]")
        for our_predictions, their_predictions in zip(per_mask, theirs):
            assert [p["token"] for p in our_predictions] == [p["token"] for p in their_predictions]
            assert [p["token_str"] for p in our_predictions] == [p["token_str"] for p in their_predictions]
            assert [p["sequence"] for p in our_predictions] == [p["sequence"] for p in their_predictions]
            for a, b in zip(our_predictions, their_predictions):
                assert a["score"] == pytest.approx(b["score"], abs=1e-4)


def test_batches_give_the_same_answers_as_single_texts(trained):
    workdir, _ = trained
    fill_mask = FillMask.from_workdir(workdir)
    batched = fill_mask(TEXTS, top_k=3)
    for text, expected in zip(TEXTS, batched):
        single = fill_mask(text, top_k=3)[0]
        assert [[p["token"] for p in m] for m in single] == [[p["token"] for p in m] for m in expected]


def test_text_without_mask_is_refused(trained):
    with pytest.raises(ValueError, match="has no \\[MASK\\]"):
        FillMask.from_workdir(trained[0])("no mask here")
