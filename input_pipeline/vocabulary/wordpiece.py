"""Trains a WordPiece vocabulary (`vocab.txt`) from raw text.

Our own implementation of the trainer behind the `tokenizers` library's `WordPieceTrainer`: the
vocab is grown BPE-style, by repeatedly merging the most frequent adjacent pair of pieces over the
word counts, and then used by greedy longest-match-first WordPiece (`tokenization.BertTokenizer`).

The vocab is laid out as BERT expects:

* the special tokens first (`[PAD]` = 0, `[UNK]` = 1, `[CLS]` = 2, `[SEP]` = 3, `[MASK]` = 4), so
  the ids the model code hard-wires hold whatever the corpus;
* then the alphabet: every kept character as itself and as `##char` (punctuation and Chinese
  characters, always words of their own, only as themselves). These single characters guarantee
  that greedy WordPiece can always fall back to spelling a word out, so a word whose characters
  are all in the alphabet never becomes `[UNK]`, in training text or not;
* then the merged subwords, in the order they were learned (most useful first), so truncating the
  file keeps the best pieces.

An initial alphabet (e.g. the 2,350 Hangul syllables of KS X 1001, `ks_x_1001_hangul_syllables`)
puts characters into the alphabet whether or not training saw them, so held-out words made of
them never become `[UNK]`: a small Korean corpus does not use every common syllable.

Korean must be trained cased, or at least without accent stripping: stripping decomposes (NFD)
every Hangul syllable into two or three jamo, so a Korean vocab would be made of jamo pieces.
`train_vocab_from_files` refuses accent stripping on a corpus whose words are a fifth or more
Hangul (`HANGUL_WORD_SHARE_LIMIT`).

Merging is incremental, so that a 30k vocab over megabytes of text takes minutes rather than hours
in pure Python: pair counts are kept in a dict and updated only for the words a merge touches (an
index maps each pair to the words that contain it), and the best pair comes from a max-heap whose
stale entries are re-checked against the live counts when they surface (lazy invalidation).
"""

from __future__ import annotations

import collections
import heapq
import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence

from input_pipeline.output_file import refuse_existing_file, write_output_file
from input_pipeline.progress import Progress
from input_pipeline.text.report import InputReport
from input_pipeline.text.sentences import HANGUL, LATIN
from input_pipeline.text.sources import expand_inputs, iter_lines, plain_text_bytes
from input_pipeline.tokenizers.wordpiece import (
    SPECIAL_TOKENS,
    UNK,
    BasicTokenizer,
    BertTokenizer,
    is_chinese_char,
    is_control,
    is_punctuation,
    is_whitespace,
)

CONTINUATION_PREFIX = "##"

# Greedy WordPiece (ours and `transformers`') turns any word longer than this into [UNK] without
# looking at it, so such words are left out of training: their pieces would never be used.
MAX_INPUT_CHARS_PER_WORD = 100

# Accent stripping is refused when at least this share of the words (of those written in Hangul
# or Latin letters) holds Hangul: past stray quotations, Korean is then a real part of the corpus,
# and it would be learned as jamo. Checked after the first `_EARLY_CHECK_LINES` lines, so a
# mistake fails in seconds, and again on the whole corpus.
HANGUL_WORD_SHARE_LIMIT = 0.2
_EARLY_CHECK_LINES = 10_000


def _euc_kr_rows(first_lead: int, last_lead: int) -> list[str]:
    """The characters of KS X 1001 rows `first_lead`..`last_lead` (EUC-KR lead bytes), decoded
    with Python's `euc_kr` codec; empty cells (which the codec refuses) are skipped."""
    chars = []
    for lead in range(first_lead, last_lead + 1):
        for trail in range(0xA1, 0xFF):
            try:
                chars.append(bytes((lead, trail)).decode("euc_kr"))
            except UnicodeDecodeError:
                continue
    return chars


def ks_x_1001_hangul_syllables() -> list[str]:
    """The 2,350 Hangul syllables of KS X 1001 (the common ones, those of the Korean national
    character set), in code point order: rows 0xB0..0xC8 of Python's `euc_kr` codec."""
    return sorted(c for c in _euc_kr_rows(0xB0, 0xC8) if "\uac00" <= c <= "\ud7a3")


def ks_x_1001_symbols() -> list[str]:
    """The 985 printable characters of KS X 1001 rows 0xA1..0xAF, in code point order: the
    punctuation Korean text uses (「」, ～, ·, ※, ①), full-width forms, compatibility jamo, Greek,
    Cyrillic, kana, units and box drawing; less the ideographic space and the soft hyphen. Neither
    Hangul syllables nor Hanja."""
    return sorted(c for c in _euc_kr_rows(0xA1, 0xAF) if not is_whitespace(c) and not is_control(c))


def ascii_printable() -> list[str]:
    """The 94 printable ASCII characters, "!" to "~"."""
    return [chr(code) for code in range(0x21, 0x7F)]


# Initial alphabets by name, for command lines (`named_initial_alphabet`).
INITIAL_ALPHABETS: dict[str, Callable[[], list[str]]] = {
    "ksx1001-hangul": ks_x_1001_hangul_syllables,
    "ksx1001-symbols": ks_x_1001_symbols,
    "ascii": ascii_printable,
}


def named_initial_alphabet(names: str | Sequence[str]) -> list[str]:
    """The union, in code point order, of the `INITIAL_ALPHABETS` named in `names` (a sequence,
    or one comma-separated string such as "ksx1001-hangul,ascii"); "" gives none.

    Raises:
      ValueError: for an unknown name, listing the known ones.
    """
    if isinstance(names, str):
        names = [name.strip() for name in names.split(",") if name.strip()]
    chars: set[str] = set()
    for name in names:
        if name not in INITIAL_ALPHABETS:
            raise ValueError(f"unknown initial alphabet {name!r}; use any of "
                             f"{', '.join(INITIAL_ALPHABETS)}, separated by commas.")
        chars.update(INITIAL_ALPHABETS[name]())
    return sorted(chars)


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


def _can_continue_word(char: str) -> bool:
    """Whether `char` can be inside a word: the basic tokenizer makes every punctuation mark and
    Chinese character a word of its own, so their `##` forms could never be used."""
    return not is_punctuation(char) and not is_chinese_char(ord(char))


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


def _trainable_words(word_counts: Mapping[str, int]) -> dict[str, int]:
    """The words worth training on, with their counts: words WordPiece would reject outright (too
    long) teach nothing, and are dropped before the alphabet is chosen too, so that their
    characters do not take alphabet slots."""
    usable: dict[str, int] = {}
    for word, count in word_counts.items():
        if any(char.isspace() for char in word):
            raise ValueError(f"word {word!r} contains whitespace; words must come from a tokenizer "
                             "that splits on whitespace (e.g. BasicTokenizer).")
        if count > 0 and 0 < len(word) <= MAX_INPUT_CHARS_PER_WORD:
            usable[word] = usable.get(word, 0) + int(count)
    return usable


def _checked_initial_alphabet(initial_alphabet: Iterable[str]) -> set[str]:
    extra = set()
    for char in initial_alphabet:
        if not isinstance(char, str) or len(char) != 1 or char.isspace():
            raise ValueError(f"initial_alphabet must hold single non-whitespace characters, got "
                             f"{char!r}.")
        extra.add(char)
    return extra


def _alphabet_forms(words: Iterable[str], alphabet: set[str]) -> tuple[set[str], set[str]]:
    """(the characters to have as word-initial tokens, those to have as `##char`): every
    character both ways, not only in the positions training saw it in, since a held-out word may
    start with a character seen only inside words, or the reverse (common with Korean syllables,
    where it halves the held-out [UNK] rate of a small corpus); less the `##` forms of characters
    that are always words of their own, unless some word holds them inside."""
    inner_chars = {char for char in alphabet if _can_continue_word(char)}
    for word in words:
        inner_chars.update(char for char in word[1:] if char in alphabet)
    return set(alphabet), inner_chars


class _Vocab:
    """The tokens in id order, and the id of each."""

    def __init__(self):
        self.tokens: list[str] = []
        self._ids: dict[str, int] = {}

    def add(self, token: str) -> int:
        """The id of `token`, added at the end if it is not in the vocab yet."""
        token_id = self._ids.get(token)
        if token_id is None:
            token_id = self._ids[token] = len(self.tokens)
            self.tokens.append(token)
        return token_id

    def id(self, token: str) -> int:
        return self._ids[token]

    def __len__(self) -> int:
        return len(self.tokens)


def _merged_token(first: str, second: str) -> str:
    """The token of a merged pair: the first piece followed by the second without its `##`."""
    return first + second.removeprefix(CONTINUATION_PREFIX)


class _PairCounts:
    """The total count of every adjacent pair of pieces over the words, kept up to date as merges
    rewrite the words (only the words a merge touches are visited), and a max-heap to find the
    most frequent pair.

    `where` maps each pair to the indices of the words that (may) contain it. It is only ever
    added to: a word that lost the pair is found out and skipped when the pair is merged, which
    is cheaper than removing it from every set on each change.

    The heap holds (-count, a, b), which gives the deterministic tie-break (lowest ids first).
    Entries go stale instead of being updated in place: a merge pushes a fresh entry for every
    pair whose count it raises, and leaves the old, too-high entry of every pair it lowers. So
    each live pair always has an entry at least as high as its live count; a popped entry that
    disagrees with the live count is re-pushed with it (or dropped if the pair is gone), and the
    first popped entry that agrees is the true maximum.
    """

    def __init__(self, words: list[list[int]], counts: list[int]):
        self.words, self.counts = words, counts
        self.pair_counts: dict[tuple[int, int], int] = collections.defaultdict(int)
        self.where: dict[tuple[int, int], set[int]] = collections.defaultdict(set)
        for index, (symbols, count) in enumerate(zip(words, counts)):
            for pair in itertools.pairwise(symbols):
                self.pair_counts[pair] += count
                self.where[pair].add(index)
        self.heap = [(-count, a, b) for (a, b), count in self.pair_counts.items()]
        heapq.heapify(self.heap)

    def most_frequent(self) -> tuple[int, int, int] | None:
        """(count, a, b) of the most frequent pair (a, b), ties to the lowest ids; None when no
        pair is left."""
        while self.heap:
            neg_count, a, b = heapq.heappop(self.heap)
            live = self.pair_counts.get((a, b), 0)
            if live == -neg_count:
                return live, a, b
            if live > 0:
                heapq.heappush(self.heap, (-live, a, b))
        return None

    def merge(self, a: int, b: int, new: int) -> None:
        """Replaces the pair (a, b) by the piece `new` in every word, and updates the counts."""
        deltas: dict[tuple[int, int], int] = collections.defaultdict(int)
        for index in self.where.pop((a, b), ()):
            symbols = self.words[index]
            merged = _merge_word(symbols, a, b, new)
            if len(merged) == len(symbols):
                continue  # A stale index entry: this word no longer holds the pair.
            count = self.counts[index]
            for pair in itertools.pairwise(symbols):
                deltas[pair] -= count
            for pair in itertools.pairwise(merged):
                deltas[pair] += count
                self.where[pair].add(index)
            self.words[index] = merged

        for pair, delta in deltas.items():
            if delta == 0:
                continue
            count = self.pair_counts[pair] + delta
            if count > 0:
                self.pair_counts[pair] = count
                if delta > 0:
                    heapq.heappush(self.heap, (-count, pair[0], pair[1]))
            else:
                del self.pair_counts[pair]
        # Normally the merged pair is gone from every word. It can survive only when the merged
        # text equals one of its own parts (e.g. "##" + "##a" is "##a"), and then it needs a heap
        # entry again since its old one was just popped.
        if self.pair_counts.get((a, b), 0) > 0:
            heapq.heappush(self.heap, (-self.pair_counts[(a, b)], a, b))


def train_wordpiece(word_counts: Mapping[str, int], vocab_size: int, *, min_frequency: int = 2,
                    limit_alphabet: int | None = 1000,
                    special_tokens: Sequence[str] = SPECIAL_TOKENS,
                    initial_alphabet: Iterable[str] = ()) -> list[str]:
    """Learns a WordPiece vocab of `vocab_size` tokens from `word_counts` (word -> occurrences).

    Returns the tokens in id order: `special_tokens`, the alphabet, then the learned subwords.

    The alphabet is made of the `limit_alphabet` most frequent characters (None: no limit). A long
    tail of rare symbols (other scripts, math, emoji) would otherwise fill the vocab with tokens
    that are almost never used; words containing a character beyond the limit become `[UNK]` when
    tokenized, so they are left out of the merges as well, as are words longer than
    `MAX_INPUT_CHARS_PER_WORD`. Each kept character is in the vocab as itself and as `##char`,
    wherever training saw it, so that any word spelled with them has a WordPiece split; only
    characters the basic tokenizer always splits off into words of their own (punctuation,
    Chinese characters) are not given a `##` form, unless some word holds them inside. Bare
    characters come first, then the `##` ones, each group in code point order. (The `tokenizers`
    trainer adds `##char` only for characters seen inside a word.)

    `initial_alphabet` (single characters) joins the alphabet on top of `limit_alphabet`, whether
    or not the words hold its characters, in the same two forms, so no word made of them is ever
    `[UNK]`. (The `tokenizers` trainer counts its initial alphabet against `limit_alphabet`.)

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
        `limit_alphabet` or raise `vocab_size`), a word contains whitespace (a vocab.txt token
        cannot, and the basic tokenizer never yields one), or `initial_alphabet` holds anything
        but single non-whitespace characters.
    """
    if len(set(special_tokens)) != len(special_tokens) or not all(special_tokens):
        raise ValueError(f"special_tokens must be distinct non-empty strings, got {special_tokens!r}.")
    if min_frequency < 1:
        raise ValueError(f"min_frequency must be at least 1, got {min_frequency}.")
    if limit_alphabet is not None and limit_alphabet < 0:
        raise ValueError(f"limit_alphabet must be non-negative or None, got {limit_alphabet}.")

    usable = _trainable_words(word_counts)
    extra = _checked_initial_alphabet(initial_alphabet)
    alphabet = _select_alphabet(usable, limit_alphabet) | extra
    initial_chars, inner_chars = _alphabet_forms(usable, alphabet)
    vocab = _Vocab()
    for token in [*special_tokens, *sorted(initial_chars),
                  *(CONTINUATION_PREFIX + char for char in sorted(inner_chars))]:
        vocab.add(token)
    if len(vocab) > vocab_size:
        raise ValueError(
            f"vocab_size={vocab_size} is too small: the {len(special_tokens)} special tokens and the "
            f"alphabet ({len(initial_chars)} word-initial and {len(inner_chars)} word-internal "
            f"characters) already take {len(vocab)} entries. Raise vocab_size (`bert-jax vocab "
            f"--vocab-size`) to at least {len(vocab)}"
            + (f", or give fewer --initial-alphabet characters (now {len(extra)})" if extra else "")
            + ".")

    # Each distinct trainable word as a list of piece ids, with its count. Words holding a
    # character outside the alphabet are [UNK] at tokenization time whatever the vocab, so their
    # pairs must not steer the merges.
    trainable = [(word, count) for word, count in usable.items() if all(char in alphabet for char in word)]
    pairs = _PairCounts(
        [[vocab.id(word[0]), *(vocab.id(CONTINUATION_PREFIX + char) for char in word[1:])]
         for word, _ in trainable],
        [count for _, count in trainable])
    _merge_pairs(pairs, vocab, vocab_size, min_frequency)
    return vocab.tokens


def _merge_pairs(pairs: _PairCounts, vocab: _Vocab, vocab_size: int, min_frequency: int) -> None:
    """Adds the merges of the most frequent pairs to `vocab` until it holds `vocab_size` tokens
    or no pair is seen `min_frequency` times (see `train_wordpiece`)."""
    with Progress("vocab: merging", vocab_size, unit="tokens", initial=len(vocab)) as merging:
        while len(vocab) < vocab_size:
            best = pairs.most_frequent()
            if best is None or best[0] < min_frequency:
                break
            _, a, b = best
            pairs.merge(a, b, vocab.add(_merged_token(vocab.tokens[a], vocab.tokens[b])))
            merging.update(len(vocab) - merging.done)  # none where the merge spells a token already in


def hangul_word_share(word_counts: Mapping[str, int]) -> float:
    """The share of the words (weighted by count) holding Hangul, among those holding Hangul or
    Latin letters; 0.0 when there are none. Syllables and jamo both count, so it reads the same
    before and after accent stripping decomposed the syllables."""
    hangul = latin = 0
    for word, count in word_counts.items():
        if HANGUL.search(word):
            hangul += count
        elif LATIN.search(word):
            latin += count
    return hangul / (hangul + latin) if hangul + latin else 0.0


def _check_not_stripping_hangul(word_counts: Mapping[str, int], where: str) -> None:
    share = hangul_word_share(word_counts)
    if share >= HANGUL_WORD_SHARE_LIMIT:
        raise ValueError(
            f"{where}: {share:.0%} of the words are Hangul, and accent stripping (on with "
            "do_lower_case=True unless strip_accents=False) decomposes every Hangul syllable into "
            "jamo, so the vocab would hold jamo instead of syllables. Train a cased vocab "
            "(do_lower_case=False, --cased), or lower-case without stripping accents "
            "(strip_accents=False), and tokenize with the same setting.")


def train_vocab_from_files(inputs: Sequence[str], output_path: str, vocab_size: int, *,
                           do_lower_case: bool = True, strip_accents: bool | None = None,
                           min_frequency: int = 2, limit_alphabet: int | None = 1000,
                           initial_alphabet: Iterable[str] = (), text_field: str = "text",
                           tfds_data_dir: str | None = None,
                           report: InputReport | None = None, overwrite: bool = False) -> list[str]:
    """Trains a WordPiece vocab on text inputs and writes it to `output_path` (`vocab.txt`).

    `inputs` are files, globs, directories and TFDS specs, as for `text_sources.expand_inputs`
    (text, `.gz`, `.jsonl` with the text in `text_field`, `tfds:NAME[:SPLIT]`). Lines are
    tokenized and counted one at a time, so memory is bounded by the number of distinct words, not
    by the size of the corpus; document breaks and sentence splitting do not matter here.

    `do_lower_case` and `strip_accents` (None: same as `do_lower_case`, as in `transformers`) must
    match the tokenizer the vocab will be used with. `initial_alphabet` characters are normalized
    the same way (an uncased vocab gets "e" for "É"). Returns the tokens, in id order. See
    `train_wordpiece` for the other arguments. With a `report`, bad input (binary files, invalid
    UTF-8, bad JSON Lines records, ...) is skipped and counted there, or, if it is strict, an error
    naming file and line (`InputReport`); without one, invalid UTF-8 and JSONL are errors. The
    file is written whole or not at all, and an existing one is replaced only with `overwrite`
    (`input_pipeline.output_file`).

    Raises:
      FileNotFoundError: if an input matches no file, or the output directory is missing
        (checked before any reading).
      FileExistsError: if `output_path` exists and not `overwrite` (checked before any reading).
      ValueError: on invalid UTF-8 or JSONL (naming file and line), an unusable `vocab_size`,
        accent stripping on a corpus that is a fifth or more Hangul (`HANGUL_WORD_SHARE_LIMIT`),
        or text without a word.
    """
    refuse_existing_file(output_path, overwrite)
    sources = expand_inputs(inputs, report)

    basic = BasicTokenizer(do_lower_case=do_lower_case, strip_accents=strip_accents)
    word_counts: collections.Counter = collections.Counter()
    num_lines = 0
    reading = Progress("vocab: counting words", plain_text_bytes(sources), unit="B", unit_scale=True)
    for source in sources:
        for line in reading.lines(iter_lines(source, text_field=text_field, tfds_data_dir=tfds_data_dir,
                                             report=report)):
            word_counts.update(basic.tokenize(line))
            num_lines += 1
            if num_lines == _EARLY_CHECK_LINES and basic.strip_accents:
                _check_not_stripping_hangul(word_counts,
                                            f"the first {num_lines} lines (up to {source})")
    reading.close(f"{len(word_counts):,} distinct words in {num_lines:,} lines", read_all=True)
    if basic.strip_accents:
        _check_not_stripping_hangul(word_counts, f"the training text ({len(sources)} inputs)")
    if not word_counts:
        raise ValueError(f"no word to train a vocab on in {len(sources)} input(s) "
                         f"({num_lines:,} lines, none with a character the tokenizer keeps)"
                         + (f"; {report.summary()}" if report is not None else ".")
                         + " Give text.")

    extra = sorted({char for text in initial_alphabet for word in basic.tokenize(text)
                    for char in word})
    tokens = train_wordpiece(word_counts, vocab_size, min_frequency=min_frequency,
                             limit_alphabet=limit_alphabet, initial_alphabet=extra)
    text = "".join(token + "\n" for token in tokens).encode("utf-8")
    write_output_file(output_path, lambda f: f.write(text), overwrite=overwrite)
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
    if not isinstance(tokenizer, BertTokenizer):  # SentencePiece: words are whitespace-separated.
        return _sentencepiece_statistics(tokenizer, texts)
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
    return _statistics(num_texts, num_words, num_tokens, num_unk)


def _sentencepiece_statistics(tokenizer, texts: Iterable[str]) -> dict:
    num_texts = num_words = num_tokens = num_unk = 0
    for text in texts:
        ids = tokenizer.encode(text, split_special_tokens=True)
        num_texts += 1
        num_words += len(text.split())
        num_tokens += len(ids)
        num_unk += ids.count(tokenizer.unk_id)
    return _statistics(num_texts, num_words, num_tokens, num_unk)


def _statistics(num_texts: int, num_words: int, num_tokens: int, num_unk: int) -> dict:
    return {
        "unk_rate": num_unk / num_tokens if num_tokens else 0.0,
        "tokens_per_word": num_tokens / num_words if num_words else 0.0,
        "num_texts": num_texts,
        "num_words": num_words,
        "num_tokens": num_tokens,
        "num_unk_tokens": num_unk,
    }
