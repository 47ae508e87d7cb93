"""Tests for the WordPiece vocabulary trainer (`input_pipeline/vocabulary.py`).

Real text comes from the Python standard library's docstrings, read with `ast` (never imported),
with a few modules held out by name, so nothing is downloaded and the corpus is the same offline.
"""

from __future__ import annotations

import ast
import collections
import json
import os
import random
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

from input_pipeline import vocabulary
from input_pipeline.tokenization import SPECIAL_TOKENS, BasicTokenizer, BertTokenizer, load_vocab
from input_pipeline.vocabulary import (count_words, held_out_statistics, train_vocab_from_files,
                                       train_wordpiece)

REPO_ROOT = Path(__file__).resolve().parents[1]

# Modules (top-level module or package names) whose docstrings are kept out of training.
HELD_OUT_MODULES = frozenset({"argparse", "difflib", "fractions", "json", "http", "textwrap", "ftplib"})
_SKIPPED_DIRS = frozenset({"test", "tests", "idle_test", "idlelib", "site-packages", "__pycache__"})


def _stdlib_docstring_lines() -> tuple[list[str], list[str]]:
    """(training lines, held-out lines): the non-blank lines of the stdlib's docstrings."""
    root = Path(sysconfig.get_paths()["stdlib"])
    train, held_out = [], []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts
        if _SKIPPED_DIRS.intersection(parts[:-1]):
            continue
        try:
            tree = ast.parse(path.read_bytes())
        except (SyntaxError, ValueError):
            continue  # A few files are deliberately invalid.
        out = held_out if parts[0].removesuffix(".py") in HELD_OUT_MODULES else train
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    out.extend(line for line in doc.splitlines() if line.strip())
    return train, held_out


@pytest.fixture(scope="module")
def corpus():
    train, held_out = _stdlib_docstring_lines()
    assert sum(map(len, train)) > 1_000_000 and sum(map(len, held_out)) > 50_000
    return train, held_out


@pytest.fixture(scope="module")
def train_counts(corpus):
    return count_words(corpus[0], BasicTokenizer(do_lower_case=True))


@pytest.fixture(scope="module")
def trained(train_counts):
    """8k and 2k uncased vocabs on the training docstrings, with the 8k training time."""
    start = time.perf_counter()
    vocab_8k = train_wordpiece(train_counts, 8000)
    seconds = time.perf_counter() - start
    return {"8k": vocab_8k, "2k": train_wordpiece(train_counts, 2000), "seconds_8k": seconds}


def _tokenizer(tokens, **kwargs) -> BertTokenizer:
    return BertTokenizer({token: i for i, token in enumerate(tokens)}, **kwargs)


# --- Exact arithmetic on a hand-made table. ---------------------------------------------------------

# The worked example (min_frequency=2):
#   words: hug x10, pug x5, pun x12, bun x4, hugs x5.
#   alphabet: word-initial b h p (ids 5 6 7), word-internal ##g ##n ##s ##u (ids 8 9 10 11).
#   pair counts: (##u,##g) 10+5+5=20, (p,##u) 5+12=17, (##u,##n) 12+4=16, (h,##u) 10+5=15,
#                (##g,##s) 5, (b,##u) 4.
#   1. (##u,##g)=20 -> "##ug" (12). Now hug=h ##ug, pug=p ##ug, hugs=h ##ug ##s; (h,##ug)=15,
#      (p,##ug)=5, (##ug,##s)=5, (p,##u)=12 (pun only), (##u,##n)=16, (b,##u)=4.
#   2. (##u,##n)=16 -> "##un" (13). pun=p ##un, bun=b ##un; (p,##un)=12, (b,##un)=4.
#   3. (h,##ug)=15 -> "hug" (14). hugs=hug ##s; (hug,##s)=5.
#   4. (p,##un)=12 -> "pun" (15).
#   5. tie at 5 between (p,##ug) = ids (7,12) and (hug,##s) = ids (14,10): lowest ids win -> "pug" (16).
#   6. (hug,##s)=5 -> "hugs" (17).
#   7. (b,##un)=4 -> "bun" (18). Every word is now one piece: nothing left to merge, 19 tokens.
HAND_COUNTS = {"hug": 10, "pug": 5, "pun": 12, "bun": 4, "hugs": 5}
HAND_ALPHABET = ["b", "h", "p", "##g", "##n", "##s", "##u"]
HAND_MERGES = ["##ug", "##un", "hug", "pun", "pug", "hugs", "bun"]


def test_hand_worked_merges():
    expected = list(SPECIAL_TOKENS) + HAND_ALPHABET + HAND_MERGES
    # More room than there is to merge: the vocab stops short, at 19.
    assert train_wordpiece(HAND_COUNTS, 100) == expected
    # Exact size: cut after the 5th merge (the tie-break one).
    assert train_wordpiece(HAND_COUNTS, 17) == expected[:17]
    # min_frequency stops merging at the first pair below it: bun (4) is not learned at 5, and
    # only the merges with counts 20, 16, 15 and 12 are at 6.
    assert train_wordpiece(HAND_COUNTS, 100, min_frequency=5) == expected[:-1]
    assert train_wordpiece(HAND_COUNTS, 100, min_frequency=6) == expected[:-3]
    # Exactly the alphabet: no merges at all.
    assert train_wordpiece(HAND_COUNTS, 12) == expected[:12]


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
    assert tokens[5:] == ["a", "b", "##a", "##b", "##y", "ab", "aby", "ba"]


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
    initial = sorted({w[0] for w in word_counts})
    inner = sorted({c for w in word_counts for c in w[1:]})
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


def test_vocab_size_too_small_for_alphabet_is_an_error():
    with pytest.raises(ValueError, match="vocab_size=11 is too small"):
        train_wordpiece(HAND_COUNTS, 11)


def test_words_with_whitespace_are_rejected():
    with pytest.raises(ValueError, match="whitespace"):
        train_wordpiece({"a b": 3}, 100)


# --- count_words and held_out_statistics. ----------------------------------------------------------

def test_count_words_streams_and_matches_basic_tokenizer():
    lines = ["Hello, World!", "hello world", "Déjà vu -- déjà vu."]
    basic = BasicTokenizer(do_lower_case=True)
    counts = count_words(iter(lines), basic)  # An iterator: consumed once, lazily.
    assert counts == collections.Counter(w for line in lines for w in basic.tokenize(line))
    assert counts["hello"] == 2 and counts["deja"] == 2 and counts["-"] == 2 and counts[","] == 1


def test_held_out_statistics_exact():
    tokens = list(SPECIAL_TOKENS) + HAND_ALPHABET + HAND_MERGES
    stats = held_out_statistics(_tokenizer(tokens), ["Hugs pugs", "bug xyz"])
    # hugs -> [hugs]; pugs -> [pug, ##s]; bug -> [b, ##ug]; xyz -> [UNK]: 4 words, 6 tokens.
    assert stats == {"unk_rate": 1 / 6, "tokens_per_word": 6 / 4, "num_texts": 2, "num_words": 4,
                     "num_tokens": 6, "num_unk_tokens": 1}


# --- Real text. ------------------------------------------------------------------------------------

def test_layout_size_uniqueness(trained):
    for name, size in (("8k", 8000), ("2k", 2000)):
        tokens = trained[name]
        assert len(tokens) == size
        assert len(set(tokens)) == size
        assert tokens[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        assert all(token and not any(c.isspace() for c in token) for token in tokens)
    # The 2k vocab is the 8k one truncated: learning order is kept.
    assert trained["8k"][:2000] == trained["2k"]


def test_training_is_fast(trained):
    # ~1.5 MB of text, 8k vocab: a fraction of a second with incremental updates; a full pair
    # recount per merge would take minutes.
    assert trained["seconds_8k"] < 20.0


def test_deterministic_across_dict_order_and_hash_seeds(train_counts, trained, tmp_path):
    reordered = dict(reversed(list(train_counts.items())))
    assert train_wordpiece(reordered, 8000) == trained["8k"]
    counts_file = tmp_path / "counts.json"
    counts_file.write_text(json.dumps(dict(train_counts)), encoding="utf-8")
    script = ("import json, sys\n"
              "from input_pipeline.vocabulary import train_wordpiece\n"
              "counts = json.load(open(sys.argv[1], encoding='utf-8'))\n"
              "json.dump(train_wordpiece(counts, 8000), open(sys.argv[2], 'w', encoding='utf-8'))\n")
    for seed in ("1", "12345"):
        out = tmp_path / f"vocab-{seed}.json"
        env = dict(os.environ, PYTHONHASHSEED=seed,
                   PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
        subprocess.run([sys.executable, "-c", script, str(counts_file), str(out)], check=True,
                       cwd=REPO_ROOT, env=env, timeout=120)
        assert json.loads(out.read_text(encoding="utf-8")) == trained["8k"]


@pytest.fixture(scope="module")
def vocab_file(corpus, tmp_path_factory):
    """The 8k uncased vocab trained through the file API, as vocab.txt."""
    directory = tmp_path_factory.mktemp("vocab")
    text = directory / "train.txt"
    text.write_text("\n".join(corpus[0]) + "\n", encoding="utf-8")
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


def test_held_out_unk_rate_and_tokens_per_word(vocab_file, trained, corpus):
    transformers = pytest.importorskip("transformers")
    path, _ = vocab_file
    held_out = corpus[1]
    hf_pieces = transformers.BertTokenizer(str(path)).tokenize("\n".join(held_out))
    assert hf_pieces.count("[UNK]") / len(hf_pieces) < 0.005
    stats_8k = held_out_statistics(_tokenizer(trained["8k"]), held_out)
    stats_2k = held_out_statistics(_tokenizer(trained["2k"]), held_out)
    assert stats_8k["unk_rate"] < 0.005
    assert stats_8k["num_words"] == stats_2k["num_words"] > 10_000
    assert stats_8k["tokens_per_word"] < stats_2k["tokens_per_word"] - 0.05
    assert 1.0 <= stats_8k["tokens_per_word"] < 1.3


def test_cased_vocab_keeps_capitals(corpus, tmp_path):
    transformers = pytest.importorskip("transformers")
    text = tmp_path / "train.txt"
    text.write_text("\n".join(corpus[0][:15000]) + "\n", encoding="utf-8")
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


def test_as_good_as_the_tokenizers_library(corpus, trained):
    tokenizers = pytest.importorskip("tokenizers")
    train, held_out = corpus
    reference = tokenizers.BertWordPieceTokenizer(lowercase=True)
    reference.train_from_iterator(train, vocab_size=8000, min_frequency=2, limit_alphabet=1000,
                                  show_progress=False)
    theirs = [reference.id_to_token(i) for i in range(reference.get_vocab_size())]
    ours_stats = held_out_statistics(_tokenizer(trained["8k"]), held_out)
    theirs_stats = held_out_statistics(_tokenizer(theirs), held_out)
    shared = len(set(trained["8k"]) & set(theirs))
    print(f"\nheld-out, 8k vocab: ours tokens/word {ours_stats['tokens_per_word']:.4f} unk "
          f"{ours_stats['unk_rate']:.5f}; tokenizers {theirs_stats['tokens_per_word']:.4f} unk "
          f"{theirs_stats['unk_rate']:.5f}; {shared} of {len(theirs)} tokens shared")
    assert ours_stats["tokens_per_word"] <= 1.05 * theirs_stats["tokens_per_word"]
    assert ours_stats["unk_rate"] <= theirs_stats["unk_rate"] + 0.001
    assert shared > 0.9 * len(theirs)


# --- File handling. --------------------------------------------------------------------------------

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
