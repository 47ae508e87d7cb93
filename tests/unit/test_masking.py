"""Masked-LM masking, checked statistically over many thousands of real sequences (standard-library
docstrings tokenized with the real uncased vocab, laid out as `[CLS] A [SEP] B [SEP]` plus
padding) and exactly on crafted ones: the per-instance reference `mask_tokens`, the block
version `mask_batch` against it and against the original algorithm's exact distribution
(enumerated with fractions), and the counter-based uniforms that dynamic masking draws from.

Every rate is checked against its binomial standard error, with a 4-sigma tolerance (a false
alarm about once in 16,000 runs; the seeds are fixed, so in practice never), which is still tight
enough to catch a rate off by a couple of percentage points.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import math
import random
from fractions import Fraction

import numpy as np
import pytest
from conftest import SIGMAS, assert_rate, stdlib_docstring_lines

from input_pipeline.instances import counter_random
from input_pipeline.instances.counter_random import hashed_uniforms, hashed_words
from input_pipeline.instances.masking import (
    ACTION_STREAM,
    ORDER_STREAM,
    TOKEN_STREAM,
    MaskedBatch,
    MaskingConfig,
    mask_batch,
    mask_batch_hashed,
    mask_batch_with_rng,
    mask_tokens,
    prediction_budget,
)
from input_pipeline.tokenizers.wordpiece import SPECIAL_TOKENS, BertTokenizer

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


# --- mask_batch: blocks of instances in numpy. -------------------------------------------------

def as_block(sequences, length=MAX_SEQ_LENGTH) -> np.ndarray:
    """Sequences as an [N, length] int32 block, padded with 0 ([PAD] in the uncased vocab)."""
    block = np.zeros((len(sequences), length), dtype=np.int32)
    for i, seq in enumerate(sequences):
        block[i, :len(seq)] = seq
    return block


FIELDS = [field.name for field in dataclasses.fields(MaskedBatch)]


def keys(n, start=0) -> np.ndarray:
    return np.arange(start, start + n, dtype=np.uint64)


@pytest.fixture(scope="module")
def block(sequences) -> np.ndarray:
    return as_block(sequences)


@pytest.fixture(scope="module")
def batch(block, tokenizer) -> MaskedBatch:
    """The block masked with the default settings and hashed uniforms (dynamic masking)."""
    return mask_batch_hashed(block, make_config(tokenizer), seed=0, epoch=0,
                             example_keys=keys(len(block)))


def chosen_mask(out: MaskedBatch, length: int) -> np.ndarray:
    """[N, L] bool: the positions chosen for prediction."""
    chosen = np.zeros((len(out.num_predictions), length), dtype=bool)
    real = out.masked_lm_weights > 0
    chosen[np.nonzero(real)[0], out.masked_lm_positions[real]] = True
    return chosen


def check_well_formed(ids: np.ndarray, out: MaskedBatch, config: MaskingConfig) -> None:
    """What every masked block must satisfy, whatever the randomness."""
    n, length = ids.shape
    p = config.max_predictions_per_seq
    assert out.input_ids.shape == ids.shape and out.input_ids.dtype == ids.dtype
    for array in (out.masked_lm_positions, out.masked_lm_ids, out.masked_lm_weights):
        assert array.shape == (n, p)
    assert out.masked_lm_positions.dtype == out.masked_lm_ids.dtype == np.int32
    assert out.masked_lm_weights.dtype == np.float32 and out.num_predictions.shape == (n,)
    k = out.num_predictions
    real = np.arange(p) < k[:, None]
    # Weights 1.0 for the first k slots, and padding that is all zeros.
    assert np.array_equal(out.masked_lm_weights, real.astype(np.float32))
    assert not out.masked_lm_positions[~real].any() and not out.masked_lm_ids[~real].any()
    # Positions strictly ascending within a row, in range.
    positions = out.masked_lm_positions
    assert (positions[:, 1:] > positions[:, :-1])[real[:, 1:]].all()
    assert ((positions >= 0) & (positions < length)).all()
    # Labels are the original ids, never special.
    rows = np.nonzero(real)[0]
    labels = out.masked_lm_ids[real]
    assert np.array_equal(labels, ids[rows, positions[real]])
    assert not np.isin(labels, list(config.never_mask_ids)).any(), "[CLS]/[SEP]/[PAD] chosen"
    # Nothing but the chosen positions changes.
    chosen = chosen_mask(out, length)
    assert np.array_equal(out.input_ids[~chosen], ids[~chosen])
    # A chosen token is [MASK], itself, or an allowed random token.
    new = out.input_ids[chosen]
    allowed = (new == config.mask_id) | (new == ids[chosen]) | np.isin(new, config.random_token_ids)
    assert allowed.all()


def test_budget_rounds_as_python(tokenizer):
    """numpy's rint is Python's round (half to even) on the very same products."""
    n = np.arange(4000)
    for prob in (0.15, 0.1, 0.2, 0.25, 0.3, 0.35, 0.45, 0.5, 0.05, 0.125):
        config = make_config(tokenizer, masked_lm_prob=prob, max_predictions_per_seq=10_000)
        expected = [max(1, round(k * prob)) for k in n.tolist()]
        assert prediction_budget(n, config).tolist() == expected, prob
    # The sample does hold exact halves, where half-to-even matters: 0.5 * 5 = 2.5 -> 2.
    assert round(5 * 0.5) == 2 and round(7 * 0.5) == 4


@pytest.mark.parametrize("settings", [{}, {"masked_lm_prob": 0.3, "max_predictions_per_seq": 7}])
def test_batch_predicts_exactly_as_many_as_mask_tokens(sequences, block, tokenizer, settings):
    """Token-level masking has no randomness in its number of predictions: row by row it equals
    the reference's, at the floor of one, the cap and with padding."""
    config = make_config(tokenizer, **settings)
    reference = [len(m.masked_lm_positions) for m in mask_all(sequences, config, seed=11)]
    for out in (mask_batch_hashed(block, config, 3, 0, keys(len(block))),
                mask_batch_with_rng(block, config, np.random.default_rng(3))):
        assert out.num_predictions.tolist() == reference
        check_well_formed(block, out, config)


@pytest.mark.parametrize("whole_word", [False, True])
def test_batch_masks_long_rows(sequences, tokenizer, whole_word):
    """Rows of 1,500 tokens (where u_order's keys give up low bits to the position): counts as
    mask_tokens's (token level), whole words, well formed."""
    config = make_config(tokenizer, max_predictions_per_seq=225, whole_word_masking=whole_word)
    stream = [t for seq in sequences[:3000] for t in seq if t not in config.never_mask_ids]
    rows = [[tokenizer.cls_id, *stream[i * 1497:(i + 1) * 1497 - 700], tokenizer.sep_id,
             *stream[(i + 1) * 1497 - 700:(i + 1) * 1497], tokenizer.sep_id] for i in range(60)]
    ids = as_block(rows, 1500)
    out = mask_batch_hashed(ids, config, 0, 0, keys(60))
    check_well_formed(ids, out, config)
    reference = [len(m.masked_lm_positions) for m in mask_all(rows, config, seed=1)]
    if whole_word:
        for row, positions, k in zip(rows, out.masked_lm_positions, out.num_predictions):
            chosen = set(positions[:k].tolist())
            assert 200 < k <= 225
            assert all(sum(p in chosen for p in w) in (0, len(w)) for w in words_of(row, config))
    else:
        assert out.num_predictions.tolist() == reference == [225] * 60


def test_batch_80_10_10(block, batch, tokenizer):
    config = make_config(tokenizer)
    chosen = chosen_mask(batch, block.shape[1])
    new, old = batch.input_ids[chosen], block[chosen]
    total = int(chosen.sum())
    assert total > 50_000
    p_same = 1 / len(config.random_token_ids)
    assert_rate(int((new == tokenizer.mask_id).sum()), total, 0.8, "[MASK] fraction")
    assert_rate(int((new == old).sum()), total, 0.1 + 0.1 * p_same, "unchanged fraction")
    randoms = new[(new != tokenizer.mask_id) & (new != old)]
    assert_rate(len(randoms), total, 0.1 * (1 - p_same), "random-token fraction")


def test_batch_random_replacements_spread_over_the_vocab(block, batch, tokenizer):
    config = make_config(tokenizer)
    chosen = chosen_mask(batch, block.shape[1])
    new, old = batch.input_ids[chosen], block[chosen]
    randoms = new[(new != tokenizer.mask_id) & (new != old)]
    allowed = config.random_token_ids
    assert not np.isin(randoms, list(tokenizer.special_ids)).any()
    ranks = np.searchsorted(allowed, randoms)
    counts = np.bincount(ranks * 10 // len(allowed), minlength=10)
    for decile, count in enumerate(counts):
        assert_rate(int(count), len(randoms), 0.1, f"random tokens in decile {decile} of the vocab")
    n, v = len(randoms), len(allowed)
    assert len(set(randoms.tolist())) > 0.95 * v * (1 - (1 - 1 / v) ** n)


@pytest.mark.parametrize("hashed", [False, True])
def test_batch_random_replacements_never_special_small_vocab(hashed):
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(35)]
    vocab = {t: i for i, t in enumerate(tokens)}
    config = MaskingConfig.from_vocab(vocab, SPECIAL_TOKENS, masked_lm_prob=0.5,
                                      max_predictions_per_seq=60)
    rng = np.random.default_rng(7)
    ids = np.concatenate([np.full((2000, 1), 2), rng.integers(5, 40, (2000, 100)),
                          np.full((2000, 1), 3)], axis=1).astype(np.int32)
    out = (mask_batch_hashed(ids, config, 7, 0, keys(2000)) if hashed
           else mask_batch_with_rng(ids, config, rng))
    check_well_formed(ids, out, config)
    chosen = chosen_mask(out, ids.shape[1])
    new, old = out.input_ids[chosen], ids[chosen]
    seen = new[(new != 4) & (new != old)]
    assert len(seen) > 8_000
    assert seen.min() >= 5, "a special token was used as a random replacement"
    for count in np.bincount(seen, minlength=40)[5:]:
        assert_rate(int(count), len(seen), 1 / 35, "one token's share of random replacements")


def test_batch_follows_the_rule_on_given_uniforms(tokenizer):
    """The rule, exactly: candidates by ascending u_order (ties by position), [MASK] below 0.8,
    unchanged below 0.9, else random_token_ids[floor(u_token * len)]."""
    config = make_config(tokenizer, masked_lm_prob=0.5, max_predictions_per_seq=4)
    cls, sep, pad, mask = tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id, tokenizer.mask_id
    ids = np.array([[cls, 2000, 2001, 2002, sep, 2003, 2004, 2005, sep, pad]], dtype=np.int32)
    # Budget round(0.5 * 6) = 3: the candidates of smallest u_order are 7, 2 and 5; the [CLS],
    # [SEP] and [PAD] with smaller u_order are not candidates.
    u_order = np.array([[0.0, 0.9, 0.2, 0.8, 0.0, 0.3, 0.7, 0.1, 0.0, 0.0]])
    v = len(config.random_token_ids)
    u_action = np.zeros((1, 10))
    u_token = np.zeros((1, 10))
    u_action[0, [2, 5, 7]] = [np.nextafter(0.8, 0), 0.9, np.nextafter(0.9, 0)]
    u_token[0, 5] = np.nextafter(1.0, 0)  # The last allowed id.
    out = mask_batch(ids, config, u_order, u_action, u_token)
    assert out.masked_lm_positions.tolist() == [[2, 5, 7, 0]]
    assert out.masked_lm_ids.tolist() == [[2001, 2003, 2005, 0]]
    assert out.num_predictions.tolist() == [3]
    expected = ids.copy()
    expected[0, 2] = mask                                 # u_action just below 0.8
    expected[0, 5] = config.random_token_ids[v - 1]       # 0.9: random token
    assert out.input_ids.tolist() == expected.tolist()    # 7: just below 0.9, unchanged
    u_action[0, 5], u_token[0, 5] = 0.95, 0.0
    assert mask_batch(ids, config, u_order, u_action, u_token).input_ids[0, 5] == \
        config.random_token_ids[0]
    # Ties in u_order go to the lower position.
    flat = np.full((1, 10), 0.5)
    assert mask_batch(ids, config, flat, u_action, u_token).masked_lm_positions.tolist() == \
        [[1, 2, 3, 0]]


def test_batch_input_mask_excludes_positions(block, tokenizer):
    """With `input_mask`, positions past the real tokens are never chosen, whatever id fills
    them (a tokenizer whose [PAD] is not 0 pads stored rows with 0, an ordinary token)."""
    config = make_config(tokenizer)
    lengths = (block != 0).sum(axis=1)
    ordinary = block.copy()
    ordinary[block == 0] = tokenizer.vocab["the"]
    input_mask = (np.arange(block.shape[1]) < lengths[:, None]).astype(np.int32)
    out = mask_batch_hashed(ordinary, config, 0, 0, keys(len(block)), input_mask=input_mask)
    plain = mask_batch_hashed(block, config, 0, 0, keys(len(block)))
    for field in ("masked_lm_positions", "masked_lm_ids", "num_predictions"):
        assert np.array_equal(getattr(out, field), getattr(plain, field))


def test_batch_whole_word_masking(sequences, block, tokenizer):
    config = make_config(tokenizer, whole_word_masking=True)
    out = mask_batch_hashed(block, config, 5, 0, keys(len(block)))
    check_well_formed(block, out, config)
    multi_piece_chosen = under_budget = 0
    for seq, positions, k in zip(sequences, out.masked_lm_positions, out.num_predictions):
        n = sum(t not in config.never_mask_ids for t in seq)
        budget = min(config.max_predictions_per_seq, max(1, round(0.15 * n)))
        chosen = set(positions[:k].tolist())
        assert len(chosen) == k <= budget
        unchosen_lengths = []
        for word in words_of(seq, config):
            hits = sum(p in chosen for p in word)
            assert hits in (0, len(word)), f"word {word} partly chosen: {sorted(chosen)}"
            if hits:
                multi_piece_chosen += len(word) > 1
            else:
                unchosen_lengths.append(len(word))
        if k < budget:
            under_budget += 1
            assert all(length > budget - k for length in unchosen_lengths)
    assert multi_piece_chosen > 1_000 and under_budget >= 1, (multi_piece_chosen, under_budget)
    chosen = chosen_mask(out, block.shape[1])
    assert_rate(int((out.input_ids[chosen] == tokenizer.mask_id).sum()), int(chosen.sum()), 0.8,
                "[MASK] fraction with whole-word masking")


def test_batch_whole_words_do_not_join_across_special_tokens(tokenizer):
    config = make_config(tokenizer, whole_word_masking=True, masked_lm_prob=0.5)
    v = tokenizer.vocab
    cls, sep = tokenizer.cls_id, tokenizer.sep_id
    seq = [cls, v["##ing"], v["play"], v["##ing"], sep, v["##s"], sep]
    ids = np.array([seq] * 400, dtype=np.int32)
    out = mask_batch_hashed(ids, config, 0, 0, keys(400))
    seen = collections.Counter(tuple(p[:k]) for p, k in zip(out.masked_lm_positions.tolist(),
                                                           out.num_predictions))
    assert set(seen) == {(2, 3), (1, 5)}, seen


def test_batch_whole_words_that_overshoot_are_skipped(tokenizer):
    config = make_config(tokenizer, whole_word_masking=True)
    v = tokenizer.vocab
    words = ["play", "walk", "talk", "jump", "read", "work", "look", "help", "call", "turn"]
    seq = [tokenizer.cls_id] + [t for w in words for t in (v[w], v["##ing"])] + [tokenizer.sep_id]
    out = mask_batch_hashed(np.array([seq] * 300, dtype=np.int32), config, 0, 0, keys(300))
    assert (out.num_predictions == 2).all()
    first, second = out.masked_lm_positions[:, 0], out.masked_lm_positions[:, 1]
    assert (second == first + 1).all() and (first % 2 == 1).all()
    assert len(set(first.tolist())) == 10


def original_whole_word_distribution(word_lengths: list[int], budget: int) -> dict:
    """The exact distribution of the chosen word sets of Google's `create_masked_lm_predictions`
    (shuffle the words; take each in turn unless the budget is met, skipping a word that would
    overshoot it), by enumerating every order of the words with fractions."""
    counts: collections.Counter = collections.Counter()
    for order in itertools.permutations(range(len(word_lengths))):
        taken, size = [], 0
        for word in order:
            if size >= budget:
                break
            if size + word_lengths[word] > budget:
                continue
            taken.append(word)
            size += word_lengths[word]
        counts[frozenset(taken)] += 1
    total = math.factorial(len(word_lengths))
    return {words: Fraction(count, total) for words, count in counts.items()}


def test_whole_word_choices_follow_the_originals_exact_distribution(tokenizer):
    """Words of 1, 2, 1, 3, 1 and 2 pieces, a budget of 4: the chosen sets' frequencies, over
    30,000 rows of mask_batch and 10,000 of mask_tokens, match the enumerated distribution."""
    config = make_config(tokenizer, whole_word_masking=True, masked_lm_prob=0.4)
    v = tokenizer.vocab
    heads = [v[w] for w in ("the", "play", "a", "un", "of", "walk")]
    tails = [v["##ing"], v["##s"], v["##ed"]]
    word_lengths = [1, 2, 1, 3, 1, 2]
    seq, word_positions = [tokenizer.cls_id], []
    for i, (head, size) in enumerate(zip(heads, word_lengths)):
        if i == 4:
            seq.append(tokenizer.sep_id)
        word_positions.append(tuple(range(len(seq), len(seq) + size)))
        seq += [head] + tails[:size - 1]
    seq.append(tokenizer.sep_id)
    assert round(0.4 * sum(word_lengths)) == 4
    exact = original_whole_word_distribution(word_lengths, 4)
    by_positions = {tuple(sorted(p for w in words for p in word_positions[w])): prob
                    for words, prob in exact.items()}
    assert len(by_positions) > 10

    def check(observed: collections.Counter, what: str) -> None:
        total = sum(observed.values())
        assert set(observed) <= set(by_positions), set(observed) - set(by_positions)
        for positions, prob in by_positions.items():
            assert_rate(observed[positions], total, float(prob), f"{what}: set {positions}")

    n = 30_000
    out = mask_batch_hashed(np.array([seq] * n, dtype=np.int32), config, 1, 0, keys(n))
    check(collections.Counter(tuple(p[:k]) for p, k in zip(out.masked_lm_positions.tolist(),
                                                          out.num_predictions)), "mask_batch")
    rng = random.Random(0)
    check(collections.Counter(tuple(mask_tokens(seq, config, rng).masked_lm_positions)
                              for _ in range(10_000)), "mask_tokens")


def test_each_candidate_is_equally_likely_as_in_mask_tokens(sequences, tokenizer):
    """Token-level masking chooses a uniform subset of the candidates: every candidate of a real
    row with probability k / n exactly, for mask_batch (rows of their own keys) and mask_tokens."""
    config = make_config(tokenizer)
    seq = next(s for s in sequences if len(s) == MAX_SEQ_LENGTH and s[-1] != tokenizer.pad_id)
    candidates = [i for i, t in enumerate(seq) if t not in config.never_mask_ids]
    k = min(20, round(0.15 * len(candidates)))
    reps = 4_000
    out = mask_batch_hashed(np.array([seq] * reps, dtype=np.int32), config, 2, 0, keys(reps))
    batch_counts = chosen_mask(out, len(seq)).sum(axis=0)
    rng = random.Random(2)
    reference_counts = np.zeros(len(seq), dtype=int)
    for _ in range(reps):
        reference_counts[mask_tokens(seq, config, rng).masked_lm_positions] += 1
    for counts, what in ((batch_counts, "mask_batch"), (reference_counts, "mask_tokens")):
        assert counts.sum() == k * reps
        for i in candidates:
            assert_rate(int(counts[i]), reps, k / len(candidates), f"{what}: position {i}")


def test_hashed_mask_of_a_row_is_its_own(sequences, block, tokenizer):
    """A row's mask depends on its ids and key only: not on the other rows of its block, its
    place there, the block's size (across the chunks masking works in) or the row's padding."""
    for config in (make_config(tokenizer), make_config(tokenizer, whole_word_masking=True)):
        whole = mask_batch_hashed(block, config, 9, 4, keys(len(block)))
        rng = np.random.default_rng(0)
        for _ in range(3):
            picked = rng.choice(len(block), size=700, replace=False)
            part = mask_batch_hashed(block[picked], config, 9, 4, keys(len(block))[picked])
            for field in FIELDS:
                assert np.array_equal(getattr(part, field), getattr(whole, field)[picked]), field
        # The same ids under another key mask differently; padded further, the same.
        wider = np.pad(block[:500], ((0, 0), (0, 64)))
        out = mask_batch_hashed(wider, config, 9, 4, keys(500))
        assert np.array_equal(out.masked_lm_positions, whole.masked_lm_positions[:500])
        assert np.array_equal(out.input_ids[:, :MAX_SEQ_LENGTH], whole.input_ids[:500])


def test_hashed_masks_change_with_epoch_seed_and_key(block, batch, tokenizer):
    config = make_config(tokenizer)
    long_enough = (block != 0).sum(axis=1) >= 40
    for other in (mask_batch_hashed(block, config, 0, 1, keys(len(block))),
                  mask_batch_hashed(block, config, 1, 0, keys(len(block))),
                  mask_batch_hashed(block, config, 0, 0, keys(len(block), start=1))):
        differ = (other.masked_lm_positions != batch.masked_lm_positions).any(axis=1)
        assert differ[long_enough].mean() > 0.95
    again = mask_batch_hashed(block, config, 0, 0, keys(len(block)))
    for field in FIELDS:
        assert np.array_equal(getattr(again, field), getattr(batch, field))


def test_generator_masks_are_reproducible(block, tokenizer):
    config = make_config(tokenizer)
    a = mask_batch_with_rng(block, config, np.random.default_rng(5))
    b = mask_batch_with_rng(block, config, np.random.default_rng(5))
    c = mask_batch_with_rng(block, config, np.random.default_rng(6))
    for field in FIELDS:
        assert np.array_equal(getattr(a, field), getattr(b, field))
    assert (a.masked_lm_positions != c.masked_lm_positions).any(axis=1).mean() > 0.9


def at_positions(slot_uniforms: np.ndarray, out: MaskedBatch, length: int,
                 filler: np.ndarray) -> np.ndarray:
    """[N, L] uniforms that hold slot k's value at the k-th chosen position (filler elsewhere)."""
    full = filler.copy()
    real = out.masked_lm_weights > 0
    full[np.nonzero(real)[0], out.masked_lm_positions[real]] = slot_uniforms[real]
    return full


@pytest.mark.parametrize("whole_word", [False, True])
def test_wrappers_are_mask_batch_on_their_documented_uniforms(block, tokenizer, whole_word):
    """mask_batch_with_rng and mask_batch_hashed are mask_batch on the uniforms their docstrings
    name (the Generator's stream row by row; the hashed streams)."""
    config = make_config(tokenizer, whole_word_masking=whole_word)
    ids = block[:1500]
    n, length, p = *ids.shape, config.max_predictions_per_seq
    filler = np.random.default_rng(99).random((n, length))

    out = mask_batch_with_rng(ids, config, np.random.default_rng(8))
    draws = np.random.default_rng(8).random((n, length + 2 * p))
    u_action = at_positions(draws[:, length:length + p], out, length, filler)
    u_token = at_positions(draws[:, length + p:], out, length, filler)
    again = mask_batch(ids, config, draws[:, :length], u_action, u_token)
    for field in FIELDS:
        assert np.array_equal(getattr(again, field), getattr(out, field)), field

    out = mask_batch_hashed(ids, config, 4, 2, keys(n, start=77))
    u_order = hashed_uniforms(4, 2, keys(n, start=77), length, ORDER_STREAM)
    u_action = at_positions(hashed_uniforms(4, 2, keys(n, start=77), p, ACTION_STREAM), out,
                            length, filler)
    u_token = at_positions(hashed_uniforms(4, 2, keys(n, start=77), p, TOKEN_STREAM), out,
                           length, filler)
    again = mask_batch(ids, config, u_order, u_action, u_token)
    for field in FIELDS:
        assert np.array_equal(getattr(again, field), getattr(out, field)), field


def test_config_from_tokenizer_equals_from_vocab(tokenizer):
    a = MaskingConfig.from_tokenizer(tokenizer, max_predictions_per_seq=7)
    b = make_config(tokenizer, max_predictions_per_seq=7)
    assert a.mask_id == b.mask_id and a.never_mask_ids == b.never_mask_ids
    assert np.array_equal(a.random_token_ids, b.random_token_ids)
    assert np.array_equal(a.is_continuation, b.is_continuation)
    assert a.max_predictions_per_seq == 7


def test_batch_rejects_bad_shapes(block, tokenizer):
    config = make_config(tokenizer)
    u = np.zeros(block[:4].shape)
    with pytest.raises(ValueError, match="u_action"):
        mask_batch(block[:4], config, u, u[:3], u)
    with pytest.raises(ValueError, match="input_ids"):
        mask_batch(block[0], config, u[0], u[0], u[0])
    with pytest.raises(ValueError, match="example_keys"):
        mask_batch_hashed(block[:4], config, 0, 0, keys(3))
    empty = mask_batch_hashed(block[:0], config, 0, 0, keys(0))
    assert empty.masked_lm_positions.shape == (0, 20) and empty.input_ids.shape == (0, 128)


# --- Counter-based uniforms. -------------------------------------------------------------------

MASK64 = (1 << 64) - 1


def splitmix64_next(state: int) -> tuple[int, int]:
    """Vigna's splitmix64.c, `next()`, in Python integers: (new state, output)."""
    state = (state + 0x9E3779B97F4A7C15) & MASK64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return state, z ^ (z >> 31)


def test_splitmix64_matches_the_published_sequence():
    """The first outputs of splitmix64 seeded with 0, as published with the reference C code."""
    state, outputs = 0, []
    for _ in range(4):
        state, out = splitmix64_next(state)
        outputs.append(out)
    assert outputs == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F,
                       0xF88BB8A8724C81EC]
    gamma = 0x9E3779B97F4A7C15
    assert [counter_random.mix64((i + 1) * gamma) for i in range(4)] == outputs


def test_hashed_words_are_splitmix64_streams():
    """Row i is splitmix64's output sequence from a state derived from (seed, epoch, stream,
    key) alone: numpy's wrapping uint64 arithmetic equals the reference in Python integers."""
    example_keys = np.array([0, 1, 2**63, MASK64, 12345], dtype=np.uint64)
    words = hashed_words(7, 3, example_keys, 6, 2)
    for row, key in zip(words.tolist(), example_keys.tolist()):
        state = counter_random._absorb(counter_random._absorb(counter_random._absorb(
            counter_random._absorb(0, 7), 3), 2), key)
        expected = []
        for _ in range(6):
            state, out = splitmix64_next(state)
            expected.append(out)
        assert row == expected
    u = hashed_uniforms(7, 3, example_keys, 6, 2)
    assert np.array_equal(u, (words >> np.uint64(11)).astype(np.float64) / 2.0**53)


@pytest.fixture(scope="module")
def uniforms() -> np.ndarray:
    return hashed_uniforms(1, 0, keys(2000), 512, ORDER_STREAM)


def test_hashed_uniforms_are_uniform(uniforms):
    u = uniforms.reshape(-1)
    n = u.size
    assert 0.0 <= u.min() and u.max() < 1.0
    assert np.array_equal(u * 2.0**53, np.floor(u * 2.0**53))  # multiples of 2**-53
    # Mean 1/2 (sd sqrt(1/12n)) and variance 1/12 (the sd of (u - 1/2)^2 is sqrt(1/180n)).
    assert abs(u.mean() - 0.5) <= SIGMAS * math.sqrt(1 / 12 / n)
    assert abs(((u - 0.5) ** 2).mean() - 1 / 12) <= SIGMAS * math.sqrt(1 / 180 / n)
    # Chi-square over 1,000 equal bins: mean df, sd sqrt(2 df).
    counts = np.bincount((u * 1000).astype(int), minlength=1000)
    chi2 = ((counts - n / 1000) ** 2 / (n / 1000)).sum()
    assert abs(chi2 - 999) <= SIGMAS * math.sqrt(2 * 999), chi2
    # Every row and every position on its own, too (the means of 512 and of 2,000 values).
    assert (np.abs(uniforms.mean(axis=1) - 0.5) <= 5 * math.sqrt(1 / 12 / 512)).all()
    assert (np.abs(uniforms.mean(axis=0) - 0.5) <= 5 * math.sqrt(1 / 12 / 2000)).all()


def pair_chi2(a: np.ndarray, b: np.ndarray, bins: int = 20) -> float:
    """Chi-square of the joint histogram of (a, b) against independence of two uniforms."""
    cells = (a * bins).astype(int) * bins + (b * bins).astype(int)
    counts = np.bincount(cells.reshape(-1), minlength=bins * bins)
    expected = a.size / bins**2
    return float(((counts - expected) ** 2 / expected).sum())


def test_hashed_uniforms_are_independent_across_streams_epochs_keys_and_positions(uniforms):
    k = keys(2000)
    others = {
        "stream": hashed_uniforms(1, 0, k, 512, ACTION_STREAM),
        "epoch": hashed_uniforms(1, 1, k, 512, ORDER_STREAM),
        "seed": hashed_uniforms(2, 0, k, 512, ORDER_STREAM),
        "next key": np.roll(uniforms, -1, axis=0),
        "next position": np.roll(uniforms, -1, axis=1),
    }
    n = uniforms.size
    df = 20 * 20 - 1
    for what, other in others.items():
        # The correlation of independent uniforms has sd 1 / sqrt(n).
        r = np.corrcoef(uniforms.reshape(-1), other.reshape(-1))[0, 1]
        assert abs(r) <= SIGMAS / math.sqrt(n), (what, r)
        chi2 = pair_chi2(uniforms, other)
        assert abs(chi2 - df) <= SIGMAS * math.sqrt(2 * df), (what, chi2)
    # Keys that differ in one bit, even the top one, give unrelated rows.
    a = hashed_uniforms(1, 0, np.array([0, 2**63], dtype=np.uint64), 100_000, 0)
    assert abs(np.corrcoef(a[0], a[1])[0, 1]) <= SIGMAS / math.sqrt(100_000)


def test_hashed_uniforms_are_a_function_of_their_coordinates(uniforms):
    k = keys(2000)
    rng = np.random.default_rng(0)
    order = rng.permutation(2000)
    assert np.array_equal(hashed_uniforms(1, 0, k[order], 512, 0), uniforms[order])
    assert np.array_equal(hashed_uniforms(1, 0, k, 100, 0), uniforms[:, :100])
    assert np.array_equal(hashed_uniforms(1, 0, k.astype(np.int64), 512, 0), uniforms)
    with pytest.raises(ValueError):
        hashed_uniforms(-1, 0, k, 4, 0)
    with pytest.raises(ValueError):
        hashed_uniforms(0, 2**64, k, 4, 0)
    with pytest.raises(ValueError):
        hashed_uniforms(0, 0, np.array([-1]), 4, 0)
