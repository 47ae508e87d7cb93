"""BERT's WordPiece tokenizer: the basic tokenizer followed by greedy longest-match-first WordPiece.

Gives exactly the ids of `transformers.BertTokenizer` (the Rust `tokenizers` backend) for the same
vocab and settings; `tests/test_tokenization.py` checks this on tens of thousands of real lines,
crafted edge cases and random Unicode. That backend is the reference, not Google's original
`tokenization.py` nor `transformers`' pure-Python `BertTokenizerLegacy`; where they disagree with
it we follow it, and each such place is marked "Legacy differs" below:

* Characters are classified with the Unicode 8.0 tables `tokenizers` is built with, not with the
  running Python's newer database (see `_HF_NOT_CONTROL` and the tables after it).
* Unassigned code points (U+0378, U+FFFF, ...) are kept, so a word holding one is `[UNK]`;
  Legacy removes them with the control characters.
* An upper-case sigma always lower-cases to "σ"; Legacy's `str.lower()` writes "ς" at the end of
  a word.
* There is no NFC step: cased, a decomposed "e" + U+0301, Hangul written as jamo, and characters
  NFC maps to others (U+2329 to U+3008, CJK compatibility ideographs) stay as they are.
* CJK Extension E's first 256 code points (U+2B820..U+2B91F) are not split off as Chinese.
* Literal special tokens (`[MASK]`, ...) are found in the raw text, before control characters are
  removed: "[MA\\x00SK]" is three tokens, where Legacy finds a `[MASK]`.

Special tokens written in the text are kept whole, as `transformers` does, so fill-mask prompts can
be typed as text. Tokenizing is done mostly by C-level string methods and regular expressions on the
whole text, with a fast path for pure-ASCII text and a per-word cache for WordPiece.
"""

from __future__ import annotations

import functools
import itertools
import os
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

import numpy as np

from input_pipeline import remote_files

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
SPECIAL_TOKENS = (PAD, UNK, CLS, SEP, MASK)


def load_vocab(path: str | os.PathLike) -> dict[str, int]:
    """Reads a `vocab.txt`: one token per line, the line number (from 0) is the id.

    Raises `ValueError`, naming the file and line, on an empty file, an empty line or a token that
    appears twice (with a duplicate, `transformers` silently keeps the last id, so two lines would
    map to one id and decoding would disagree with encoding).
    """
    vocab: dict[str, int] = {}
    with remote_files.open_file(path) as f:
        for index, line in enumerate(f):
            # Only the newline is removed, as `transformers` does: a token may end with other
            # whitespace in principle, and the ids must match theirs.
            token = line.rstrip("\n")
            if not token:
                raise ValueError(f"{path}:{index + 1}: empty line in the vocab; every line must "
                                 f"hold one token.")
            if token in vocab:
                raise ValueError(f"{path}:{index + 1}: token {token!r} appears twice in the vocab "
                                 f"(first on line {vocab[token] + 1}); every token must be unique.")
            vocab[token] = index
    if not vocab:
        raise ValueError(f"{path}:1: the vocab file is empty; it must hold one token per line.")
    return vocab


def save_vocab(tokens: Sequence[str], path: str | os.PathLike) -> None:
    """Writes `tokens` one per line, atomically (temp file, then rename)."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(token + "\n" for token in tokens)
    os.replace(tmp, path)


# --- Character classes, as `tokenizers` defines them. ---------------------------------------------

def _code_points(spec: str) -> frozenset[int]:
    """Parses "0890-0891 08E2" (hex code points and inclusive ranges) into a set of code points."""
    points: set[int] = set()
    for item in spec.split():
        first, _, last = item.partition("-")
        points.update(range(int(first, 16), int(last or first, 16) + 1))
    return frozenset(points)


# `tokenizers` takes control characters, punctuation and accents (non-spacing marks) from the
# Unicode 8.0 tables of the Rust crate `unicode_categories`, while `unicodedata` follows Python's
# newer Unicode (13.0 in Python 3.10 up to 15.1 in 3.13). To `tokenizers`, a character assigned
# after 8.0 is unassigned, so an ordinary letter: these tables list the ones the running Python
# would otherwise remove, strip or split off, plus the few whose category changed since 8.0.
# Legacy differs: it uses the running Python's database. Made by comparing the two for every code
# point under Python 3.10 to 3.13; `test_character_classes_match_tokenizers` re-checks them all.
# Characters newer than Unicode 15.1 are not covered.
_HF_NOT_CONTROL = _code_points("0890-0891 08E2 110CD 13430-1343F")
_HF_NOT_ACCENT = _code_points(
    "07FD 0898-089F 08CA-08E1 09FE 0AFA-0AFF 0B55 0C04 0C3C 0D00 0D3B-0D3C 0D81 0EBA 0ECE 180F "
    "1885-1886 1ABF-1ACE 1DF6-1DFB A82C A8C5 A8FF A9BD 10D24-10D27 10EAB-10EAC 10EFD-10EFF "
    "10F46-10F50 10F82-10F85 11070 11073-11074 110C2 111C9 111CF 1123E 11241 1133B 11438-1143F "
    "11442-11444 11446 1145E 1182F-11837 11839-1183A 1193B-1193C 1193E 11943 119D4-119D7 "
    "119DA-119DB 119E0 11A01-11A0A 11A33-11A38 11A3B-11A3E 11A47 11A51-11A56 11A59-11A5B "
    "11A8A-11A96 11A98-11A99 11C30-11C36 11C38-11C3D 11C3F 11C92-11CA7 11CAA-11CB0 11CB2-11CB3 "
    "11CB5-11CB6 11D31-11D36 11D3A 11D3C-11D3D 11D3F-11D45 11D47 11D90-11D91 11D95 11D97 "
    "11EF3-11EF4 11F00-11F01 11F36-11F3A 11F40 11F42 13440 13447-13455 16F4F 16FE4 1CF00-1CF2D "
    "1CF30-1CF46 1E000-1E006 1E008-1E018 1E01B-1E021 1E023-1E024 1E026-1E02A 1E08F 1E130-1E136 "
    "1E2AE 1E2EC-1E2EF 1E4EC-1E4EF 1E944-1E94A")
_HF_ACCENT = _code_points("1734")  # A non-spacing mark in 8.0, a spacing one since 14.0.
_HF_NOT_PUNCTUATION = _code_points(
    "061D 09FD 0A76 0C77 0C84 1B7D-1B7E 2E43-2E4F 2E52-2E5D 10EAD 10F55-10F59 10F86-10F89 "
    "1144B-1144F 1145A-1145B 1145D 11660-1166C 116B9 1183B 11944-11946 119E2 11A3F-11A46 "
    "11A9A-11A9C 11A9E-11AA2 11B00-11B09 11C41-11C45 11C70-11C71 11EF7-11EF8 11F43-11F4F 11FFF "
    "12FF1-12FF2 16E97-16E9A 16FE2 1E95E-1E95F")
_HF_PUNCTUATION = _code_points("166D 111C9")  # Punctuation in 8.0, a symbol and a mark since.

# Legacy differs: `tokenizers` starts the Extension E range at U+2B920 instead of U+2B820.
_CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
               (0x2B740, 0x2B81F), (0x2B920, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))

# "^", "$", "`" and the like are symbols, not punctuation, in Unicode, but BERT splits off every
# ASCII character that is neither a letter nor a digit.
_ASCII_PUNCTUATION = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def is_control(char: str) -> bool:
    """Whether BERT removes `char` as a control character (a `Cc`, `Cf` or `Co` character)."""
    if char in "\t\n\r" or ord(char) in _HF_NOT_CONTROL:
        # \t, \n and \r are control characters in Unicode, but BERT keeps them as spaces.
        return False
    # Legacy differs: it also removes unassigned code points (`Cn`).
    return unicodedata.category(char) in ("Cc", "Cf", "Co")


def is_whitespace(char: str) -> bool:
    """Whether BERT turns `char` into a space (Unicode White_Space, less the control characters)."""
    return char.isspace() and not is_control(char)


def is_punctuation(char: str) -> bool:
    """Whether BERT makes `char` a word of its own."""
    cp = ord(char)
    if char in _ASCII_PUNCTUATION or cp in _HF_PUNCTUATION:
        return True
    return unicodedata.category(char).startswith("P") and cp not in _HF_NOT_PUNCTUATION


def is_accent(char: str) -> bool:
    """Whether accent stripping removes `char` (after NFD): the non-spacing marks."""
    cp = ord(char)
    if cp in _HF_ACCENT:
        return True
    return unicodedata.category(char) == "Mn" and cp not in _HF_NOT_ACCENT


def is_chinese_char(cp: int) -> bool:
    """The CJK Unified Ideographs blocks; Hangul and kana are written with spaces and not split."""
    return any(first <= cp <= last for first, last in _CJK_RANGES)


# --- The same classes as regular expressions over whole texts. ------------------------------------

def _char_class(points: Iterable[int]) -> str:
    """The body of a regex character class matching exactly `points`, as ranges."""
    ranges: list[list[int]] = []
    for cp in sorted(points):
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    return "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
                   for a, b in ranges)


class _Patterns(NamedTuple):
    removed: re.Pattern[str]  # Control characters, NUL and U+FFFD.
    chinese: re.Pattern[str]
    accent: re.Pattern[str]
    word: re.Pattern[str]  # A punctuation mark, or a run of anything but spaces and punctuation.


@functools.cache
def _unicode_patterns() -> _Patterns:
    """Regexes equivalent to the `is_*` functions above, built on the first non-ASCII text.

    One pass over the Unicode database (about 0.1 s) lets each later text be cleaned and split by
    the regex engine instead of a Python loop over its characters.
    """
    by_category: dict[str, set[int]] = {"C": set(), "Mn": set(), "P": set()}
    category = unicodedata.category
    # Planes 4 to 13 hold no assigned character (up to Unicode 15.1), and planes 15 and 16 are
    # private use (Co) but for their last two code points; looking up only the rest makes this a
    # quarter of the work, which every worker process of `create-data` pays once.
    by_category["C"].update(range(0xF0000, 0xFFFFE), range(0x100000, 0x10FFFE))
    for cp in itertools.chain(range(0x40000), range(0xE0000, 0xF0000)):
        cat = category(chr(cp))
        if cat in ("Cc", "Cf", "Co"):
            by_category["C"].add(cp)
        elif cat == "Mn":
            by_category["Mn"].add(cp)
        elif cat[0] == "P":
            by_category["P"].add(cp)
    removed = (by_category["C"] - _HF_NOT_CONTROL - {ord(c) for c in "\t\n\r"}) | {0xFFFD}
    accents = (by_category["Mn"] - _HF_NOT_ACCENT) | _HF_ACCENT
    punctuation = ((by_category["P"] - _HF_NOT_PUNCTUATION) | _HF_PUNCTUATION
                   | {ord(c) for c in _ASCII_PUNCTUATION})
    chinese = (cp for first, last in _CJK_RANGES for cp in range(first, last + 1))
    punct = _char_class(punctuation)
    return _Patterns(removed=re.compile(f"[{_char_class(removed)}]+"),
                     chinese=re.compile(f"[{_char_class(chinese)}]"),
                     accent=re.compile(f"[{_char_class(accents)}]+"),
                     word=re.compile(f"[{punct}]|[^\\s{punct}]+"))


# In pure-ASCII text the classes are simple: controls are 0x00-0x1F and 0x7F (less \t\n\r), and
# every printable character that is not a letter or digit is punctuation.
_ASCII_REMOVED = dict.fromkeys([*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])
_ASCII_WORD = re.compile(r"[A-Za-z0-9]+|[^\sA-Za-z0-9]")


class BasicTokenizer:
    """Cleans text and splits it into words and punctuation marks (lower-casing and stripping
    accents when uncased), before WordPiece: `tokenizers`' `BertNormalizer` and
    `BertPreTokenizer`."""

    def __init__(self, do_lower_case: bool = True, strip_accents: bool | None = None,
                 tokenize_chinese_chars: bool = True):
        self.do_lower_case = do_lower_case
        # As in `transformers`: unspecified means "strip accents when lower-casing".
        self.strip_accents = do_lower_case if strip_accents is None else strip_accents
        self.tokenize_chinese_chars = tokenize_chinese_chars

    def tokenize(self, text: str) -> list[str]:
        """Returns the words and punctuation marks of `text`, normalized."""
        if text.isascii():
            # Nothing to space out or strip, and NFD leaves ASCII unchanged.
            text = text.translate(_ASCII_REMOVED)
            return _ASCII_WORD.findall(text.lower() if self.do_lower_case else text)
        patterns = _unicode_patterns()
        text = patterns.removed.sub("", text)
        if self.tokenize_chinese_chars:
            text = patterns.chinese.sub(r" \g<0> ", text)
        # Legacy differs: it applies NFC first, and lower-cases before stripping (which, with
        # NFD in between, gives the same result for every character).
        if self.strip_accents:
            # Python's NFD also splits U+11938 (Unicode 13), which `tokenizers`' older tables
            # keep whole; both spellings are unknown to any vocab made so far, so the ids agree.
            text = patterns.accent.sub("", unicodedata.normalize("NFD", text))
        if self.do_lower_case:
            # `tokenizers` lower-cases character by character; `str.lower()` would write "ς" for
            # a word-final sigma (the only context-dependent mapping Python applies).
            text = text.replace("Σ", "σ").lower()
        # The regex's \s is `str.isspace()`: what is left of White_Space once controls are gone.
        return patterns.word.findall(text)


class WordpieceTokenizer:
    """Greedy longest-match-first WordPiece over one word, with `##` marking continuations."""

    def __init__(self, vocab: Mapping[str, int], unk_token: str = UNK,
                 max_input_chars_per_word: int = 100):
        self.vocab = vocab
        self.unk_token = unk_token
        # `transformers` defaults to 100; Google's original BERT used 200.
        self.max_input_chars_per_word = max_input_chars_per_word
        # No piece can be longer than the longest token, so longer candidates need no lookup.
        self._max_piece_chars = max((len(t) for t in vocab), default=0)

    def tokenize_word(self, word: str) -> list[str]:
        """Splits one already-normalized word into vocab pieces, or `[UNK]` if it cannot."""
        if len(word) > self.max_input_chars_per_word:
            return [self.unk_token]
        vocab = self.vocab
        if word in vocab:
            return [word]
        pieces = []
        start = 0
        while start < len(word):
            prefix = "##" if start else ""
            end = min(len(word), start + self._max_piece_chars - len(prefix))
            while end > start:
                piece = prefix + word[start:end]
                if piece in vocab:
                    break
                end -= 1
            else:
                return [self.unk_token]  # Some part matches nothing: the whole word is unknown.
            pieces.append(piece)
            start = end
        return pieces


class SpecialTokenIds:
    """The ids of BERT's special tokens in a tokenizer's `vocab` (WordPiece or SentencePiece)."""
    vocab: dict[str, int]

    @property
    def pad_id(self) -> int:
        return self.vocab[PAD]

    @property
    def unk_id(self) -> int:
        return self.vocab[UNK]

    @property
    def cls_id(self) -> int:
        return self.vocab[CLS]

    @property
    def sep_id(self) -> int:
        return self.vocab[SEP]

    @property
    def mask_id(self) -> int:
        return self.vocab[MASK]

    @property
    def special_ids(self) -> frozenset[int]:
        return frozenset(self.vocab[t] for t in SPECIAL_TOKENS)


class BertTokenizer(SpecialTokenIds):
    """Text to WordPiece ids, exactly as `transformers.BertTokenizer` does for the same vocab."""

    def __init__(self, vocab: Mapping[str, int], do_lower_case: bool = True,
                 strip_accents: bool | None = None, tokenize_chinese_chars: bool = True,
                 max_input_chars_per_word: int = 100):
        missing = [t for t in SPECIAL_TOKENS if t not in vocab]
        if missing:
            raise ValueError(f"the vocab lacks the special tokens {missing}; a BERT vocab must "
                             f"hold all of {list(SPECIAL_TOKENS)}.")
        self.vocab = dict(vocab)
        self.inv_vocab = {i: t for t, i in self.vocab.items()}
        self.do_lower_case = do_lower_case
        self.basic = BasicTokenizer(do_lower_case, strip_accents, tokenize_chinese_chars)
        self.wordpiece = WordpieceTokenizer(self.vocab, UNK, max_input_chars_per_word)
        # A capturing group, so that `split` returns the special tokens too (at odd indices).
        self._special_re = re.compile("(" + "|".join(re.escape(t) for t in SPECIAL_TOKENS) + ")")
        self._word_ids_cache: dict[str, list[int]] = {}

    @classmethod
    def from_vocab_file(cls, path: str | os.PathLike, **kwargs) -> BertTokenizer:
        """Loads `path` with `load_vocab`; `kwargs` go to the constructor."""
        return cls(load_vocab(path), **kwargs)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @functools.cached_property
    def is_continuation(self) -> np.ndarray:
        """`is_continuation[id]` is True for a piece that continues the previous piece's word
        ("##ing"); whole-word masking groups such pieces with the word they belong to."""
        flags = np.zeros(max(self.vocab.values()) + 1, dtype=bool)
        for token, index in self.vocab.items():
            flags[index] = token.startswith("##")
        return flags

    def encode(self, text: str, split_special_tokens: bool = False) -> list[int]:
        """Returns the ids of `text`, without `[CLS]`/`[SEP]`.

        A special token written in the text ("[MASK]") is that token, as in `transformers`, so
        prompts can be typed; with `split_special_tokens` it is plain text ("[", "mask", "]"), as
        corpus text must be: a "[SEP]" quoted in a document must not split a training pair.
        """
        ids: list[int] = []
        parts = self._special_re.split(text) if "[" in text and not split_special_tokens else (text,)
        cache = self._word_ids_cache
        for index, part in enumerate(parts):
            if index % 2:
                ids.append(self.vocab[part])
                continue
            for word in self.basic.tokenize(part):
                word_ids = cache.get(word)
                if word_ids is None:
                    word_ids = self.convert_tokens_to_ids(self.wordpiece.tokenize_word(word))
                    if len(cache) < 1_000_000:  # Bounds memory on endless streams of new words.
                        cache[word] = word_ids
                ids.extend(word_ids)
        return ids

    def tokenize(self, text: str, split_special_tokens: bool = False) -> list[str]:
        """Returns the WordPiece tokens of `text` (see `encode` for `split_special_tokens`)."""
        return self.convert_ids_to_tokens(self.encode(text, split_special_tokens))

    def convert_tokens_to_ids(self, tokens: Iterable[str]) -> list[int]:
        """Ids of `tokens`; a token not in the vocab becomes `[UNK]`'s id."""
        unk = self.vocab[UNK]
        return [self.vocab.get(t, unk) for t in tokens]

    def convert_ids_to_tokens(self, ids: Iterable[int]) -> list[str]:
        """Tokens of `ids`; raises `KeyError` on an id outside the vocab."""
        return [self.inv_vocab[int(i)] for i in ids]

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
        """Joins ids back into text as `transformers.BertTokenizer.decode` does.

        A `##` piece is glued to the previous piece, any other piece gets a space before it, and
        each piece alone is cleaned of the space before ".", ",", "?", "!" and the like. Since the
        clean-up sees one piece at a time (as in `tokenizers`' WordPiece decoder), "don't", which
        tokenizes to "don", "'", "t", decodes to "don ' t".
        """
        tokens = self.convert_ids_to_tokens(ids)
        if skip_special_tokens:
            tokens = [t for t in tokens if t not in SPECIAL_TOKENS]
        return join_tokens(tokens)


def join_tokens(tokens: Iterable[str]) -> str:
    """WordPiece tokens as one string, as `tokenizers`' WordPiece decoder joins them (what
    `BertTokenizerFast.convert_tokens_to_string` does): a `##` piece is glued to the previous
    piece, any other gets a space before it, each cleaned alone (`_clean_up_piece`)."""
    pieces = []
    for index, token in enumerate(tokens):
        if index:
            token = token[2:] if token.startswith("##") else " " + token
        pieces.append(_clean_up_piece(token))
    return "".join(pieces)


def _clean_up_piece(piece: str) -> str:
    """`tokenizers`' WordPiece decoder clean-up, applied to one piece (with its leading space)."""
    for before, after in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"),
                          (" n't", "n't"), (" 'm", "'m"), (" do not", " don't"), (" 's", "'s"),
                          (" 've", "'ve"), (" 're", "'re")):
        piece = piece.replace(before, after)
    return piece
