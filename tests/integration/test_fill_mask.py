"""Fill-mask from our checkpoint (the tiny model trained by `tiny_trained_model`), and from its
export, against `transformers`' fill-mask pipeline on the export: the same tokens, token strings
and sequences (one mask or several), scores within 1e-4; and the command line. With a model vocab
padded past the vocab file and a SentencePiece vocab (an export imported back), which need no
training: tests/unit/test_fill_mask_vocabularies.py. From a Google TensorFlow checkpoint, and
compiling once per bucket shape: test_import_references.py and test_inference_compilation.py."""

from __future__ import annotations

import json

import pytest
import transformers

from bert_jax.cli import main
from bert_jax.inference.fill_mask import FillMask
from tests.support.inference_texts import MASKED_TEXTS
from tests.support.pipeline_parity import assert_matches_pipeline

TEXTS = MASKED_TEXTS


@pytest.mark.parametrize("source", ["workdir", "export"])
def test_predictions_match_the_transformers_pipeline(tiny_trained_model, source):
    workdir, export = tiny_trained_model
    ours = FillMask.load(workdir if source == "workdir" else export)(TEXTS, top_k=5)
    pipeline = transformers.pipeline("fill-mask", model=str(export), top_k=5)
    largest = assert_matches_pipeline(TEXTS, ours, pipeline)
    print(f"fill-mask ({source}) max |score difference| vs the pipeline: {largest:.2e}")


def test_text_without_mask_is_refused(tiny_trained_model):
    with pytest.raises(ValueError, match="has no \\[MASK\\]"):
        FillMask.from_workdir(tiny_trained_model[0])("no mask here")


def test_command_line_reads_texts_from_a_file_and_prints_json(tiny_trained_model, tmp_path, capsys):
    workdir, export = tiny_trained_model
    texts = tmp_path / "texts.txt"
    texts.write_text(TEXTS[1] + "\n\n" + TEXTS[2] + "\n", encoding="utf-8")
    assert main(["fill-mask", TEXTS[0], "--file", str(texts), "--model", str(export),
                 "--format", "json", "--top-k", "2"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in records] == TEXTS
    assert records == [{"text": t, "predictions": p}
                       for t, p in zip(TEXTS, FillMask.load(workdir)(TEXTS, top_k=2))]
    assert main(["fill-mask", "--workdir", str(workdir), "nothing to fill"]) == 2
    assert "has no [MASK]" in capsys.readouterr().err
    assert main(["fill-mask", "--model", str(workdir)]) == 2
    assert "no texts with [MASK]" in capsys.readouterr().err
