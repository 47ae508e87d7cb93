"""Tests for the sentence splitter's Korean rules and its choice of language (`sentences.py`).

The English rules are tested in test_corpus.py. Real Korean text comes from the `konlpy` package,
which ships the Korean constitution and ten National Assembly bills as plain UTF-8 files (read
directly: konlpy itself, and its Java back end, are not imported).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
from conftest import stdlib_docstring_lines

from input_pipeline.text.sentences import detect_language, hangul_share, split_sentences


def konlpy_corpus() -> Path:
    spec = importlib.util.find_spec("konlpy")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("konlpy (the Korean test text) is not installed")
    return Path(spec.submodule_search_locations[0]) / "data" / "corpus"


@pytest.fixture(scope="module")
def constitution() -> list[str]:
    """The constitution's non-blank lines: one article paragraph (or heading) per line."""
    text = (konlpy_corpus() / "kolaw" / "constitution.txt").read_text(encoding="utf-8")
    return [line for line in text.split("\n") if line.strip()]


@pytest.fixture(scope="module")
def bills() -> list[str]:
    """Each bill as one paragraph (its lines are hard-wrapped mid-sentence, so they are joined)."""
    return [" ".join(path.read_text(encoding="utf-8").split())
            for path in sorted((konlpy_corpus() / "kobill").glob("*.txt"))]


@pytest.mark.parametrize("text, expected", [
    # Declarative, polite, question and exclamation endings; no capital letter needed after them.
    ("대한민국은 민주공화국이다. 주권은 국민에게 있다.", ["대한민국은 민주공화국이다.", "주권은 국민에게 있다."]),
    ("밥 먹었어요. 어디 가요? 같이 가요! 좋습니다", ["밥 먹었어요.", "어디 가요?", "같이 가요!", "좋습니다"]),
    ("정말입니까? 네, 그렇습니다.", ["정말입니까?", "네, 그렇습니다."]),
    ("그렇구나!! 왜?! 몰라.", ["그렇구나!!", "왜?!", "몰라."]),
    # Bill style: sentences ending in a noun form.
    ("문제로 이어질 수 있을 것임. 따라서 개정하려는 것임.", ["문제로 이어질 수 있을 것임.", "따라서 개정하려는 것임."]),
    # Closing quotes and brackets stay with their sentence; a quote followed by a particle does not
    # end one.
    ('그는 "가자."라고 말했다. "좋다." 그녀가 답했다.', ['그는 "가자."라고 말했다.', '"좋다."', "그녀가 답했다."]),
    ("“만 6세 이하의 자녀를”을 고친다. (안 제63조) 끝.", ["“만 6세 이하의 자녀를”을 고친다.", "(안 제63조) 끝."]),
    ("(이상 개정한다.) 다음 조문.", ["(이상 개정한다.)", "다음 조문."]),
    # No split inside or after numbers, dates, numbered articles and list markers.
    ("비율은 3.5배로 늘었다. 다음 해는 2.7배였다.", ["비율은 3.5배로 늘었다.", "다음 해는 2.7배였다."]),
    ("발의연월일 : 2010. 11. 12. 발의자 : 정의화 의원", ["발의연월일 : 2010. 11. 12. 발의자 : 정의화 의원"]),
    ("제1조. 목적 이 법은 목적을 정한다. 제46조의2. 특례 다음과 같다.",
     ["제1조. 목적 이 법은 목적을 정한다.", "제46조의2. 특례 다음과 같다."]),
    ("1. 총칙 2. 세부 사항 3. 부칙", ["1. 총칙 2. 세부 사항 3. 부칙"]),
    ("가. 공무원의 경우 나. 교원의 경우 다. 그 밖의 경우", ["가. 공무원의 경우 나. 교원의 경우 다. 그 밖의 경우"]),
    ("다음과 같이 한다. 가. 첫째 항목이다. 나. 둘째 항목이다.",
     ["다음과 같이 한다.", "가. 첫째 항목이다.", "나. 둘째 항목이다."]),
    ("’09. 3. 1. 시행한다. 이후 적용한다.", ["’09. 3. 1. 시행한다.", "이후 적용한다."]),
    # An ellipsis trails off inside a sentence; English abbreviations and initials do not end one.
    ("그런데... 다시 보자. 끝이다.", ["그런데... 다시 보자.", "끝이다."]),
    ("U.S. 정부와 Dr. Kim은 e.g. 이런 것을 논의했다. 다음 날 떠났다.",
     ["U.S. 정부와 Dr. Kim은 e.g. 이런 것을 논의했다.", "다음 날 떠났다."]),
    # Full-width and ideographic marks; line breaks inside the paragraph are spaces.
    ("좋다． 정말？ 그래。 네", ["좋다．", "정말？", "그래。", "네"]),
    ("첫 문장이\n  이어진다. 둘째\t문장.", ["첫 문장이 이어진다.", "둘째 문장."]),
    ("", []),
])
def test_korean_rules(text, expected):
    assert split_sentences(text, "ko") == expected
    assert split_sentences(text) == expected  # "auto" finds the Hangul.


def test_language_detection():
    assert hangul_share("대한민국 abc") == 4 / 7
    assert hangul_share("123 !!") == 0.0
    assert hangul_share("ㄱㄴ 한") == 1.0  # Compatibility jamo count as Hangul.
    assert detect_language("대한민국은 UAE에 파견한다.") == "ko"
    assert detect_language("The word 한국 means Korea.") == "en"
    assert detect_language("No Hangul at all. 漢字.") == "en"
    with pytest.raises(ValueError, match="language='jp' must be one of"):
        split_sentences("text", "jp")


def test_english_text_is_split_as_before():
    # On real English prose "auto" must keep choosing the English rules: the two disagree on
    # lowercase starts ("Call foo. then bar.") and numbers ("Use 3.12. Next").
    paragraphs = [" ".join(stdlib_docstring_lines(6000)[i:i + 6]) for i in range(0, 6000, 6)]
    assert all(split_sentences(p) == split_sentences(p, "en") for p in paragraphs)
    assert split_sentences("Call foo. then bar. Use 3.12. Next", "en") == [
        "Call foo. then bar.", "Use 3.12.", "Next"]
    assert split_sentences("Call foo. then bar. Use 3.12. Next", "ko") == [
        "Call foo.", "then bar.", "Use 3.12. Next"]


# A sentence-final "다." (the plain declarative ending), possibly inside closing quotes, followed
# by whitespace or the end of the text: written "...한다." in the constitution.
_DA_END = re.compile(r"\S다\.[\"”’')]*(?=\s|$)")


def _ends_with_da(sentence: str) -> bool:
    return any(m.end() == len(sentence) for m in _DA_END.finditer(sentence))


def test_constitution_every_da_ends_a_sentence(constitution):
    total_da = total_sentences = 0
    for line in constitution:
        sentences = split_sentences(line)
        # Nothing is lost or reordered: the sentences are the line's words, in order.
        assert " ".join(sentences).split() == line.split()
        ends = [m.end() for m in _DA_END.finditer(" ".join(line.split()))]
        assert sum(1 for s in sentences if _ends_with_da(s)) == len(ends), line
        for sentence in sentences:
            inner = [m for m in _DA_END.finditer(sentence) if m.end() < len(sentence)]
            assert not inner, f"{sentence!r} goes on after {inner[0].group()!r}"
        total_da += len(ends)
        total_sentences += len(sentences)
    assert total_da > 330  # The constitution's articles are almost all "...한다." sentences.
    # Headings ("제1장 총강") and list items ("1. 국정의 기본계획") are the other sentences.
    assert total_da < total_sentences < total_da + 120


def test_constitution_numbered_items_stay_whole(constitution):
    items = [line for line in constitution if re.match(r"\d+\. ", line)]
    assert len(items) > 20
    for line in items:
        sentences = split_sentences(line)
        assert re.match(r"\d+\. \S", sentences[0]), sentences  # "1." stays with its item.


def test_bills(bills):
    sentences = [s for bill in bills for s in split_sentences(bill)]
    assert len(sentences) > 200
    # No fragment is only a number, a date part, a numbered article or a list marker.
    fragment = re.compile(r"^(제?\d+[조항호]?(의\d+)?|[가-하]|’\d+)\.$")
    assert not [s for s in sentences if fragment.match(s)]
    # The dates of the bills ("2010. 11. 12.") are never cut.
    dated = [s for s in sentences if "2010." in s]
    assert len(dated) == len(bills) and all(re.search(r"2010\. +1[12]\. +\d+\.", s) for s in dated)
    # Every "...다." that ends a word, and is not a list marker, ends a sentence.
    for sentence in sentences:
        assert not [m for m in _DA_END.finditer(sentence) if m.end() < len(sentence)], sentence
