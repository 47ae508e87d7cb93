"""Tests for the WordPiece vocabulary trainer (`input_pipeline/vocabulary.py`).

Real English text comes from the Python standard library's docstrings, read with `ast` (never
imported), with a few modules held out by name; real Korean text from the `konlpy` package (the
constitution and ten National Assembly bills, read as files). Nothing is downloaded and the
corpora are the same offline. References: the `tokenizers` library's WordPiece trainer,
`transformers`' BertTokenizer, and the `euc_kr`/`cp949` codecs for KS X 1001."""

from __future__ import annotations

import collections
import gzip
import importlib.util
import json
import random
import time
from pathlib import Path

import pytest

from input_pipeline.tokenizers.wordpiece import SPECIAL_TOKENS, BasicTokenizer, load_vocab
from input_pipeline.vocabulary import wordpiece as vocabulary
from input_pipeline.vocabulary.wordpiece import (
    count_words,
    hangul_word_share,
    held_out_statistics,
    ks_x_1001_hangul_syllables,
    ks_x_1001_symbols,
    named_initial_alphabet,
    train_vocab_from_files,
    train_wordpiece,
)
from tests.support.vocabulary_corpus import (
    tokenizer_of,
)

# The worked example (min_frequency=2):
#   words: hug x10, pug x5, pun x12, bun x4, hugs x5.
#   alphabet: every character both ways, b g h n p s u (ids 5-11), ##b ##g ##h ##n ##p ##s ##u
#   (ids 12-18), though training sees e.g. "g" only inside words and "b" only at their start.
#   pair counts: (##u,##g) 10+5+5=20, (p,##u) 5+12=17, (##u,##n) 12+4=16, (h,##u) 10+5=15,
#                (##g,##s) 5, (b,##u) 4.
#   1. (##u,##g)=20 -> "##ug" (19). Now hug=h ##ug, pug=p ##ug, hugs=h ##ug ##s; (h,##ug)=15,
#      (p,##ug)=5, (##ug,##s)=5, (p,##u)=12 (pun only), (##u,##n)=16, (b,##u)=4.
#   2. (##u,##n)=16 -> "##un" (20). pun=p ##un, bun=b ##un; (p,##un)=12, (b,##un)=4.
#   3. (h,##ug)=15 -> "hug" (21). hugs=hug ##s; (hug,##s)=5.
#   4. (p,##un)=12 -> "pun" (22).
#   5. tie at 5 between (p,##ug) = ids (9,19) and (hug,##s) = ids (21,17): lowest ids win -> "pug" (23).
#   6. (hug,##s)=5 -> "hugs" (24).
#   7. (b,##un)=4 -> "bun" (25). Every word is now one piece: nothing left to merge, 26 tokens.
HAND_COUNTS = {"hug": 10, "pug": 5, "pun": 12, "bun": 4, "hugs": 5}


HAND_ALPHABET = ["b", "g", "h", "n", "p", "s", "u", "##b", "##g", "##h", "##n", "##p", "##s", "##u"]


HAND_MERGES = ["##ug", "##un", "hug", "pun", "pug", "hugs", "bun"]


def test_hand_worked_merges():
    expected = list(SPECIAL_TOKENS) + HAND_ALPHABET + HAND_MERGES
    # More room than there is to merge: the vocab stops short, at 26.
    assert train_wordpiece(HAND_COUNTS, 100) == expected
    # Exact size: cut after the 5th merge (the tie-break one).
    assert train_wordpiece(HAND_COUNTS, 24) == expected[:24]
    # min_frequency stops merging at the first pair below it: bun (4) is not learned at 5, and
    # only the merges with counts 20, 16, 15 and 12 are at 6.
    assert train_wordpiece(HAND_COUNTS, 100, min_frequency=5) == expected[:-1]
    assert train_wordpiece(HAND_COUNTS, 100, min_frequency=6) == expected[:-3]
    # Exactly the alphabet: no merges at all.
    assert train_wordpiece(HAND_COUNTS, 19) == expected[:19]


def test_alphabet_spells_held_out_words_in_any_position():
    # "gub" puts g first and b inside, positions training never saw them in; punctuation is a word
    # of its own for the basic tokenizer, so it gets no "##" form.
    tokens = train_wordpiece({**HAND_COUNTS, "!": 3}, 100)
    assert "!" in tokens and "##!" not in tokens
    tokenizer = tokenizer_of(tokens)
    assert tokenizer.tokenize("gub snub!") == ["g", "##u", "##b", "s", "##n", "##u", "##b", "!"]


def test_limit_alphabet_drops_rare_characters_and_their_words():
    # Characters by count: a 85, b 85, y 50. With limit_alphabet=2, "y" is out, so "aby" becomes
    # [UNK] whatever the vocab and must not count towards (a,##b): that pair has count 5 (from
    # "ab"), below (b,##a) = 30, so "ba" is learned first. Counting "aby" (as the `tokenizers`
    # trainer does, by dropping the y) would have learned "ab" (55) first.
    counts = {"ab": 5, "aby": 50, "ba": 30}
    tokens = train_wordpiece(counts, 100, limit_alphabet=2)
    assert tokens == list(SPECIAL_TOKENS) + ["a", "b", "##a", "##b", "ba", "ab"]
    # Without the limit, "y" is in the alphabet and "aby" counts: (a,##b) = 55 first, then
    # (ab,##y) = 50, then (b,##a) = 30.
    tokens = train_wordpiece(counts, 100, limit_alphabet=None)
    assert tokens[5:] == ["a", "b", "y", "##a", "##b", "##y", "ab", "aby", "ba"]


def test_merges_with_overlaps_and_repeated_spellings():
    # Alphabet: "a" (5), "##a" (6). Words: aaaa = a ##a ##a ##a, aaa = a ##a ##a, aa = a ##a.
    # (##a,##a) occurs twice in "aaaa" (overlapping) and once in "aaa": 2*10 + 3 = 23;
    # (a,##a) = 10 + 3 + 4 = 17.
    #   1. (##a,##a)=23 -> "##aa", merged left to right without overlap: aaaa = a ##aa ##a,
    #      aaa = a ##aa. Now (a,##aa) = 13, (##aa,##a) = 10, (a,##a) = 4 (from "aa" only).
    #   2. (a,##aa)=13 -> "aaa": aaaa = aaa ##a, aaa = aaa. Now (aaa,##a) = 10.
    #   3. (aaa,##a)=10 -> "aaaa".  4. (a,##a)=4 -> "aa".
    counts = {"aaaa": 10, "aaa": 3, "aa": 4}
    assert train_wordpiece(counts, 100) == list(SPECIAL_TOKENS) + ["a", "##a", "##aa", "aaa",
                                                                   "aaaa", "aa"]


def _naive_reference(word_counts, vocab_size, min_frequency=2):
    """The same training rule, written the slow obvious way: a full recount of every pair before
    each merge, words as lists of token strings. Checks the incremental bookkeeping."""
    # Every character as itself; as "##c" if seen inside a word or if it is not ASCII punctuation
    # (the words here use letters and "#", which BERT treats as punctuation).
    initial = sorted({c for w in word_counts for c in w})
    inner = sorted({c for w in word_counts for c in w[1:]} | {c for c in initial if c.isalnum()})
    tokens = list(SPECIAL_TOKENS) + initial + ["##" + c for c in inner]
    ids = {t: i for i, t in enumerate(tokens)}
    words = [[w[0]] + ["##" + c for c in w[1:]] for w in word_counts]
    counts = list(word_counts.values())
    while len(tokens) < vocab_size:
        pairs = collections.Counter()
        for pieces, count in zip(words, counts):
            for pair in zip(pieces, pieces[1:]):
                pairs[pair] += count
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], ids[p[0]], ids[p[1]]))
        if pairs[best] < min_frequency:
            break
        new = best[0] + best[1][2:]
        if new not in ids:
            ids[new] = len(tokens)
            tokens.append(new)
        for k, pieces in enumerate(words):
            out, i = [], 0
            while i < len(pieces):
                if i + 1 < len(pieces) and (pieces[i], pieces[i + 1]) == best:
                    out.append(new)
                    i += 2
                else:
                    out.append(pieces[i])
                    i += 1
            words[k] = out
    return tokens


@pytest.mark.parametrize("seed,letters", [(0, "ab"), (1, "abc"), (2, "abcd"), (3, "ab#"),
                                          (4, "xyz#")])
def test_incremental_training_matches_full_recount(seed, letters):
    # Small alphabets give many ties, overlapping pairs ("aaa") and merges that spell an existing
    # token a second way ("a"+"##bc" and "ab"+"##c"); "#" gives pieces that look like "##" ones.
    rng = random.Random(seed)
    counts = {}
    while len(counts) < 300:
        word = "".join(rng.choice(letters) for _ in range(rng.randint(1, 9)))
        counts[word] = rng.randint(1, 30)
    expected = _naive_reference(counts, 400)
    assert train_wordpiece(counts, 400) == expected
    assert train_wordpiece(counts, 60) == expected[:60]


def test_initial_alphabet_joins_the_alphabet():
    # Unseen characters enter both ways ("!" only as itself: it is always a word of its own); the
    # merges are those of the worked example.
    tokens = train_wordpiece(HAND_COUNTS, 100, initial_alphabet="zx!")
    assert tokens == (list(SPECIAL_TOKENS) + ["!"] + HAND_ALPHABET[:7] + ["x", "z"]
                      + HAND_ALPHABET[7:] + ["##x", "##z"] + HAND_MERGES)
    # On top of limit_alphabet: with no other character kept, only "hug" x10 is spelled with the
    # alphabet: (h,##u)=10 -> "hu", then (hu,##g)=10 -> "hug".
    assert train_wordpiece(HAND_COUNTS, 100, limit_alphabet=0, initial_alphabet="hug") == (
        list(SPECIAL_TOKENS) + ["g", "h", "u", "##g", "##h", "##u", "hu", "hug"])
    for bad in (["ab"], [" "], [""]):
        with pytest.raises(ValueError, match="initial_alphabet must hold single non-whitespace"):
            train_wordpiece(HAND_COUNTS, 100, initial_alphabet=bad)


def test_ks_x_1001_hangul_syllables():
    syllables = ks_x_1001_hangul_syllables()
    assert len(syllables) == len(set(syllables)) == 2350 and syllables == sorted(syllables)
    # Checked against another codec: cp949 (Microsoft's extension of EUC-KR) gives all 11,172
    # syllables two bytes, and the KS X 1001 ones are exactly those with both bytes >= 0xA1.
    in_ks = {chr(c) for c in range(0xAC00, 0xD7A4) if min(chr(c).encode("cp949")) >= 0xA1}
    assert set(syllables) == in_ks
    assert syllables[:3] == ["가", "각", "간"] and "똠" not in in_ks and "힣" not in in_ks


def test_ks_x_1001_symbols_and_named_alphabets():
    symbols = ks_x_1001_symbols()
    assert len(symbols) == 985
    assert all(len(c.encode("euc_kr")) == 2 and 0xA1 <= c.encode("euc_kr")[0] <= 0xAF for c in symbols)
    assert not [c for c in symbols if c.isspace() or "\uac00" <= c <= "\ud7a3" or "\u4e00" <= c <= "\u9fff"]
    assert set("「」～①※·ㄱㅏＡα") <= set(symbols)
    both = named_initial_alphabet("ksx1001-hangul, ascii")
    assert both == sorted(set(ks_x_1001_hangul_syllables()) | {chr(c) for c in range(0x21, 0x7F)})
    assert named_initial_alphabet("") == []
    with pytest.raises(ValueError, match="unknown initial alphabet 'hangul'; use any of ksx1001-hangul"):
        named_initial_alphabet(["hangul"])


def test_vocab_size_too_small_for_alphabet_is_an_error():
    """The error names only settings the `vocab` command has (it once advised limit_alphabet,
    a Python argument; issue 17), with the size that would do."""
    with pytest.raises(ValueError, match="vocab_size=18 is too small") as error:
        train_wordpiece(HAND_COUNTS, 18)
    assert str(error.value).endswith("Raise vocab_size (`bert-jax vocab --vocab-size`) to at least 19.")  # 5 specials + 7 + 7
    with pytest.raises(ValueError, match=r"at least 25, or give fewer --initial-alphabet characters \(now 3\)\.$"):
        train_wordpiece(HAND_COUNTS, 18, initial_alphabet="xyz")


def test_words_with_whitespace_are_rejected():
    with pytest.raises(ValueError, match="whitespace"):
        train_wordpiece({"a b": 3}, 100)


def test_count_words_streams_and_matches_basic_tokenizer():
    lines = ["Hello, World!", "hello world", "Déjà vu -- déjà vu."]
    basic = BasicTokenizer(do_lower_case=True)
    counts = count_words(iter(lines), basic)  # An iterator: consumed once, lazily.
    assert counts == collections.Counter(w for line in lines for w in basic.tokenize(line))
    assert counts["hello"] == 2 and counts["deja"] == 2 and counts["-"] == 2 and counts[","] == 1


def test_held_out_statistics_exact():
    tokens = list(SPECIAL_TOKENS) + HAND_ALPHABET + HAND_MERGES
    stats = held_out_statistics(tokenizer_of(tokens), ["Hugs pugs", "bug xyz"])
    # hugs -> [hugs]; pugs -> [pug, ##s]; bug -> [b, ##ug]; xyz -> [UNK]: 4 words, 6 tokens.
    assert stats == {"unk_rate": 1 / 6, "tokens_per_word": 6 / 4, "num_texts": 2, "num_words": 4,
                     "num_tokens": 6, "num_unk_tokens": 1}


def test_training_is_fast(trained):
    # ~1.5 MB of text, 8k vocab: a fraction of a second with incremental updates; a full pair
    # recount per merge would take minutes.
    assert trained["seconds_8k"] < 20.0


@pytest.fixture(scope="module")
def vocab_file(docstring_corpus, tmp_path_factory):
    """The 8k uncased vocab trained through the file API, as vocab.txt."""
    directory = tmp_path_factory.mktemp("vocab")
    text = directory / "train.txt"
    text.write_text("\n".join(docstring_corpus[0]) + "\n", encoding="utf-8")
    path = directory / "vocab.txt"
    tokens = train_vocab_from_files([str(text)], str(path), 8000)
    return path, tokens


def test_file_api_writes_the_same_vocab(vocab_file, trained):
    path, tokens = vocab_file
    assert tokens == trained["8k"]
    assert list(load_vocab(path)) == tokens


def test_loads_in_transformers_and_covers_training_words(vocab_file, train_counts):
    transformers = pytest.importorskip("transformers")
    path, tokens = vocab_file
    hf = transformers.BertTokenizer(str(path))
    assert [hf.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    assert len(hf.get_vocab()) == 8000
    vocab = set(tokens)
    coverable = [w for w in train_counts
                 if len(w) <= vocabulary.MAX_INPUT_CHARS_PER_WORD and w[0] in vocab
                 and all("##" + c in vocab for c in w[1:])]
    assert len(coverable) > 0.99 * len(train_counts)
    # Words are already normalized, so re-tokenizing them joined by spaces gives back the same words.
    pieces = hf.tokenize(" ".join(coverable))
    assert "[UNK]" not in pieces
    assert len(pieces) >= len(coverable)


def test_held_out_unk_rate_and_tokens_per_word(vocab_file, trained, docstring_corpus):
    transformers = pytest.importorskip("transformers")
    path, _ = vocab_file
    held_out = docstring_corpus[1]
    hf_pieces = transformers.BertTokenizer(str(path)).tokenize("\n".join(held_out))
    assert hf_pieces.count("[UNK]") / len(hf_pieces) < 0.005
    stats_8k = held_out_statistics(tokenizer_of(trained["8k"]), held_out)
    stats_2k = held_out_statistics(tokenizer_of(trained["2k"]), held_out)
    assert stats_8k["unk_rate"] < 0.005
    assert stats_8k["num_words"] == stats_2k["num_words"] > 10_000
    assert stats_8k["tokens_per_word"] < stats_2k["tokens_per_word"] - 0.05
    assert 1.0 <= stats_8k["tokens_per_word"] < 1.3


def test_cased_vocab_keeps_capitals(docstring_corpus, tmp_path):
    transformers = pytest.importorskip("transformers")
    text = tmp_path / "train.txt"
    text.write_text("\n".join(docstring_corpus[0][:15000]) + "\n", encoding="utf-8")
    cased = train_vocab_from_files([str(text)], str(tmp_path / "cased.txt"), 3000,
                                   do_lower_case=False)
    uncased = train_vocab_from_files([str(text)], str(tmp_path / "uncased.txt"), 3000)
    assert len(cased) == len(uncased) == 3000
    assert not any(c.isupper() for token in uncased[5:] for c in token)
    assert {"T", "R", "##T", "Return", "return", "The", "the"} <= set(cased)
    hf = transformers.BertTokenizer(str(tmp_path / "cased.txt"), do_lower_case=False)
    sentence = "Return The VALUE of the Function."
    pieces = hf.tokenize(sentence)
    assert "[UNK]" not in pieces
    assert pieces[:2] == ["Return", "The"]
    assert " ".join(pieces).replace(" ##", "") == "Return The VALUE of the Function ."
    assert hf.convert_tokens_to_ids("Return") != hf.convert_tokens_to_ids("return")


def test_as_good_as_the_tokenizers_library(docstring_corpus, trained):
    tokenizers = pytest.importorskip("tokenizers")
    train, held_out = docstring_corpus
    reference = tokenizers.BertWordPieceTokenizer(lowercase=True)
    reference.train_from_iterator(train, vocab_size=8000, min_frequency=2, limit_alphabet=1000,
                                  show_progress=False)
    theirs = [reference.id_to_token(i) for i in range(reference.get_vocab_size())]
    ours_stats = held_out_statistics(tokenizer_of(trained["8k"]), held_out)
    theirs_stats = held_out_statistics(tokenizer_of(theirs), held_out)
    shared = len(set(trained["8k"]) & set(theirs))
    print(f"\nheld-out, 8k vocab: ours tokens/word {ours_stats['tokens_per_word']:.4f} unk "
          f"{ours_stats['unk_rate']:.5f}; tokenizers {theirs_stats['tokens_per_word']:.4f} unk "
          f"{theirs_stats['unk_rate']:.5f}; {shared} of {len(theirs)} tokens shared")
    assert ours_stats["tokens_per_word"] <= 1.05 * theirs_stats["tokens_per_word"]
    assert ours_stats["unk_rate"] <= theirs_stats["unk_rate"] + 0.001
    assert shared > 0.9 * len(theirs)


KOREAN_HELD_OUT = ("constitution.txt", "1809899.txt")


@pytest.fixture(scope="module")
def korean():
    """(training files, held-out lines): nine bills for training; the constitution (another
    genre: law, not bills) and the last bill held out."""
    spec = importlib.util.find_spec("konlpy")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("konlpy (the Korean test text) is not installed")
    root = Path(spec.submodule_search_locations[0]) / "data" / "corpus"
    files = sorted((root / "kobill").glob("*.txt")) + [root / "kolaw" / "constitution.txt"]
    train = [str(f) for f in files if f.name not in KOREAN_HELD_OUT]
    held_out = [line.strip() for f in files if f.name in KOREAN_HELD_OUT
                for line in f.read_text(encoding="utf-8").split("\n") if line.strip()]
    assert len(train) == 9 and len(held_out) > 500
    return train, held_out


@pytest.fixture(scope="module")
def korean_vocabs(korean, tmp_path_factory):
    """Cased 8k vocabs on the training bills, with and without the KS X 1001 syllables."""
    directory = tmp_path_factory.mktemp("korean")
    paths = {"syllables": directory / "syllables.txt", "plain": directory / "plain.txt"}
    start = time.perf_counter()
    tokens = {"syllables": train_vocab_from_files(korean[0], str(paths["syllables"]), 8000,
                                                  do_lower_case=False,
                                                  initial_alphabet=ks_x_1001_hangul_syllables())}
    seconds = time.perf_counter() - start
    tokens["plain"] = train_vocab_from_files(korean[0], str(paths["plain"]), 8000,
                                             do_lower_case=False)
    return tokens, paths, seconds


def _covered_tokens_per_word(ours, theirs, texts):
    """Tokens per word of both tokenizers over the words neither turns into [UNK]: a word that
    becomes one [UNK] would otherwise count as perfectly compressed."""
    words = [w for text in texts for w in ours.basic.tokenize(text)]
    splits = [(ours.wordpiece.tokenize_word(w), theirs.wordpiece.tokenize_word(w)) for w in words]
    both = [(a, b) for a, b in splits if "[UNK]" not in a and "[UNK]" not in b]
    assert len(both) > 0.9 * len(words)
    return sum(len(a) for a, _ in both) / len(both), sum(len(b) for _, b in both) / len(both)


def test_korean_held_out_unk_rate(korean, korean_vocabs):
    transformers = pytest.importorskip("transformers")
    tokens, paths, seconds = korean_vocabs
    assert seconds < 10
    vocab = tokens["syllables"]
    assert vocab[:5] == list(SPECIAL_TOKENS) and len(vocab) == len(set(vocab)) <= 8000
    syllables = ks_x_1001_hangul_syllables()
    assert set(syllables) <= set(vocab) and {"##" + s for s in syllables} <= set(vocab)
    held_out = korean[1]
    stats = held_out_statistics(tokenizer_of(vocab, do_lower_case=False), held_out)
    plain = held_out_statistics(tokenizer_of(tokens["plain"], do_lower_case=False), held_out)
    print(f"\nKorean held-out: unk {stats['unk_rate']:.5f} with the KS X 1001 syllables, "
          f"{plain['unk_rate']:.5f} without; tokens/word {stats['tokens_per_word']:.4f}, "
          f"{plain['tokens_per_word']:.4f}; vocab sizes {len(vocab)}, {len(tokens['plain'])}")
    assert stats["num_words"] > 7000
    assert stats["unk_rate"] < 0.005 < 0.01 < plain["unk_rate"]
    # transformers, reading the file, splits the held-out text into the same pieces.
    hf = transformers.BertTokenizer(str(paths["syllables"]), do_lower_case=False)
    ours = tokenizer_of(vocab, do_lower_case=False)
    assert [hf.tokenize(line) for line in held_out] == [ours.tokenize(line) for line in held_out]


def test_korean_as_good_as_the_tokenizers_library(korean, korean_vocabs):
    tokenizers = pytest.importorskip("tokenizers")
    train_paths, held_out = korean
    train_lines = [line.strip() for path in train_paths
                   for line in Path(path).read_text(encoding="utf-8").split("\n") if line.strip()]
    tokens, _, _ = korean_vocabs
    syllables = ks_x_1001_hangul_syllables()
    for name, initial in (("syllables", syllables), ("plain", [])):
        reference = tokenizers.BertWordPieceTokenizer(lowercase=False, strip_accents=False)
        # Their initial alphabet counts against limit_alphabet; ours comes on top of it.
        reference.train_from_iterator(train_lines, vocab_size=8000, min_frequency=2,
                                      limit_alphabet=1000 + len(initial), initial_alphabet=initial,
                                      show_progress=False)
        theirs = [reference.id_to_token(i) for i in range(reference.get_vocab_size())]
        ours_tokenizer = tokenizer_of(tokens[name], do_lower_case=False)
        theirs_tokenizer = tokenizer_of(theirs, do_lower_case=False)
        ours_stats = held_out_statistics(ours_tokenizer, held_out)
        theirs_stats = held_out_statistics(theirs_tokenizer, held_out)
        ours_tpw, theirs_tpw = _covered_tokens_per_word(ours_tokenizer, theirs_tokenizer, held_out)
        print(f"\nKorean held-out, {name}: ours unk {ours_stats['unk_rate']:.5f} tokens/word "
              f"{ours_stats['tokens_per_word']:.4f} ({ours_tpw:.4f} on words both cover), "
              f"{len(tokens[name])} tokens; tokenizers unk {theirs_stats['unk_rate']:.5f} "
              f"tokens/word {theirs_stats['tokens_per_word']:.4f} ({theirs_tpw:.4f}), "
              f"{len(theirs)} tokens")
        assert ours_stats["unk_rate"] <= theirs_stats["unk_rate"] + 0.001
        assert ours_tpw <= 1.05 * theirs_tpw


def test_korean_refuses_accent_stripping(korean, tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    train_paths, _ = korean
    output = tmp_path / "vocab.txt"
    with pytest.raises(ValueError, match=r"9\d% of the words are Hangul.*jamo.*do_lower_case=False"):
        train_vocab_from_files(train_paths, str(output), 8000)
    assert not output.exists()
    # Why: BERT's uncased normalization (here `tokenizers`') decomposes each syllable into jamo.
    normalizer = tokenizers.normalizers.BertNormalizer(lowercase=True)
    assert normalizer.normalize_str("대한민국") == (
        "\u1103\u1162\u1112\u1161\u11ab\u1106\u1175\u11ab\u1100\u116e\u11a8")
    # Lower-casing without stripping accents keeps the syllables.
    tokens = train_vocab_from_files(train_paths, str(output), 8000, do_lower_case=True,
                                    strip_accents=False)
    assert len([t for t in tokens if any("\uac00" <= c <= "\ud7a3" for c in t)]) > 2000
    assert not [t for t in tokens if any("\u1100" <= c <= "\u11ff" for c in t)]


def test_accent_stripping_refused_early(korean, tmp_path):
    # 10,000 Korean lines are enough to refuse: the invalid file after them is never read.
    lines = [line + "\n" for line in Path(korean[0][0]).read_text(encoding="utf-8").split("\n")
             if line.strip()]
    big = tmp_path / "big.txt"
    big.write_text("".join(lines * (10_000 // len(lines) + 1)), encoding="utf-8")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\n")
    with pytest.raises(ValueError, match="the first 10000 lines .* are Hangul"):
        train_vocab_from_files([str(big), str(bad)], str(tmp_path / "vocab.txt"), 8000)


def test_hangul_word_share_exact():
    # "대한민국" x3 and its decomposed jamo spelling x1 are Hangul, "abc" x1 Latin, "123" neither.
    counts = {"대한민국": 3, "\u1103\u1162\u1112\u1161\u11ab": 1, "abc": 1, "123": 5}
    assert hangul_word_share(counts) == 4 / 5
    assert hangul_word_share({"123": 1}) == 0.0


def test_trains_from_any_kind_of_input(docstring_corpus, tmp_path):
    lines = docstring_corpus[0][:15_000]
    plain = tmp_path / "plain.txt"
    plain.write_text("\n".join(lines) + "\n", encoding="utf-8")
    expected = train_vocab_from_files([str(plain)], str(tmp_path / "expected.txt"), 2000)
    # The same lines as a gzipped text file and two JSON Lines files (documents of 50 lines),
    # read from a directory, and through a glob.
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    with gzip.open(mixed / "a.txt.gz", "wt", encoding="utf-8") as f:
        f.write("\n\n".join(lines[:5000]) + "\n")
    for name, part in (("b.jsonl", lines[5000:10_000]), ("c.jsonl.gz", lines[10_000:])):
        records = "".join(json.dumps({"text": "\n".join(part[i:i + 50])}) + "\n"
                          for i in range(0, len(part), 50))
        data = records.encode("utf-8")
        (mixed / name).write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    assert train_vocab_from_files([str(mixed)], str(tmp_path / "dir.txt"), 2000) == expected
    assert train_vocab_from_files([str(mixed / "*.*")], str(tmp_path / "glob.txt"), 2000) == expected


def test_trains_from_tfds(korean, tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    import tensorflow as tf

    # The training bills as wiki40b articles (markers, a title to drop, paragraphs).
    texts = [Path(path).read_text(encoding="utf-8") for path in korean[0]]
    articles = ["\n_START_ARTICLE_\n제목\n_START_PARAGRAPH_\n"
                + "_NEWLINE_".join(line.strip() for line in text.split("\n") if line.strip())
                for text in texts]

    def as_dataset(self, split, **kwargs):
        return tf.data.Dataset.from_tensor_slices({"text": articles})

    initial = ks_x_1001_hangul_syllables()
    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
        from_tfds = train_vocab_from_files(["tfds:wiki40b/ko"], str(tmp_path / "tfds.txt"), 8000,
                                           do_lower_case=False, initial_alphabet=initial)
    from_files = train_vocab_from_files(korean[0], str(tmp_path / "files.txt"), 8000,
                                        do_lower_case=False, initial_alphabet=initial)
    assert from_tfds == from_files


def test_missing_file_is_named(tmp_path):
    missing = tmp_path / "nope.txt"
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        train_vocab_from_files([str(missing)], str(tmp_path / "vocab.txt"), 100)
    assert not (tmp_path / "vocab.txt").exists()


def test_invalid_utf8_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"hello world\nsecond line\nthird \xff\xfe line\n")
    with pytest.raises(ValueError, match=r"bad\.txt:3: invalid UTF-8"):
        train_vocab_from_files([str(bad)], str(tmp_path / "vocab.txt"), 100)
    assert not (tmp_path / "vocab.txt").exists()


def test_multiple_files_are_counted_together(tmp_path):
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("hug hug hug hug hug hug hug hug hug hug pug pug pug pug pug\n", encoding="utf-8")
    second.write_text(" ".join(["pun"] * 12 + ["bun"] * 4 + ["hugs"] * 5) + "\n", encoding="utf-8")
    tokens = train_vocab_from_files([str(first), str(second)], str(tmp_path / "vocab.txt"), 100)
    assert tokens == list(SPECIAL_TOKENS) + HAND_ALPHABET + HAND_MERGES
    assert (tmp_path / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1] == tokens
