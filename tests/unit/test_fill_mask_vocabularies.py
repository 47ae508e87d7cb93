"""Fill-mask against `transformers`' fill-mask pipeline on models that need no training: a model
vocab padded past its vocab file, and SentencePiece vocabs (an export imported back); and
`pipeline_decode` against the exported tokenizer's decode. From the trained tiny model and the
command line: tests/integration/test_fill_mask.py; from a Google TensorFlow checkpoint, and compiling
once per bucket shape with batches giving the answers single texts do:
tests/integration/test_import_references.py and test_inference_compilation.py."""

from __future__ import annotations

import numpy as np
import pytest
import transformers

from bert_jax.inference.fill_mask import FillMask, pipeline_decode
from tests.support.inference_texts import MASKED_TEXTS
from tests.support.pipeline_parity import assert_matches_pipeline

# The SentencePiece export (unigram and BPE) of test_export, as a fixture of this module too.

TEXTS = MASKED_TEXTS


def test_a_model_vocab_padded_past_the_vocab_file_matches_the_pipeline(tmp_path, uncased_vocab_path):
    """A model vocab larger than the vocab file (allowed, and suggested for sharding) has ids with
    no token; where they rank among the top k, the pipeline gives them an empty token string and
    leaves them out of the sequence. Their output biases are raised so that they rank first."""
    from bert_jax.convert.hf_export import export_to_huggingface
    from bert_jax.model import BertConfig
    from input_pipeline.tokenizers.loading import load_tokenizer
    from tests.support.export_fixtures import perturbed_params

    vocab_lines = sum(1 for _ in open(uncased_vocab_path, encoding="utf-8"))
    config = BertConfig(vocab_size=-(-vocab_lines // 128) * 128, hidden_size=16, num_layers=1, num_heads=2,
                        intermediate_size=32, max_position_embeddings=64)
    assert config.vocab_size > vocab_lines + 2
    params = perturbed_params(config)
    params["masked_lm"]["output_bias"][vocab_lines:vocab_lines + 2] += 20.0
    export = export_to_huggingface(params, config, uncased_vocab_path, True, tmp_path / "hf")
    fill_mask = FillMask(params, config, load_tokenizer(uncased_vocab_path, do_lower_case=True))
    ours = fill_mask(TEXTS, top_k=4)
    assert {p["token"] for per_mask in ours for predictions in per_mask for p in predictions[:2]} == {
        vocab_lines, vocab_lines + 1}
    assert_matches_pipeline(TEXTS, ours, transformers.pipeline("fill-mask", model=str(export), top_k=4))


# Masks glued to text and to each other, and characters the small SentencePiece vocab lacks
# ([UNK], which the pipeline leaves out of a single mask's sequence with the other specials).
SENTENCEPIECE_TEXTS = TEXTS + ["naïve CAFÉ [MASK] déjà vu.", "x[MASK]y", "a [MASK][MASK] b"]


def test_sentencepiece_import_matches_the_pipeline(sentencepiece_export):
    """FillMask on the import of a SentencePiece export (unigram and BPE) against the pipeline on
    the export: sequences too, which `transformers` decodes with the tokenizer.json's decoder
    (a special token glued to the piece before it, a skipped [UNK] joining its neighbours)."""
    *_, out = sentencepiece_export
    fill_mask = FillMask.load(out)
    assert fill_mask.tokenizer.unk_id in fill_mask.tokenizer.encode(SENTENCEPIECE_TEXTS[3])
    ours = fill_mask(SENTENCEPIECE_TEXTS, top_k=5)
    pipeline = transformers.pipeline("fill-mask", model=str(out), top_k=5)
    largest = assert_matches_pipeline(SENTENCEPIECE_TEXTS, ours, pipeline)
    print(f"fill-mask (SentencePiece import) max |score difference| vs the pipeline: {largest:.2e}")


@pytest.mark.parametrize("byte_fallback", [False, True])
def test_pipeline_decode_is_the_exported_tokenizers_decode(tmp_path, byte_fallback):
    """`pipeline_decode` against `AutoTokenizer.decode` on our export's tokenizer files, for
    random id sequences mixing special, byte (with byte_fallback) and ordinary pieces, with and
    without skipping the special tokens."""
    from conftest import stdlib_docstring_lines

    from bert_jax.convert.hf_tokenizer import write_tokenizer_files
    from input_pipeline.vocabulary.sentencepiece import train_sentencepiece

    ours = train_sentencepiece(stdlib_docstring_lines(3000), tmp_path / "sp.model", 600,
                               byte_fallback=byte_fallback)
    write_tokenizer_files(tmp_path / "sp.model", True, 128, tmp_path)
    theirs = transformers.AutoTokenizer.from_pretrained(tmp_path)
    rng = np.random.default_rng(0)
    bytes_ = [i for i, p in enumerate(ours.convert_ids_to_tokens(range(ours.vocab_size)))
              if p.startswith("<0x")]
    assert len(bytes_) == (256 if byte_fallback else 0)
    utf8 = ours.convert_tokens_to_ids(f"<0x{b:02X}>" for b in "é€".encode()) if byte_fallback else []
    for _ in range(200):
        ids = rng.integers(0, ours.vocab_size, int(rng.integers(1, 12))).tolist()
        ids[int(rng.integers(len(ids)))] = int(rng.choice(sorted(ours.special_ids)))
        if byte_fallback:  # a valid UTF-8 run and stray bytes
            ids[int(rng.integers(len(ids))):0] = utf8 + [int(rng.choice(bytes_))]
        for skip in (False, True):
            assert pipeline_decode(ours, ids, skip) == theirs.decode(ids, skip_special_tokens=skip), ids
