"""Splitting prose into sentences, for corpora that are not already one sentence per line.

Two rule sets, picked per text by `split_sentences(text, language)`:

* English ("en"): a sentence ends at ".", "!" or "?" (optionally followed by closing quotes or
  brackets), then whitespace, then something that can start a sentence (a capital, a digit, an
  opening quote or bracket). A period after a known abbreviation or a single letter does not end
  a sentence.
* Korean ("ko"): Korean has no capital letters, so the next sentence may start with anything. A
  sentence ends at ".", "!", "?" (or their full-width forms and "。"), optionally followed by
  closing quotes or brackets, then whitespace: "...한다. 다음", "...해요. 그리고", "...입니까? 네".
  A period does not end a sentence after a number or a numbered legal unit ("2010. 11. 12.",
  "1. 총칙", "제1조. ", "제46조의2."), after a one-syllable list marker ("가. ", "나. "), after an
  ellipsis ("그런데... 다시"), or after an English abbreviation or initial ("e.g.", "U.S.").

"auto" picks Korean when Hangul letters are at least as many as Latin letters in the text.
"""

from __future__ import annotations

import re

LANGUAGES = ("auto", "en", "ko")

# Words that end in a period without ending the sentence ("e.g. the", "Mr. Smith").
_ABBREVIATIONS = frozenset(
    "e.g i.e etc vs cf al approx fig no nos mr mrs ms dr st jr sr prof inc ltd co "
    "jan feb mar apr jun jul aug sep sept oct nov dec".split())

# A sentence ends at ., ! or ? (optionally followed by closing quotes or brackets), then
# whitespace, then something that can start a sentence.
_BOUNDARY = re.compile(r"""([.!?]['")\]]*)\s+(?=["'(\[]?[A-Z0-9])""")

# Korean: any sentence-final mark (ASCII, full-width, ideographic full stop), closing quotes and
# brackets of both the ASCII and the CJK kinds, then whitespace. What follows is not examined.
_KO_BOUNDARY = re.compile(r"""([.!?．！？。]+['")\]’”」』》〉）\]]*)\s+""")
_KO_PERIODS = ".．。"

# Hangul: syllables, the conjoining jamo (what NFD makes of syllables) and the compatibility jamo.
HANGUL = re.compile("[\u1100-\u11ff\u3130-\u318f\ua960-\ua97f\uac00-\ud7a3\ud7b0-\ud7ff]")
# Latin letters: ASCII, Latin-1 and Latin Extended-A/B.
LATIN = re.compile("[A-Za-z\u00c0-\u024f]")

# Quotes and brackets around a word are not part of it: "(e.g. Foo)", "“제1조.”".
_WRAPPERS = "'\"()[]‘’“”「」『』《》〈〉（）"
# A number, optionally a numbered legal unit: "2010", "3.5", "제1조", "제46조의2", "1의2", "’09".
_NUMBERED = re.compile(r"^[’']?제?\d[\d.,]*[조항호장절관편목]?(의\d+)?$")
# Latin initialisms with inner periods: "U.S", "e.g", "Ph.D".
_INITIALISM = re.compile(r"^(?:[A-Za-z]{1,2}\.)+[A-Za-z]{1,2}$")
# The syllables Korean documents use as list markers, as English uses "a.", "b.".
_KO_LIST_MARKERS = frozenset("가나다라마바사아자차카타파하")


def hangul_share(text: str) -> float:
    """The fraction of the letters of `text` (Hangul and Latin ones) that are Hangul; 0.0 when it
    has neither. Hanja, kana and other scripts are not counted either way."""
    hangul = len(HANGUL.findall(text))
    latin = len(LATIN.findall(text))
    return hangul / (hangul + latin) if hangul + latin else 0.0


def detect_language(text: str) -> str:
    """"ko" if `text` has Hangul and at least as many Hangul letters as Latin ones, else "en"."""
    return "ko" if hangul_share(text) >= 0.5 else "en"


def split_sentences(text: str, language: str = "auto") -> list[str]:
    """Splits a paragraph of prose into sentences.

    `language` is "en", "ko" or "auto" (`detect_language` on this text). Whitespace (including
    line breaks inside the paragraph) is collapsed, so joining the sentences with spaces gives back
    the paragraph's words. See the module docstring for the rules of each language.

    Raises:
      ValueError: if `language` is not one of `LANGUAGES`.
    """
    if language not in LANGUAGES:
        raise ValueError(f"language={language!r} must be one of {LANGUAGES} "
                         "('auto' picks 'ko' for text that is mostly Hangul).")
    text = " ".join(text.split())
    if language == "auto":
        language = detect_language(text)
    if language == "ko":
        return _split(text, _KO_BOUNDARY, _is_korean_non_boundary)
    return _split(text, _BOUNDARY, _is_english_non_boundary)


def _split(text: str, boundary: re.Pattern, is_non_boundary) -> list[str]:
    sentences: list[str] = []
    start = 0
    for match in boundary.finditer(text):
        end = match.end(1)
        candidate = text[start:end]
        if is_non_boundary(candidate, match.group(1)):
            continue
        sentences.append(candidate.strip())
        start = match.end()
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


def _last_word(candidate: str) -> str:
    """The word before the final mark, without the quotes and brackets around it."""
    return candidate.rsplit(None, 1)[-1].strip(_WRAPPERS)


def _is_english_non_boundary(candidate: str, mark: str) -> bool:
    if not mark.startswith("."):
        return False
    last_word = candidate.rsplit(None, 1)[-1].strip("'\"()[]").rstrip(".").lower()
    return last_word in _ABBREVIATIONS or len(last_word) <= 1


def _is_korean_non_boundary(candidate: str, mark: str) -> bool:
    marks = mark.rstrip(_WRAPPERS)
    if any(char not in _KO_PERIODS for char in marks):
        return False  # "!" and "?" always end a sentence.
    if len(marks) > 1:
        return True  # An ellipsis ("...", "。。") trails off; the sentence goes on.
    word = _last_word(candidate)
    stem = word.rstrip(_KO_PERIODS).strip(_WRAPPERS)
    if not stem:
        return False
    if _NUMBERED.match(stem) or stem in _KO_LIST_MARKERS:
        return True
    latin = stem.lower()
    return latin in _ABBREVIATIONS or bool(_INITIALISM.match(stem)) or (
        len(stem) == 1 and stem.isascii() and stem.isalpha())
