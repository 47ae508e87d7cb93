"""Splitting prose into sentences, for corpora that are not already one sentence per line."""

from __future__ import annotations

import re

# Words that end in a period without ending the sentence ("e.g. the", "Mr. Smith").
_ABBREVIATIONS = frozenset(
    "e.g i.e etc vs cf al approx fig no nos mr mrs ms dr st jr sr prof inc ltd co "
    "jan feb mar apr jun jul aug sep sept oct nov dec".split())

# A sentence ends at ., ! or ? (optionally followed by closing quotes or brackets), then
# whitespace, then something that can start a sentence.
_BOUNDARY = re.compile(r"""([.!?]['")\]]*)\s+(?=["'(\[]?[A-Z0-9])""")


def split_sentences(text: str) -> list[str]:
    """Splits a paragraph of English prose into sentences.

    Whitespace (including line breaks inside the paragraph) is collapsed. A period after a known
    abbreviation or a single letter (an initial, "section 3.a.") does not end a sentence.
    """
    text = " ".join(text.split())
    sentences: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        end = match.end(1)
        candidate = text[start:end]
        # Brackets and quotes around the word are not part of it: "(e.g. Foo)" does not end here.
        last_word = candidate.rsplit(None, 1)[-1].strip("'\"()[]").rstrip(".").lower()
        if match.group(1).startswith(".") and (last_word in _ABBREVIATIONS or len(last_word) <= 1):
            continue
        sentences.append(candidate.strip())
        start = match.end()
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences
