"""English and Korean corpora shared by the SentencePiece tests."""

from __future__ import annotations

import glob
from pathlib import Path

import pytest

from input_pipeline.text.stdlib_corpus import write_stdlib_corpus

MODEL_TYPES = ("unigram", "bpe")


def korean_lines() -> list[str]:
    konlpy = pytest.importorskip("konlpy")
    corpus = Path(konlpy.__file__).parent / "data" / "corpus"
    files = sorted(glob.glob(str(corpus / "kobill" / "*.txt"))) + [str(corpus / "kolaw" / "constitution.txt")]
    return [line.strip() for path in files for line in open(path, encoding="utf-8") if line.strip()]


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> dict[str, dict]:
    """Training files and held-out lines. English: 1 MB of docstrings, with whole modules held
    out. Korean: every tenth line held out (whole bills are too few to hold one out and still
    see most syllables in training), less the lines that also occur in training."""
    root = tmp_path_factory.mktemp("sentencepiece")
    en_train, en_held_out = root / "en_train.txt", root / "en_held_out.txt"
    write_stdlib_corpus(en_train, en_held_out, max_bytes=1_000_000)
    lines = korean_lines()
    ko_train_lines = [line for i, line in enumerate(lines) if i % 10]
    ko_train = root / "ko_train.txt"
    ko_train.write_text("\n".join(ko_train_lines) + "\n", encoding="utf-8")
    seen = set(ko_train_lines)
    return {
        "en": {"train": en_train, "held_out": [line.strip() for line in open(en_held_out, encoding="utf-8")
                                               if line.strip()]},
        "ko": {"train": ko_train, "held_out": [line for i, line in enumerate(lines)
                                               if i % 10 == 0 and line not in seen]},
        "root": root,
    }
