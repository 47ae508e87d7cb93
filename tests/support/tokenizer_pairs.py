"""Our tokenizer and transformers' for the same vocab, shared by the tokenizer tests."""

from __future__ import annotations

import functools

import pytest
from conftest import pydoc_topic_lines, stdlib_non_english_lines

from input_pipeline.tokenizers.wordpiece import BasicTokenizer, BertTokenizer, save_vocab
from input_pipeline.vocabulary.wordpiece import count_words, train_wordpiece

transformers = pytest.importorskip("transformers")


UNCASED, CASED = True, False


# (do_lower_case, vocab): the uncased vocab both ways, and a genuinely cased vocab (trained here)
# cased: with the uncased vocab, cased text finds few of its capitalized words, so "cased" alone
# barely exercises WordPiece on capitals.
VOCAB_CASINGS = [pytest.param(UNCASED, "uncased", id="uncased"),
                 pytest.param(CASED, "uncased", id="cased"),
                 pytest.param(CASED, "cased", id="cased-vocab")]


CASED_VOCAB_SIZE = 4000


@pytest.fixture(scope="module")
def vocab_path(uncased_vocab_path, tmp_path_factory):
    """`vocab_path(name)`: the real uncased 30k vocab ("uncased"), or a 4k cased vocab ("cased")
    trained, on first use, on the language reference and the non-English lines -- other text than
    the docstrings it is compared on, so that those meet unseen words, splits and [UNK]s."""
    @functools.cache
    def path(name: str) -> str:
        if name == "uncased":
            return uncased_vocab_path
        assert name == "cased", name
        counts = count_words(pydoc_topic_lines() + stdlib_non_english_lines(),
                             BasicTokenizer(do_lower_case=False))
        tokens = train_wordpiece(counts, CASED_VOCAB_SIZE)
        assert len(tokens) == CASED_VOCAB_SIZE
        # Cased for real: a hundred or more capitalized tokens ("The", "TypeError"; 149), most
        # beside their lower-case form ("the"; 117).
        capitalized = [t for t in tokens if t[:1].isupper() and len(t) > 1]
        assert len(capitalized) > 100, capitalized
        assert sum(t.lower() in tokens for t in capitalized) > 75, capitalized
        out = str(tmp_path_factory.mktemp("cased_vocab") / "vocab.txt")
        save_vocab(tokens, out)
        return out
    return path


@pytest.fixture(scope="module")
def hf_tokenizer(vocab_path):
    """`hf_tokenizer(do_lower_case, max_input_chars_per_word=100, vocab="uncased")`: the
    reference, cached."""
    @functools.cache
    def make(do_lower_case: bool, max_input_chars_per_word: int = 100, vocab: str = "uncased"):
        tokenizer = transformers.BertTokenizer(vocab_path(vocab), do_lower_case=do_lower_case)
        # `BertTokenizer` has no argument for it; the Rust model does.
        tokenizer.backend_tokenizer.model.max_input_chars_per_word = max_input_chars_per_word
        return tokenizer
    return make


@pytest.fixture(scope="module")
def our_tokenizer(vocab_path):
    """`our_tokenizer(do_lower_case, max_input_chars_per_word=100, vocab="uncased")`, cached."""
    @functools.cache
    def make(do_lower_case: bool, max_input_chars_per_word: int = 100,
             vocab: str = "uncased") -> BertTokenizer:
        return BertTokenizer.from_vocab_file(vocab_path(vocab), do_lower_case=do_lower_case,
                                             max_input_chars_per_word=max_input_chars_per_word)
    return make


def assert_same_ids(ours: BertTokenizer, hf, texts) -> None:
    """Asserts that `ours.encode` gives `hf`'s ids for every text (one batched `hf` call)."""
    texts = list(texts)
    expected = hf(texts, add_special_tokens=False)["input_ids"]
    mismatches = [(text, want, got) for text, want in zip(texts, expected)
                  if (got := ours.encode(text)) != want]
    if mismatches:
        report = "\n".join(f"  {text[:200]!r}\n    transformers: {hf.convert_ids_to_tokens(want)}"
                           f"\n    ours:         {ours.convert_ids_to_tokens(got)}"
                           for text, want, got in mismatches[:5])
        pytest.fail(f"{len(mismatches)} of {len(texts)} texts tokenize differently, "
                    f"e.g.:\n{report}")
