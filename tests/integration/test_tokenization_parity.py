"""Tokenizer parity with transformers at scale: real text with an uncased and a genuinely cased
vocab, text in many scripts, random Unicode, long words, and BERT's character classes over every
code point; the tokenizer.json of a WordPiece export gives our ids on the same text."""

from __future__ import annotations

import random
import sys
import unicodedata

import pytest
import tokenizers
from conftest import pydoc_topic_lines, stdlib_docstring_lines, stdlib_non_english_lines

from bert_jax.convert.hf_tokenizer import write_tokenizer_files
from tests.support.tokenizer_pairs import CASED, UNCASED, VOCAB_CASINGS, assert_same_ids, transformers

CORPORA = {
    "docstrings": (stdlib_docstring_lines, 20_000),
    "pydoc-topics": (pydoc_topic_lines, 5_000),
    "non-english": (stdlib_non_english_lines, 1_000),
}


@pytest.mark.parametrize("do_lower_case, vocab", VOCAB_CASINGS)
@pytest.mark.parametrize("corpus", list(CORPORA))
def test_real_text_matches_transformers(corpus, do_lower_case, vocab, hf_tokenizer, our_tokenizer):
    lines_of, min_lines = CORPORA[corpus]
    lines = lines_of()
    assert len(lines) >= min_lines, f"only {len(lines)} lines of {corpus}"
    assert_same_ids(our_tokenizer(do_lower_case, vocab=vocab),
                    hf_tokenizer(do_lower_case, vocab=vocab), lines)


def _random_unicode_texts(count: int, seed: int) -> list[str]:
    """Strings mixing random code points from all planes (surrogates excluded) with ASCII letters,
    digits and spaces, so that words form around the unusual characters."""
    rng = random.Random(seed)
    ascii_part = "abcdefghijklmnopqrstuvwxyz ABCXYZ 0123456789 .,'"

    def code_point() -> str:
        while True:
            if rng.random() < 0.5:  # The BMP, where most characters are.
                cp = rng.randrange(0x80, 0x10000)
            else:
                cp = rng.randrange(0x10000, sys.maxunicode + 1)
            if not 0xD800 <= cp <= 0xDFFF:
                return chr(cp)

    return ["".join(code_point() if rng.random() < 0.4 else rng.choice(ascii_part)
                    for _ in range(rng.randrange(1, 40)))
            for _ in range(count)]


@pytest.mark.parametrize("do_lower_case, vocab", VOCAB_CASINGS)
def test_random_unicode_matches_transformers(do_lower_case, vocab, hf_tokenizer, our_tokenizer):
    texts = _random_unicode_texts(3000, seed=1234)
    assert_same_ids(our_tokenizer(do_lower_case, vocab=vocab),
                    hf_tokenizer(do_lower_case, vocab=vocab), texts)


def test_character_classes_match_tokenizers(hf_tokenizer, our_tokenizer):
    """Every code point, as the middle of the word "a?b": removed (control), a space, split off
    (punctuation, CJK), stripped (accent) or kept shows in the ids. This checks the tables of
    characters `tokenizers` classifies differently from the running Python's `unicodedata`.
    Cased, only the code points that are not letters or unassigned (the rest are checked
    uncased, where lower-casing and accent stripping are also at work)."""
    all_points = [cp for cp in range(sys.maxunicode + 1) if not 0xD800 <= cp <= 0xDFFF]
    not_letters = [cp for cp in all_points
                   if unicodedata.category(chr(cp))[0] not in "L" and not 0xF0000 <= cp
                   and unicodedata.category(chr(cp)) != "Cn"]
    for do_lower_case, points in ((UNCASED, all_points), (CASED, not_letters)):
        texts = [" ".join(f"a{chr(cp)}b" for cp in points[i:i + 256])
                 for i in range(0, len(points), 256)]
        assert_same_ids(our_tokenizer(do_lower_case), hf_tokenizer(do_lower_case), texts)


def test_non_english_text_covers_many_scripts():
    """The non-English corpus really is: it reaches well beyond Latin-1."""
    scripts = {unicodedata.name(c, "?").split()[0] for line in stdlib_non_english_lines()
               for c in line if c.isalpha() and not c.isascii()}
    assert {"CYRILLIC", "GREEK", "HEBREW", "ARABIC", "THAI"} <= scripts


@pytest.mark.parametrize("max_chars", [100, 200])
def test_max_input_chars_per_word_matches_transformers(max_chars, hf_tokenizer, our_tokenizer):
    words = ["abcdefghij" * 20 + "abc"[:n % 4] for n in range(4)]
    words += [("abcdefghij" * 21)[:n] for n in range(95, 206)]
    words += ["é" * n for n in (99, 100, 101, 199, 200, 201)]
    texts = words + [" ".join(words[i:i + 5]) for i in range(0, len(words), 5)]
    texts += stdlib_docstring_lines()[:2000]
    for do_lower_case in (UNCASED, CASED):
        assert_same_ids(our_tokenizer(do_lower_case, max_chars),
                        hf_tokenizer(do_lower_case, max_chars), texts)
    # The setting takes effect: a 150-character word is [UNK] only under the lower limit.
    tokens = our_tokenizer(UNCASED, max_chars).tokenize("abcdefghij" * 15)
    assert (tokens == ["[UNK]"]) == (max_chars < 150)


@pytest.mark.parametrize("do_lower_case, vocab", VOCAB_CASINGS)
def test_exported_tokenizer_json_matches_ours(do_lower_case, vocab, vocab_path, our_tokenizer, tmp_path):
    """The tokenizer.json of a WordPiece export, as `tokenizers` (what text-embeddings-inference
    runs) reads it, gives our ids on every corpus above, random Unicode and typed special tokens;
    `transformers.AutoTokenizer` loads it with no vocab.txt beside it, and adds [CLS] A [SEP] B
    [SEP] with segment ids."""
    write_tokenizer_files(vocab_path(vocab), do_lower_case, 128, tmp_path)
    fast = tokenizers.Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    ours = our_tokenizer(do_lower_case, vocab=vocab)
    texts = [line for lines_of, _ in CORPORA.values() for line in lines_of()]
    texts += _random_unicode_texts(3000, seed=99) + ["a [MASK] b [SEP] [CLS]x [PAD][UNK]"]
    encodings = fast.encode_batch(texts, add_special_tokens=False)
    mismatches = [(text, e.tokens) for text, e in zip(texts, encodings) if e.ids != ours.encode(text)]
    assert not mismatches, f"{len(mismatches)} of {len(texts)} texts differ, e.g. {mismatches[:3]}"

    (tmp_path / "vocab.txt").unlink()
    auto = transformers.AutoTokenizer.from_pretrained(tmp_path)
    pair = auto("The first text.", "Ça va?")
    first, second = ours.encode("The first text."), ours.encode("Ça va?")
    assert pair["input_ids"] == [ours.cls_id, *first, ours.sep_id, *second, ours.sep_id]
    assert pair["token_type_ids"] == [0] * (len(first) + 2) + [1] * (len(second) + 1)
