"""Masked-LM masking (`input_pipeline.masking.mask_tokens`), checked statistically over many
thousands of real sequences (standard-library docstrings tokenized with the real uncased vocab,
laid out as `[CLS] A [SEP] B [SEP]` plus padding) and exactly on crafted ones.

Every rate is checked against its binomial standard error, with a 4-sigma tolerance (a false
alarm about once in 16,000 runs; the seeds are fixed, so in practice never), which is still tight
enough to catch a rate off by a couple of percentage points.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from conftest import assert_rate, stdlib_docstring_lines

from input_pipeline.masking import MaskingConfig, mask_tokens
from input_pipeline.tokenization import SPECIAL_TOKENS, BertTokenizer

MAX_SEQ_LENGTH = 128
@pytest.fixture(scope="module")
def tokenizer(uncased_vocab_path) -> BertTokenizer:
    return BertTokenizer.from_vocab_file(uncased_vocab_path)


@pytest.fixture(scope="module")
def sequences(tokenizer) -> list[list[int]]:
    """8,000 `[CLS] A [SEP] B [SEP] [PAD]...` sequences of real text (consecutive spans of the
    tokenized docstrings), of every length up to MAX_SEQ_LENGTH, 30% of them padded to it."""
    lines = (tokenizer.encode(line) for line in stdlib_docstring_lines(12_000))
    stream = [t for ids in lines for t in ids]
    rng = random.Random(1)
    out = []
    start = 0
    for _ in range(8_000):
        length = rng.randint(2, MAX_SEQ_LENGTH - 3)
        if start + length > len(stream):
            start = 0
        a_length = rng.randint(1, length - 1)
        a, b = stream[start:start + a_length], stream[start + a_length:start + length]
        start += length
        seq = [tokenizer.cls_id, *a, tokenizer.sep_id, *b, tokenizer.sep_id]
        if rng.random() < 0.3:
            seq += [tokenizer.pad_id] * (MAX_SEQ_LENGTH - len(seq))
        out.append(seq)
    return out


def make_config(tokenizer: BertTokenizer, **kwargs) -> MaskingConfig:
    return MaskingConfig.from_vocab(tokenizer.vocab, SPECIAL_TOKENS, **kwargs)


def mask_all(sequences, config, seed=0):
    rng = random.Random(seed)
    return [mask_tokens(seq, config, rng) for seq in sequences]


@pytest.fixture(scope="module")
def masked(sequences, tokenizer):
    """The sequences masked with the default settings, one seeded stream."""
    return mask_all(sequences, make_config(tokenizer), seed=0)


def words_of(tokens, config: MaskingConfig) -> list[list[int]]:
    """The positions of each word: a non-special token and the `##` pieces right after it. A `##`
    piece right after a special token (or first) is a word by itself."""
    words: list[list[int]] = []
    previous_special = True
    for i, token in enumerate(tokens):
        if token in config.never_mask_ids:
            previous_special = True
            continue
        if config.is_continuation[token] and not previous_special:
            words[-1].append(i)
        else:
            words.append([i])
        previous_special = False
    return words


def test_number_of_predictions_is_15_percent_of_non_special_tokens(sequences, masked, tokenizer):
    config = make_config(tokenizer)
    special = {tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id}
    floor_one = padded = 0
    for seq, out in zip(sequences, masked):
        n = sum(t not in special for t in seq)
        expected = min(config.max_predictions_per_seq, max(1, round(0.15 * n)))
        assert len(out.masked_lm_positions) == expected, (n, len(seq), out.masked_lm_positions)
        floor_one += round(0.15 * n) == 0
        padded += seq[-1] == tokenizer.pad_id and round(0.15 * n) != round(0.15 * len(seq))
    # The sample covers the floor of one prediction, and padding that must not count (the cap
    # is reached in the next test: 15% of 125 tokens is under the default cap of 20).
    assert floor_one > 10 and padded > 1_000, (floor_one, padded)


def test_budget_follows_the_settings(sequences, tokenizer):
    config = make_config(tokenizer, masked_lm_prob=0.3, max_predictions_per_seq=7)
    capped = 0
    for seq, out in zip(sequences[:1000], mask_all(sequences[:1000], config, seed=3)):
        n = sum(t not in config.never_mask_ids for t in seq)
        assert len(out.masked_lm_positions) == min(7, max(1, round(0.3 * n)))
        capped += round(0.3 * n) > 7
    assert capped > 500


def test_positions_sorted_unique_labels_original_rest_unchanged(sequences, masked, tokenizer):
    never = {tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id}
    for seq, out in zip(sequences, masked):
        positions = out.masked_lm_positions
        assert all(a < b for a, b in zip(positions, positions[1:])), positions
        assert all(0 <= p < len(seq) for p in positions)
        assert not any(seq[p] in never for p in positions), "[CLS]/[SEP]/[PAD] chosen"
        assert out.masked_lm_ids == [seq[p] for p in positions]
        assert len(out.input_ids) == len(seq)
        chosen = set(positions)
        assert all(out.input_ids[i] == seq[i] for i in range(len(seq)) if i not in chosen)
        # Special tokens stay where they were.
        assert [i for i, t in enumerate(out.input_ids) if t in never] == \
            [i for i, t in enumerate(seq) if t in never]


def test_all_special_or_tiny_sequences(tokenizer):
    config = make_config(tokenizer)
    cls, sep, pad = tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id
    out = mask_tokens([cls, sep, sep, pad, pad], config, random.Random(0))
    assert out.masked_lm_positions == [] and out.input_ids == [cls, sep, sep, pad, pad]
    word = tokenizer.encode("python")[0]
    for seed in range(50):  # One candidate: the budget of at least one prediction takes it.
        out = mask_tokens([cls, word, sep, sep, pad], config, random.Random(seed))
        assert out.masked_lm_positions == [1] and out.masked_lm_ids == [word]


def classify(seq, out, mask_id):
    """Counts of [MASK], kept and random-token corruptions over the chosen positions."""
    n_mask = n_keep = 0
    randoms = []
    for p, label in zip(out.masked_lm_positions, out.masked_lm_ids):
        new = out.input_ids[p]
        if new == mask_id:
            n_mask += 1
        elif new == label:
            n_keep += 1
        else:
            randoms.append(new)
    return n_mask, n_keep, randoms


def test_80_10_10_corruption(sequences, masked, tokenizer):
    config = make_config(tokenizer)
    assert not any(tokenizer.mask_id in seq for seq in sequences)  # so [MASK] means "masked"
    n_mask = n_keep = total = 0
    randoms: list[int] = []
    for seq, out in zip(sequences, masked):
        m, k, r = classify(seq, out, tokenizer.mask_id)
        n_mask, n_keep, total = n_mask + m, n_keep + k, total + len(out.masked_lm_positions)
        randoms += r
    assert total > 50_000
    # A random token equal to the original looks "kept": a 1 in 30,517 chance.
    p_same = 1 / len(config.random_token_ids)
    assert_rate(n_mask, total, 0.8, "[MASK] fraction")
    assert_rate(n_keep, total, 0.1 + 0.1 * p_same, "unchanged fraction")
    assert_rate(len(randoms), total, 0.1 * (1 - p_same), "random-token fraction")


def test_random_replacements_spread_over_the_vocab(sequences, masked, tokenizer):
    config = make_config(tokenizer)
    randoms = np.array([r for seq, out in zip(sequences, masked)
                        for r in classify(seq, out, tokenizer.mask_id)[2]])
    allowed = config.random_token_ids
    assert len(allowed) == tokenizer.vocab_size - len(SPECIAL_TOKENS)
    assert not set(randoms.tolist()) & set(tokenizer.special_ids)
    assert np.isin(randoms, allowed).all()
    # Uniform over the allowed ids: each tenth of them (by rank) gets a tenth of the draws.
    ranks = np.searchsorted(allowed, randoms)
    counts = np.bincount(ranks * 10 // len(allowed), minlength=10)
    for decile, count in enumerate(counts):
        assert_rate(int(count), len(randoms), 0.1, f"random tokens in decile {decile} of the vocab")
    # Nearly as many distinct ids as uniform draws would give (not a few favourites).
    n, v = len(randoms), len(allowed)
    expected_distinct = v * (1 - (1 - 1 / v) ** n)
    assert len(set(randoms.tolist())) > 0.95 * expected_distinct


def test_random_replacements_never_special_small_vocab():
    """A 40-token vocab where special tokens are an eighth of it: a draw over the whole vocab
    would hit one within a few dozen draws."""
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(35)]
    vocab = {t: i for i, t in enumerate(tokens)}
    config = MaskingConfig.from_vocab(vocab, SPECIAL_TOKENS, masked_lm_prob=0.5,
                                      max_predictions_per_seq=60)
    rng = random.Random(7)
    seen = []
    for _ in range(2_000):
        seq = [2] + [rng.randrange(5, 40) for _ in range(100)] + [3]
        out = mask_tokens(seq, config, rng)
        seen += [out.input_ids[p] for p in out.masked_lm_positions
                 if out.input_ids[p] not in (4, seq[p])]
    assert len(seen) > 8_000
    assert min(seen) >= 5, "a special token was used as a random replacement"
    counts = np.bincount(seen, minlength=40)[5:]
    for count in counts:  # every ordinary token is drawn, about equally often
        assert_rate(int(count), len(seen), 1 / 35, "one token's share of random replacements")


def test_whole_word_masking(sequences, tokenizer):
    config = make_config(tokenizer, whole_word_masking=True)
    outs = mask_all(sequences, config, seed=5)
    multi_piece_chosen = under_budget = 0
    n_mask = total = 0
    for seq, out in zip(sequences, outs):
        n = sum(t not in config.never_mask_ids for t in seq)
        budget = min(config.max_predictions_per_seq, max(1, round(0.15 * n)))
        chosen = set(out.masked_lm_positions)
        assert len(chosen) <= budget
        unchosen_lengths = []
        for word in words_of(seq, config):
            hits = sum(p in chosen for p in word)
            assert hits in (0, len(word)), f"word {word} partly chosen: {sorted(chosen)}"
            if hits:
                multi_piece_chosen += len(word) > 1
            else:
                unchosen_lengths.append(len(word))
        # The shuffled words are taken greedily, skipping a word only if it would overshoot the
        # budget; so the budget is met exactly unless every word left out is too long to fit.
        if len(chosen) < budget:
            under_budget += 1
            assert all(length > budget - len(chosen) for length in unchosen_lengths)
        assert out.masked_lm_ids == [seq[p] for p in out.masked_lm_positions]
        assert all(a < b for a, b in zip(out.masked_lm_positions, out.masked_lm_positions[1:]))
        n_mask += sum(out.input_ids[p] == tokenizer.mask_id for p in out.masked_lm_positions)
        total += len(chosen)
    assert multi_piece_chosen > 1_000 and under_budget >= 1, (multi_piece_chosen, under_budget)
    assert_rate(n_mask, total, 0.8, "[MASK] fraction with whole-word masking")


def test_without_whole_word_masking_pieces_are_independent(sequences, masked, tokenizer):
    """The data does exercise whole-word masking: token-level masking splits words often."""
    config = make_config(tokenizer)
    split_words = 0
    for seq, out in zip(sequences, masked):
        chosen = set(out.masked_lm_positions)
        split_words += sum(0 < sum(p in chosen for p in w) < len(w) for w in words_of(seq, config))
    assert split_words > 500


def test_whole_word_masking_does_not_join_across_special_tokens(tokenizer):
    config = make_config(tokenizer, whole_word_masking=True, masked_lm_prob=0.5)
    v = tokenizer.vocab
    cls, sep = tokenizer.cls_id, tokenizer.sep_id
    # [CLS] ##ing play ##ing [SEP] ##s [SEP]: words {1}, {2, 3}, {5}.
    seq = [cls, v["##ing"], v["play"], v["##ing"], sep, v["##s"], sep]
    seen = set()
    for seed in range(200):
        positions = tuple(mask_tokens(seq, config, random.Random(seed)).masked_lm_positions)
        assert (2 in positions) == (3 in positions)
        seen.add(positions)
    # Budget round(0.5 * 4) = 2: {2, 3} alone, or the two one-piece words {1, 5} together.
    assert seen == {(2, 3), (1, 5)}, seen


def test_whole_word_masking_skips_words_that_overshoot(tokenizer):
    """Ten two-piece words: a budget of round(0.15 * 20) = 3 takes one word (two pieces), since a
    second word would overshoot and no word is cut."""
    config = make_config(tokenizer, whole_word_masking=True)
    v = tokenizer.vocab
    words = ["play", "walk", "talk", "jump", "read", "work", "look", "help", "call", "turn"]
    seq = [tokenizer.cls_id] + [t for w in words for t in (v[w], v["##ing"])] + [tokenizer.sep_id]
    heads = set()
    for seed in range(100):
        positions = mask_tokens(seq, config, random.Random(seed)).masked_lm_positions
        assert len(positions) == 2 and positions[1] == positions[0] + 1 and positions[0] % 2 == 1
        heads.add(positions[0])
    assert len(heads) == 10  # every word can be the one


def test_deterministic_for_a_seed_and_different_across_seeds(sequences, masked, tokenizer):
    config = make_config(tokenizer)
    again = mask_all(sequences, config, seed=0)
    assert again == masked
    other = mask_all(sequences, config, seed=1)
    long_enough = [i for i, seq in enumerate(sequences) if len(seq) >= 40]
    differ = sum(other[i].masked_lm_positions != masked[i].masked_lm_positions for i in long_enough)
    assert differ > 0.95 * len(long_enough)
    differ_ids = sum(other[i].input_ids != masked[i].input_ids for i in long_enough)
    assert differ_ids > 0.95 * len(long_enough)
