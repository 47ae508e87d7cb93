"""Our WordPiece tokenizer against `transformers.BertTokenizer` (the Rust `tokenizers` backend).

The reference is `hf(texts, add_special_tokens=False)["input_ids"]` with the same vocab and
settings (the real uncased vocab lower-cased and not, and a cased vocab trained here, cased),
and every comparison must give identical ids: on tens of thousands of real lines from the
standard library (English docstrings, the language reference, and non-English text), crafted edge
cases, random Unicode, and every code point one at a time. Where the pure-Python
`BertTokenizerLegacy` disagrees with the reference, a test shows the disagreement and that we
follow the reference."""

from __future__ import annotations

import unicodedata

import pytest
from conftest import stdlib_docstring_lines, stdlib_non_english_lines

from input_pipeline.tokenizers.wordpiece import SPECIAL_TOKENS, BasicTokenizer, BertTokenizer, load_vocab, save_vocab
from tests.support.tokenizer_pairs import CASED, UNCASED, VOCAB_CASINGS, assert_same_ids, transformers

CASINGS = [pytest.param(UNCASED, id="uncased"), pytest.param(CASED, id="cased")]


def _nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


EDGE_CASES = {
    # Accents, composed and not.
    "accents-precomposed": "café résumé naïve Ångström Crème Brûlée",
    "accents-decomposed-nfd": _nfd("café résumé naïve Ångström Crème Brûlée"),
    "accents-nfc-and-nfd-mixed": "cafe\u0301 café CAFE\u0301 CAFÉ",
    "accents-stacked-marks": "e\u0301\u0302\u0323x o\u0308\u0304 a\u0300\u0300\u0300",
    "accent-alone": "\u0301 \u0301a a \u0301",
    "vietnamese": "Tiếng Việt có dấu: Người ta nói rằng",
    # CJK.
    "cjk-chinese": "我爱北京天安门。今天天气很好！",
    "cjk-japanese-kanji-and-kana": "東京は日本の首都です。カタカナ、ひらがな",
    "cjk-extension-a": "\u3400\u4dbf a\u3400b",
    "cjk-extension-b": "\U00020000\U0002A6DF 𠀋𠂉 a\U00020001b",
    "cjk-extensions-c-to-f": "a\U0002A700b a\U0002B740b a\U0002B81Fb a\U0002B820b a\U0002B91Fb "
                             "a\U0002B920b a\U0002CEAFb a\U0002CEB0b",
    "cjk-compatibility-ideographs": "\uF900\uF981\uFAFF a\uF901b \U0002F800\U0002FA1D",
    "cjk-radicals-not-ideographs": "\u2F00\u2E80 a\u2F00b",
    "hangul-syllables": "안녕하세요 세계! 한국어",
    "hangul-syllables-nfd": _nfd("안녕하세요 세계! 한국어"),
    "hangul-jamo": "\u1100\u1161\u11A8 \u1112\u1161\u11AB",
    "hangul-compatibility-jamo": "ㄱㄴㄷ ㅏㅑ",
    "kana": "ひらがな カタカナ ｶﾀｶﾅ ガ カ\u3099 ぱ",
    # Control and format characters.
    "control-nul": "a\x00b \x00",
    "control-bell-and-escape": "a\x07b\x1b[0m",
    "control-del": "a\x7fb",
    "control-next-line-u0085": "a\x85b",
    "control-info-separators": "a\x1cb\x1dc\x1ed\x1fe",
    "control-c1-range": "a\x80b\x9fc",
    "zero-width-space": "a\u200bb",
    "zero-width-joiner-and-non-joiner": "a\u200db a\u200cb",
    "byte-order-mark": "\ufeffhello \ufeff world",
    "replacement-character": "a\ufffdb \ufffd",
    "soft-hyphen": "co\u00adoperate",
    "bidi-marks": "a\u200eb\u200fc \u202ax\u202c",
    "private-use": "a\ue000b \U000F0000 \U0010FFFD",
    "unassigned-code-point": "a\u0378b \U000E0080",
    "noncharacters": "a\uffffb \ufffe \U0010FFFF",
    # Whitespace.
    "no-break-space": "a\u00a0b",
    "ideographic-space": "a\u3000b",
    "line-and-paragraph-separator": "a\u2028b\u2029c",
    "tab-cr-lf": "a\tb\rc\nd\r\ne",
    "vertical-tab-and-form-feed": "a\x0bb\x0cc",
    "unicode-spaces": "a\u2000b\u2009c\u200ad\u202fe\u205ff\u1680g",
    "mongolian-vowel-separator": "a\u180eb",
    # Word length (max_input_chars_per_word=100).
    "word-99-chars": "abcdefghij" * 9 + "abcdefghi",
    "word-100-chars": "abcdefghij" * 10,
    "word-101-chars": "abcdefghij" * 10 + "k",
    "word-100-chars-after-accent-stripping": "é" * 100,
    "word-101-chars-after-accent-stripping": "é" * 101,
    "word-101-chars-split-by-punctuation": "abcdefghij" * 5 + "-" + "abcdefghij" * 5,
    "long-real-word": "pneumonoultramicroscopicsilicovolcanoconiosis",
    # ASCII punctuation and symbols.
    "ascii-symbols": "$^`~| a$b^c`d~e|f",
    "ascii-all-printable": "".join(chr(c) for c in range(32, 127)),
    "ascii-all-characters": "".join(chr(c) for c in range(128)),
    "underscore-and-brackets": "snake_case_name [brackets] {braces} (parens) <angle>",
    "quotes": "\"double\" 'single' don't it's rock'n'roll",
    "email-url-and-numbers": "e-mail: a.b@c.com https://x.org/a?b=1&c=2 1,000.50 3/4 #1 100%",
    "code": "x<=y>=z; f(a, *args, **kw) -> None # C++ & C#",
    # Unicode punctuation and symbols.
    "unicode-punctuation": "«bonjour» — dit-il… ¿qué? ¡sí! ‘curly’ “double” „low“",
    "cjk-punctuation": "、。「」『』！？（）",
    "middle-dots": "a·b a‧b a・b",
    "punctuation-newer-than-unicode-8": "a\u2e43b a\u2e4fb a\U00011660b",
    "symbols-and-math": "∑∫√≠≤∞×÷ ±§¶†‡ ©®™ °",
    "currency": "€100 £5 ¥1000 ₹50 ₩ ₿",
    "numbers-in-other-scripts": "½ ² ① ١٢٣ ४२ 三",
    "emoji": "I ❤️ Python 🐍🎉",
    "emoji-skin-tone-and-zwj-family": "👍🏽 👨\u200d👩\u200d👧",
    "emoji-flags": "🇫🇷🇯🇵",
    # Casing.
    "turkish-dotted-i": "İstanbul İİ ıi I",
    "german-sharp-s": "Straße STRASSE ẞ",
    "greek-final-sigma": "ΟΔΟΣ Οδός σοφός ΣΟΦΟΣ Σ ΑΣ.",
    "titlecase-and-ligatures": "ǅ ǈ ﬁ ﬀ",
    "letterlike-symbols": "\u212a \u212b \u2126 \u2160",
    # Combining marks on other scripts.
    "devanagari": "नमस्ते दुनिया हिन्दी",
    "arabic-harakat": "مَرْحَبًا بِالْعَالَمِ",
    "hebrew-niqqud": "שָׁלוֹם עוֹלָם",
    "thai": "สวัสดีครับ ภาษาไทย",
    "greek-tonos": "Ελληνικά άέήίόύώ",
    "marks-newer-than-unicode-8": "a\u0898b a\u08cab \u0c3c",
    "format-chars-newer-than-unicode-8": "a\u08e2b a\u0890b",
    # Special tokens written in the text.
    "special-mask": "[MASK]",
    "special-mask-in-sentence": "the [MASK] sat on the mat",
    "special-mask-glued": "the[MASK]cat",
    "special-mask-lower-case": "[mask] [Mask]",
    "special-sep-and-cls": "[CLS] a [SEP] b [SEP]",
    "special-all-adjacent": "[MASK][SEP][PAD][UNK][CLS]",
    "special-nested-brackets": "[[MASK]] [ [MASK] ]",
    "special-almost": "[MASK ] [ MASK] [MA SK] [MASKS]",
    "special-with-control-inside": "[MA\x00SK] [MASK\x00]",
    "special-between-unicode-spaces": "\u00a0[MASK]\u3000",
    "unused-token-text": "[unused0] [unused993]",
    # Nothing to tokenize.
    "empty": "",
    "space": " ",
    "whitespace-only": "\t\n \u3000\u00a0\r\n",
    "controls-only": "\x00\x07\ufeff\u200b",
}


@pytest.mark.parametrize("do_lower_case, vocab", VOCAB_CASINGS)
@pytest.mark.parametrize("text", [pytest.param(text, id=name) for name, text in EDGE_CASES.items()])
def test_edge_case_matches_transformers(text, do_lower_case, vocab, hf_tokenizer, our_tokenizer):
    assert_same_ids(our_tokenizer(do_lower_case, vocab=vocab),
                    hf_tokenizer(do_lower_case, vocab=vocab), [text])


SPECIAL_TOKEN_TEXTS = ["the [MASK] sat.", "a [SEP] b [CLS]c[PAD]d [UNK]", "[mask] [Mask] [MASK]]",
                       "[[SEP]]", "x[MASK]y[MASK]z"]


@pytest.mark.parametrize("split_special_tokens", [False, True], ids=["kept", "split"])
def test_special_tokens_in_text_match_transformers(split_special_tokens, hf_tokenizer, our_tokenizer):
    """Typed special tokens are the tokens themselves (prompts), or plain text with
    `split_special_tokens` (corpus text), exactly as `transformers` treats them."""
    hf, ours = hf_tokenizer(UNCASED), our_tokenizer(UNCASED)
    expected = hf(SPECIAL_TOKEN_TEXTS, add_special_tokens=False,
                  split_special_tokens=split_special_tokens)["input_ids"]
    got = [ours.encode(text, split_special_tokens=split_special_tokens) for text in SPECIAL_TOKEN_TEXTS]
    assert got == expected
    mask_id = ours.mask_id
    assert (mask_id in got[0]) is not split_special_tokens


@pytest.mark.parametrize("do_lower_case, vocab", VOCAB_CASINGS)
def test_longest_vocab_tokens_inside_longer_words(do_lower_case, vocab, hf_tokenizer,
                                                  our_tokenizer, vocab_path):
    """WordPiece tries no piece longer than the vocab's longest token: check the boundary, with
    the longest tokens as the start (and, after a "q", the continuation) of longer words."""
    tokens = sorted(load_vocab(vocab_path(vocab)), key=len, reverse=True)
    whole = [t for t in tokens if not t.startswith("##")][:50]
    continuations = [t[2:] for t in tokens if t.startswith("##")][:50]
    texts = [f"{t}x {t}s {t}{t}" for t in whole] + [f"q{t}x q{t}" for t in continuations]
    assert_same_ids(our_tokenizer(do_lower_case, vocab=vocab),
                    hf_tokenizer(do_lower_case, vocab=vocab), texts)


_MARK_SINCE_UNICODE_14 = unicodedata.category("\u1734") == "Mc"


LEGACY_DISAGREEMENTS = [
    pytest.param("ΟΔΟΣ ΑΣ", UNCASED, id="final-sigma"),
    pytest.param("a\u0378b x\uffff", UNCASED, id="unassigned-code-points-kept"),
    pytest.param("a\U0002B820b", UNCASED, id="cjk-extension-e-start"),
    pytest.param("a\u2e43b", UNCASED, id="punctuation-newer-than-unicode-8"),
    pytest.param("a\u08e2b", UNCASED, id="format-char-newer-than-unicode-8"),
    pytest.param("a\u0898", UNCASED, id="accent-newer-than-unicode-8"),
    pytest.param("a\u166db", UNCASED, id="punctuation-in-unicode-8-only"),
    pytest.param("\u1734", UNCASED, id="accent-in-unicode-8-only",
                 marks=pytest.mark.skipif(not _MARK_SINCE_UNICODE_14,
                                          reason="a non-spacing mark in this Python's Unicode")),
    pytest.param(_nfd("한국어"), CASED, id="no-nfc-hangul-jamo"),
    pytest.param("\u2329x\u232a", CASED, id="no-nfc-angle-brackets"),
    pytest.param("\uf981", CASED, id="no-nfc-compatibility-ideograph"),
    pytest.param("[MA\x00SK]", UNCASED, id="special-token-with-control-inside"),
]


@pytest.mark.parametrize("text, do_lower_case", LEGACY_DISAGREEMENTS)
def test_legacy_disagreement_follows_transformers(text, do_lower_case, hf_tokenizer,
                                                  our_tokenizer, uncased_vocab_path):
    legacy = transformers.models.bert.BertTokenizerLegacy(uncased_vocab_path,
                                                          do_lower_case=do_lower_case)
    hf = hf_tokenizer(do_lower_case)
    expected = hf(text, add_special_tokens=False)["input_ids"]
    assert legacy(text, add_special_tokens=False)["input_ids"] != expected
    assert our_tokenizer(do_lower_case).encode(text) == expected


@pytest.mark.parametrize("do_lower_case", CASINGS)
def test_ascii_fast_path_matches_unicode_path(do_lower_case):
    """A trailing " é" sends the text down the general path: the words before it must not
    change."""
    basic = BasicTokenizer(do_lower_case=do_lower_case)
    lines = [line for line in stdlib_docstring_lines()[:5000] if line.isascii()]
    lines.append("".join(chr(c) for c in range(128)))
    for line in lines:
        assert basic.tokenize(line) == basic.tokenize(line + " é")[:-1], line


def _decode_lines() -> list[str]:
    lines = list(stdlib_docstring_lines()[::67][:250]) + list(stdlib_non_english_lines()[::40][:50])
    masked = []
    for line in lines[:100]:
        words = line.split()
        words[len(words) // 2] = "[MASK]"
        masked.append(" ".join(words))
    return lines + masked + ["[CLS] a [SEP] b [SEP]", "[MASK][MASK] x [UNK] [PAD]", "don't do not"]


@pytest.mark.parametrize("skip_special_tokens", [False, True], ids=["keep-special", "skip-special"])
@pytest.mark.parametrize("do_lower_case, vocab", VOCAB_CASINGS)
def test_decode_matches_transformers(do_lower_case, vocab, skip_special_tokens, hf_tokenizer,
                                     our_tokenizer):
    hf, ours = hf_tokenizer(do_lower_case, vocab=vocab), our_tokenizer(do_lower_case, vocab=vocab)
    lines = _decode_lines()
    id_lists = hf(lines)["input_ids"]  # With [CLS] and [SEP].
    tokens = ["##ing", "do", "not", "'", "s", "m", ".", ",", "?", "!", "re", "ve", "[PAD]", "##s"]
    id_lists += [hf.convert_tokens_to_ids(tokens), hf.convert_tokens_to_ids(tokens[::-1]), []]
    mismatches = [(ids, want, got) for ids in id_lists
                  if (got := ours.decode(ids, skip_special_tokens=skip_special_tokens))
                  != (want := hf.decode(ids, skip_special_tokens=skip_special_tokens))]
    assert not mismatches, mismatches[:3]


def test_decode_cleans_up_one_piece_at_a_time(our_tokenizer):
    """As `transformers` 5 does: "don ' t", not v4's "don't", since "'" and "t" are separate
    pieces."""
    ours = our_tokenizer(UNCASED)
    assert ours.decode(ours.encode("Don't stop, it's fine.")) == "don ' t stop, it ' s fine."


def test_load_vocab_rejects_a_duplicate_token(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("[PAD]\n[UNK]\nthe\ncat\nthe\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"{path}:5: token 'the' appears twice .*line 3"):
        load_vocab(path)


def test_load_vocab_rejects_an_empty_file(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"{path}:1: the vocab file is empty"):
        load_vocab(path)


def test_load_vocab_rejects_an_empty_line(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("[PAD]\n\n[UNK]\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"{path}:2: empty line"):
        load_vocab(path)


def test_vocab_without_special_tokens_is_rejected(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("[PAD]\n[UNK]\n[CLS]\nthe\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"lacks the special tokens \['\[SEP\]', '\[MASK\]'\]"):
        BertTokenizer.from_vocab_file(path)


def test_save_and_load_vocab_round_trip(tmp_path, uncased_vocab_path):
    vocab = load_vocab(uncased_vocab_path)
    assert len(vocab) == 30522 and all(vocab[t] < 105 for t in SPECIAL_TOKENS)
    path = tmp_path / "vocab.txt"
    save_vocab(list(vocab), path)
    assert load_vocab(path) == vocab
    assert path.read_bytes() == open(uncased_vocab_path, "rb").read()
