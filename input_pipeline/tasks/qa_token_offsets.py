"""Token ids together with the characters of the original text each token came from, for
WordPiece and SentencePiece: what maps an answer's character span to tokens, and a predicted
token span back to the exact original characters (accents, odd whitespace and case kept).

`tokenize_with_offsets(tokenizer, text).offsets[i]` is `(start, end)`, the half-open range of
characters of `text` that token `i` covers, never including whitespace; the ids are the
tokenizer's own for the text. This is `return_offsets_mapping` of Hugging Face's fast tokenizers;
for WordPiece the offsets are exactly theirs (`tests/unit/test_squad_features.py` checks them on
twenty thousand lines of real text in many scripts and on random Unicode), with one difference
kept on purpose: a special token written in the text ("[SEP]" quoted in a paragraph) is plain
text here, as it must be in data, where `transformers` makes it the special token.

How the offsets are found:

* WordPiece. BERT's normalization (control characters removed, accents stripped, lower case) acts
  on each character alone, so the normalized text is the concatenation of each character's own
  normalization, and every normalized character knows the original character it came from. The
  words of the whole text (`BasicTokenizer.tokenize`) are laid over that sequence in order, then
  each word's pieces (`##` prefixes left out); a word that is `[UNK]` covers the whole word.
  A text on which the two disagree raises rather than produce wrong offsets.
* SentencePiece. The library reports each piece's byte span in the original input (its
  "surface"); those are turned into character spans, less the whitespace a word-start piece
  ("▁the") carries. A piece that is whitespace only ("▁" before a digit) covers no character and
  is placed, empty, where the next word starts.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import sentencepiece as spm

from input_pipeline.tokenizers.sentencepiece_tokenizer import SentencePieceTokenizer
from input_pipeline.tokenizers.wordpiece import UNK, BertTokenizer

QATokenizer = BertTokenizer | SentencePieceTokenizer


class TokenOffsets(NamedTuple):
    """The tokens of one text."""
    ids: np.ndarray  # [num_tokens] int32
    offsets: np.ndarray  # [num_tokens, 2] int32: start and end (exclusive) character of each token


class OffsetTokenizer:
    """`tokenize_with_offsets` for one tokenizer, with its per-character and per-word caches.

    Make one per data set rather than per text: the caches are what make it fast.
    """

    def __init__(self, tokenizer: QATokenizer):
        if isinstance(tokenizer, BertTokenizer):
            self._tokenize = self._wordpiece
            self._char_cache: dict[str, str] = {}
            self._word_cache: dict[str, tuple[list[int], list[int]]] = {}
        elif isinstance(tokenizer, SentencePieceTokenizer):
            self._tokenize = self._sentencepiece
            # The wrapper's processor is private; the same model file gives the same ids.
            self._processor = spm.SentencePieceProcessor(model_file=tokenizer.model_path)
        else:
            raise TypeError(f"no character offsets for a {type(tokenizer).__name__}; pass a "
                            f"WordPiece or SentencePiece tokenizer (tokenizers.loading.load_tokenizer).")
        self.tokenizer = tokenizer

    def __call__(self, text: str) -> TokenOffsets:
        ids, offsets = self._tokenize(text)
        return TokenOffsets(np.asarray(ids, np.int32).reshape(-1),
                            np.asarray(offsets, np.int32).reshape(-1, 2))

    def encode(self, text: str) -> list[int]:
        """The ids alone (a question's), special tokens in the text read as plain text."""
        return self.tokenizer.encode(text, split_special_tokens=True)

    def _wordpiece(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        basic = self.tokenizer.basic
        char_cache = self._char_cache
        normalized: list[str] = []
        origin: list[int] = []  # origin[k]: the index in `text` of normalized character k.
        for index, char in enumerate(text):
            norm = char_cache.get(char)
            if norm is None:
                # Whitespace and removed characters normalize to nothing.
                norm = char_cache[char] = "".join(basic.tokenize(char))
            if norm:
                normalized.append(norm)
                origin.extend([index] * len(norm))
        words = basic.tokenize(text)
        if "".join(words) != "".join(normalized):
            raise ValueError(f"cannot align WordPiece tokens with the characters of {text[:200]!r}: "
                             f"its characters normalized one by one differ from the text "
                             f"normalized whole. Please report this text.")
        ids: list[int] = []
        offsets: list[tuple[int, int]] = []
        position = 0
        for word in words:
            word_ids, piece_lengths = self._word_pieces(word)
            ids.extend(word_ids)
            for length in piece_lengths:
                offsets.append((origin[position], origin[position + length - 1] + 1))
                position += length
        return ids, offsets

    def _word_pieces(self, word: str) -> tuple[list[int], list[int]]:
        """The ids of one normalized word's pieces and how many of its characters each covers."""
        cached = self._word_cache.get(word)
        if cached is None:
            pieces = self.tokenizer.wordpiece.tokenize_word(word)
            if pieces == [UNK]:
                lengths = [len(word)]
            else:
                lengths = [len(p) - 2 if p.startswith("##") else len(p) for p in pieces]
            cached = (self.tokenizer.convert_tokens_to_ids(pieces), lengths)
            if len(self._word_cache) < 1_000_000:  # Bounds memory on endless streams of new words.
                self._word_cache[word] = cached
        return cached

    def _sentencepiece(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        # char_at_byte[b]: the index of the character that UTF-8 byte b starts or continues; one
        # more entry for the end of the text.
        char_at_byte = np.repeat(np.arange(len(text) + 1), [len(c.encode("utf-8")) for c in text] + [1])
        ids: list[int] = []
        offsets: list[tuple[int, int]] = []
        for piece in self._processor.encode(text, return_type="proto").pieces:
            start, end = int(char_at_byte[piece.begin]), int(char_at_byte[piece.end])
            if piece.end > piece.begin and char_at_byte[piece.end - 1] == end:
                end += 1  # The piece ends inside a character: it covers that character.
            while start < end and text[start].isspace():
                start += 1
            while end > start and text[end - 1].isspace():
                end -= 1
            ids.append(piece.id)
            offsets.append((start, end))
        return ids, offsets


def tokenize_with_offsets(tokenizer: QATokenizer, text: str) -> TokenOffsets:
    """The ids of `text` (special tokens in it read as plain text) and the original characters
    each covers. For many texts, make one `OffsetTokenizer` and call it instead."""
    return OffsetTokenizer(tokenizer)(text)
