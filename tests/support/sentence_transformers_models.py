"""A tiny random BERT and texts for the sentence-transformers tests, and `sentence_transformers`
itself as the reference encoder, shared by tests/integration/test_sentence_transformers.py and
tests/integration/test_sentence_transformers_workdir.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bert_jax.model import BertConfig
from input_pipeline.tokenizers.loading import load_tokenizer
from tests.support.export_fixtures import perturbed_params

# Short and long, cased, accented, CJK, digits, a capital sigma ending a word: under 48 tokens.
TEXTS = ["Hello world.", "A", "The quick brown fox jumps over the lazy dog.",
         "Sentence embeddings map text to vectors whose distances reflect meaning.",
         "naïve café résumé — déjà vu", "東京は日本の首都です。", "ΟΔΟΣ ΑΘΗΝΑΣ", "Call 555-0100 at 9:30.",
         "Photosynthesis converts light energy into chemical energy stored in glucose."]

TOLERANCE = 1e-5


def sentence_transformers_encode(directory: Path, texts: list[str], **kwargs) -> np.ndarray:
    """`SentenceTransformer(directory).encode(texts)` on the CPU, in one batch."""
    import sentence_transformers  # a pinned test dependency: missing, the tests fail, not skip

    model = sentence_transformers.SentenceTransformer(str(directory), device="cpu")
    return model.encode(texts, batch_size=len(texts), convert_to_numpy=True, **kwargs)


def assert_close(ours: np.ndarray, theirs: np.ndarray, what: str) -> None:
    """Within TOLERANCE everywhere; prints the largest difference."""
    difference = float(np.abs(ours - theirs).max())
    print(f"{what}: max abs difference {difference:.3g}")
    assert ours.shape == theirs.shape and difference <= TOLERANCE, what


@pytest.fixture(scope="module")
def tiny(uncased_vocab_path):
    """(config, params, tokenizer, vocab) of a tiny random BERT whose every parameter is off its
    initial value."""
    config = BertConfig(vocab_size=30522, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
                        max_position_embeddings=64, scan_layers=False)
    return config, perturbed_params(config), load_tokenizer(uncased_vocab_path, do_lower_case=True), uncased_vocab_path
