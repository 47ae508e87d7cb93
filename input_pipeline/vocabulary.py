"""Trains a WordPiece vocabulary (`vocab.txt`) from raw text.

Our own implementation of the trainer behind the `tokenizers` library's `WordPieceTrainer`: the
vocab is grown BPE-style, by repeatedly merging the most frequent adjacent pair of pieces over the
word counts, and then used by greedy longest-match-first WordPiece (`tokenization.BertTokenizer`).

The vocab is laid out as BERT expects:

* the special tokens first (`[PAD]` = 0, `[UNK]` = 1, `[CLS]` = 2, `[SEP]` = 3, `[MASK]` = 4), so
  the ids the model code hard-wires hold whatever the corpus;
* then the alphabet: every kept character seen at the start of a word as itself, and as `##char`
  for every kept character seen inside a word. These single characters guarantee that greedy
  WordPiece can always fall back to spelling a word out, so a word whose characters are all in the
  alphabet never becomes `[UNK]`;
* then the merged subwords, in the order they were learned (most useful first), so truncating the
  file keeps the best pieces.

Merging is incremental, so that a 30k vocab over megabytes of text takes minutes rather than hours
in pure Python: pair counts are kept in a dict and updated only for the words a merge touches (an
index maps each pair to the words that contain it), and the best pair comes from a max-heap whose
stale entries are re-checked against the live counts when they surface (lazy invalidation).
"""

from __future__ import annotations

import collections
import heapq
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence

from input_pipeline.tokenization import SPECIAL_TOKENS, UNK, BasicTokenizer, BertTokenizer, save_vocab

CONTINUATION_PREFIX = "##"

# Greedy WordPiece (ours and `transformers`') turns any word longer than this into [UNK] without
# looking at it, so such words are left out of training: their pieces would never be used.
MAX_INPUT_CHARS_PER_WORD = 100


def count_words(texts: Iterable[str], basic_tokenizer: BasicTokenizer) -> collections.Counter:
    """Counts the normalized words (and punctuation marks) of `texts`.

    `texts` is consumed lazily, one string (typically one line) at a time, so memory is bounded by
    the number of distinct words, not by the size of the corpus.
    """
    counts: collections.Counter = collections.Counter()
    for text in texts:
        counts.update(basic_tokenizer.tokenize(text))
    return counts


def _select_alphabet(word_counts: Mapping[str, int], limit_alphabet: int | None) -> set[str]:
    """The `limit_alphabet` characters with the most occurrences (weighted by word count)."""
    char_counts: collections.Counter = collections.Counter()
    for word, count in word_counts.items():
        for char in word:
            char_counts[char] += count
    # Ties on count are broken by code point so the choice never depends on dict order.
    ranked = sorted(char_counts.items(), key=lambda item: (-item[1], item[0]))
    if limit_alphabet is not None:
        ranked = ranked[:limit_alphabet]
    return {char for char, _ in ranked}


def _merge_word(symbols: list[int], a: int, b: int, new: int) -> list[int]:
    """Replaces each non-overlapping occurrence of the pair (a, b), left to right, by `new`."""
    out = []
    i = 0
    last = len(symbols) - 1
    while i <= last:
        if i < last and symbols[i] == a and symbols[i + 1] == b:
            out.append(new)
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


def train_wordpiece(word_counts: Mapping[str, int], vocab_size: int, *, min_frequency: int = 2,
                    limit_alphabet: int | None = 1000,
                    special_tokens: Sequence[str] = SPECIAL_TOKENS) -> list[str]:
    """Learns a WordPiece vocab of `vocab_size` tokens from `word_counts` (word -> occurrences).

    Returns the tokens in id order: `special_tokens`, the alphabet, then the learned subwords.

    The alphabet is made of the `limit_alphabet` most frequent characters (None: no limit). A long
    tail of rare symbols (other scripts, math, emoji) would otherwise fill the vocab with tokens
    that are almost never used; words containing a character beyond the limit become `[UNK]` when
    tokenized, so they are left out of the merges as well, as are words longer than
    `MAX_INPUT_CHARS_PER_WORD`. Each kept character that starts some word is in the vocab as
    itself, and each one that occurs inside some word as `##char` (bare characters first, then the
    `##` ones, each group in code point order).

    Merging then repeats, until the vocab holds `vocab_size` tokens: take the adjacent pair of
    pieces with the highest total count over all words (ties go to the pair whose pieces were
    created first, i.e. the lowest ids -- ids are assigned in a fixed order, so the result never
    depends on dict order or hash seeds); stop if that count is below `min_frequency`; otherwise
    merge it in every word, the merged piece being the first piece followed by the second without
    its `##` (so "##a" + "##b" is "##ab" and "a" + "##b" is "ab"). A merge whose text is already a
    token (two different pairs can spell the same string) reuses that token and adds nothing.

    The result has exactly `vocab_size` tokens, or fewer if the pairs run out (or fall below
    `min_frequency`) first -- a small corpus cannot fill a large vocab.

    Raises:
      ValueError: if `vocab_size` cannot hold the special tokens and the alphabet (lower
        `limit_alphabet` or raise `vocab_size`), or a word contains whitespace (a vocab.txt token
        cannot, and the basic tokenizer never yields one).
    """
    if len(set(special_tokens)) != len(special_tokens) or not all(special_tokens):
        raise ValueError(f"special_tokens must be distinct non-empty strings, got {special_tokens!r}.")
    if min_frequency < 1:
        raise ValueError(f"min_frequency must be at least 1, got {min_frequency}.")
    if limit_alphabet is not None and limit_alphabet < 0:
        raise ValueError(f"limit_alphabet must be non-negative or None, got {limit_alphabet}.")

    # Words WordPiece would reject outright (too long) teach nothing; drop them before choosing
    # the alphabet too, so their characters do not take alphabet slots.
    usable: dict[str, int] = {}
    for word, count in word_counts.items():
        if any(char.isspace() for char in word):
            raise ValueError(f"word {word!r} contains whitespace; words must come from a tokenizer "
                             "that splits on whitespace (e.g. BasicTokenizer).")
        if count > 0 and 0 < len(word) <= MAX_INPUT_CHARS_PER_WORD:
            usable[word] = usable.get(word, 0) + int(count)

    alphabet = _select_alphabet(usable, limit_alphabet)
    initial_chars: set[str] = set()
    inner_chars: set[str] = set()
    for word in usable:
        if word[0] in alphabet:
            initial_chars.add(word[0])
        inner_chars.update(char for char in word[1:] if char in alphabet)

    id_to_token: list[str] = []
    token_to_id: dict[str, int] = {}

    def add_token(token: str) -> int:
        token_id = token_to_id.get(token)
        if token_id is None:
            token_id = token_to_id[token] = len(id_to_token)
            id_to_token.append(token)
        return token_id

    for token in special_tokens:
        add_token(token)
    for char in sorted(initial_chars):
        add_token(char)
    for char in sorted(inner_chars):
        add_token(CONTINUATION_PREFIX + char)
    if len(id_to_token) > vocab_size:
        raise ValueError(
            f"vocab_size={vocab_size} is too small: the {len(special_tokens)} special tokens and the "
            f"alphabet ({len(initial_chars)} word-initial and {len(inner_chars)} word-internal "
            f"characters) already take {len(id_to_token)} entries. Raise vocab_size or lower "
            f"limit_alphabet (now {limit_alphabet}).")

    # Each distinct trainable word as a list of piece ids, with its count. Words holding a
    # character outside the alphabet are [UNK] at tokenization time whatever the vocab, so their
    # pairs must not steer the merges.
    words: list[list[int]] = []
    counts: list[int] = []
    for word, count in usable.items():
        if all(char in alphabet for char in word):
            words.append([token_to_id[word[0]]]
                         + [token_to_id[CONTINUATION_PREFIX + char] for char in word[1:]])
            counts.append(count)

    # pair -> total count over all words, and pair -> indices of words that (may) contain it. The
    # index is only ever added to: a word that lost the pair is found out and skipped when the
    # pair is merged, which is cheaper than removing it from every set on each change.
    pair_counts: dict[tuple[int, int], int] = collections.defaultdict(int)
    where: dict[tuple[int, int], set[int]] = collections.defaultdict(set)
    for index, (symbols, count) in enumerate(zip(words, counts)):
        for pair in zip(symbols, symbols[1:]):
            pair_counts[pair] += count
            where[pair].add(index)

    # Max-heap via negated counts; (count, a, b) tuples give the deterministic tie-break. Entries
    # go stale instead of being updated in place: a merge pushes a fresh entry for every pair
    # whose count it raises, and leaves the old, too-high entry of every pair it lowers. So each
    # live pair always has an entry at least as high as its live count; a popped entry that
    # disagrees with the live count is re-pushed with it (or dropped if the pair is gone), and the
    # first popped entry that agrees is the true maximum.
    heap = [(-count, a, b) for (a, b), count in pair_counts.items()]
    heapq.heapify(heap)

    while len(id_to_token) < vocab_size and heap:
        neg_count, a, b = heapq.heappop(heap)
        live = pair_counts.get((a, b), 0)
        if live != -neg_count:
            if live > 0:
                heapq.heappush(heap, (-live, a, b))
            continue
        if live < min_frequency:
            break

        second = id_to_token[b]
        if second.startswith(CONTINUATION_PREFIX):
            second = second[len(CONTINUATION_PREFIX):]
        new = add_token(id_to_token[a] + second)

        deltas: dict[tuple[int, int], int] = collections.defaultdict(int)
        for index in where.pop((a, b), ()):
            symbols = words[index]
            merged = _merge_word(symbols, a, b, new)
            if len(merged) == len(symbols):
                continue  # A stale index entry: this word no longer holds the pair.
            count = counts[index]
            for pair in zip(symbols, symbols[1:]):
                deltas[pair] -= count
            for pair in zip(merged, merged[1:]):
                deltas[pair] += count
                where[pair].add(index)
            words[index] = merged

        for pair, delta in deltas.items():
            if delta == 0:
                continue
            count = pair_counts[pair] + delta
            if count > 0:
                pair_counts[pair] = count
                if delta > 0:
                    heapq.heappush(heap, (-count, pair[0], pair[1]))
            else:
                del pair_counts[pair]
        # Normally the merged pair is gone from every word. It can survive only when the merged
        # text equals one of its own parts (e.g. "##" + "##a" is "##a"), and then it needs a heap
        # entry again since its old one was just popped.
        if pair_counts.get((a, b), 0) > 0:
            heapq.heappush(heap, (-pair_counts[(a, b)], a, b))

    return id_to_token


def _read_lines(path: str) -> Iterator[str]:
    """Yields the lines of a UTF-8 file one at a time; a ValueError names file and line on bad
    UTF-8 (silently replacing bytes would put U+FFFD pieces, or holes, into the vocab)."""
    with open(path, "rb") as f:
        for line_number, raw in enumerate(f, start=1):
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(f"{path}:{line_number}: invalid UTF-8 ({e.reason} at byte "
                                 f"{e.start} of the line); training text must be UTF-8.") from e


def train_vocab_from_files(paths: Sequence[str], output_path: str, vocab_size: int, *,
                           do_lower_case: bool = True, min_frequency: int = 2,
                           limit_alphabet: int | None = 1000) -> list[str]:
    """Trains a WordPiece vocab on UTF-8 text files and writes it to `output_path` (`vocab.txt`).

    Files are read line by line, so their size is not limited by memory. `do_lower_case` must
    match the tokenizer the vocab will be used with (uncased: lower-cased, accents stripped).
    Returns the tokens, in id order. See `train_wordpiece` for the other arguments.

    Raises:
      FileNotFoundError: if an input file is missing (checked before any reading).
      ValueError: on invalid UTF-8 (naming file and line) or an unusable `vocab_size`.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not paths:
        raise ValueError("train_vocab_from_files needs at least one input file.")
    # Fail before spending minutes counting words, not after.
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"training text file not found: {path}")
    out_dir = os.path.dirname(os.path.abspath(output_path))
    if not os.path.isdir(out_dir):
        raise FileNotFoundError(f"output directory does not exist: {out_dir}")

    basic = BasicTokenizer(do_lower_case=do_lower_case)
    word_counts: collections.Counter = collections.Counter()
    for path in paths:
        word_counts.update(count_words(_read_lines(os.fspath(path)), basic))
    tokens = train_wordpiece(word_counts, vocab_size, min_frequency=min_frequency,
                             limit_alphabet=limit_alphabet)
    save_vocab(tokens, output_path)
    return tokens


def held_out_statistics(tokenizer: BertTokenizer, texts: Iterable[str]) -> dict:
    """How well `tokenizer`'s vocab covers `texts` (ideally text not used to train it).

    Returns a dict with:
      unk_rate: fraction of WordPiece tokens that are [UNK] (each [UNK] stands for a whole word);
      tokens_per_word: WordPiece tokens per word -- lower means longer sequences fit more text;
      num_texts, num_words, num_tokens, num_unk_tokens: the raw counts behind those rates.

    Words are the basic tokenizer's words and punctuation marks; literal special-token strings in
    the text are treated as ordinary text.
    """
    pieces_of: dict[str, list[str]] = {}
    num_texts = num_words = num_tokens = num_unk = 0
    for text in texts:
        num_texts += 1
        for word in tokenizer.basic.tokenize(text):
            pieces = pieces_of.get(word)
            if pieces is None:
                pieces = pieces_of[word] = tokenizer.wordpiece.tokenize_word(word)
            num_words += 1
            num_tokens += len(pieces)
            num_unk += sum(1 for piece in pieces if piece == UNK)
    return {
        "unk_rate": num_unk / num_tokens if num_tokens else 0.0,
        "tokens_per_word": num_tokens / num_words if num_words else 0.0,
        "num_texts": num_texts,
        "num_words": num_words,
        "num_tokens": num_tokens,
        "num_unk_tokens": num_unk,
    }
